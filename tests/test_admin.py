import pytest
from django.contrib.auth.models import User
from django.test import Client

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(db):
    staff = User.objects.create_superuser("ops", "ops@iex.example", "pw")
    client = Client()
    client.force_login(staff)
    return client


def test_staff_find_an_integration_by_number_and_by_name(personas, staff_client):
    by_number = staff_client.get("/admin/iex/integration/", {"q": personas.integration.number}).content.decode()
    assert "Nordic Bikes" in by_number and "Elsewhere" not in by_number
    by_name = staff_client.get("/admin/iex/integration/", {"q": "elsewhere"}).content.decode()
    assert personas.other.number in by_name and "Nordic Bikes" not in by_name


def test_staff_see_members_and_invitations_without_the_token(personas, invitation, staff_client):
    inv, token = invitation
    assert "viewer@shop.example" in staff_client.get("/admin/iex/member/").content.decode()
    page = staff_client.get(f"/admin/iex/invitation/{inv.pk}/change/").content.decode()
    assert "new@shop.example" in page
    assert token not in page and inv.token_hash not in page


def test_members_of_an_integration_are_not_staff(personas):
    response = personas.client(personas.owner).get("/admin/iex/integration/")
    assert response.status_code == 302 and "/admin/login/" in response.url


def test_staff_cannot_add_invitations_or_edit_members_in_the_admin(personas, staff_client):
    # Invitations need an email with the link; members must keep an owner: both go through the dashboard.
    assert staff_client.get("/admin/iex/invitation/add/").status_code == 403
    member = personas.member(personas.owner)
    assert staff_client.post(f"/admin/iex/member/{member.pk}/delete/", {"post": "yes"}).status_code == 403
    assert personas.integration.members.filter(pk=member.pk).exists()


def test_a_user_who_is_a_member_cannot_be_deleted_out_from_under_the_integration(personas):
    from django.db.models import ProtectedError

    with pytest.raises(ProtectedError):
        personas.owner.delete()
