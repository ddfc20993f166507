import pytest
from django.urls import reverse

from iex.models import Role

pytestmark = pytest.mark.django_db


def url(name, personas, *args):
    return reverse(name, args=[personas.integration.number, *args])


# /i/<number>/settings/


@pytest.mark.parametrize("who", ["owner", "admin", "viewer"])
def test_every_member_sees_settings(personas, who):
    response = personas.client(getattr(personas, who)).get(url("settings", personas))
    assert response.status_code == 200
    body = response.content.decode()
    assert "viewer@shop.example" in body and "admin@shop.example" in body
    assert personas.integration.number in body
    assert ("Deactivate integration" in body) == (who != "viewer")
    assert ("Send invitation" in body) == (who != "viewer")


def test_settings_rejects_post(personas):
    assert personas.client(personas.owner).post(url("settings", personas)).status_code == 405


def test_menu_lists_only_pages_that_exist_and_marks_the_current(personas):
    body = personas.client(personas.owner).get(url("settings", personas)).content.decode()
    assert 'aria-current="page">Settings' in body
    import re

    menu = re.findall(r">([A-Za-z ]+)</a>", body.split('class="menu"')[1].split("</nav>")[0])
    # DESIGN.md's order.
    assert menu == ["Home", "Systems", "Schedule settings", "Connections", "Subscription", "Settings", "Log"]


# /i/<number>/settings/active/


def test_admin_deactivates_and_reactivates_with_who_and_when(personas):
    client = personas.client(personas.admin)
    response = client.post(url("set_integration_active", personas))
    assert response.status_code == 302
    personas.integration.refresh_from_db()
    assert personas.integration.active is False
    assert personas.integration.active_changed_by == personas.admin
    assert personas.integration.active_changed_at is not None
    page = client.get(url("home", personas)).content.decode()
    assert "This integration is inactive" in page
    assert "Deactivated by admin@shop.example" in page

    client.post(url("set_integration_active", personas), {"active": "on"})
    personas.integration.refresh_from_db()
    assert personas.integration.active is True
    assert "This integration is inactive" not in client.get(url("home", personas)).content.decode()


def test_inactive_banner_shows_on_every_page(personas):
    personas.integration.set_active(False, personas.owner)
    client = personas.client(personas.viewer)
    for name in ["home", "settings"]:
        assert "This integration is inactive" in client.get(url(name, personas)).content.decode()


def test_viewer_cannot_deactivate(personas):
    response = personas.client(personas.viewer).post(url("set_integration_active", personas))
    assert response.status_code == 403
    personas.integration.refresh_from_db()
    assert personas.integration.active is True


def test_set_active_rejects_get(personas):
    assert personas.client(personas.owner).get(url("set_integration_active", personas)).status_code == 405


# /i/<number>/members/<code>/role/


def test_owner_changes_a_role(personas):
    viewer = personas.member(personas.viewer)
    response = personas.client(personas.owner).post(
        url("change_member_role", personas, viewer.code), {"role": "admin"}
    )
    assert response.status_code == 302
    viewer.refresh_from_db()
    assert viewer.role == Role.ADMIN


@pytest.mark.parametrize("who", ["admin", "viewer"])
def test_only_an_owner_changes_roles(personas, who):
    viewer = personas.member(personas.viewer)
    client = personas.client(getattr(personas, who))
    assert client.post(url("change_member_role", personas, viewer.code), {"role": "owner"}).status_code == 403
    viewer.refresh_from_db()
    assert viewer.role == Role.VIEWER


def test_last_owner_cannot_be_demoted(personas):
    owner = personas.member(personas.owner)
    client = personas.client(personas.owner)
    response = client.post(url("change_member_role", personas, owner.code), {"role": "admin"}, follow=True)
    assert "at least one owner" in response.content.decode()
    owner.refresh_from_db()
    assert owner.role == Role.OWNER


def test_an_owner_can_step_down_once_there_is_another(personas):
    admin = personas.member(personas.admin)
    owner = personas.member(personas.owner)
    client = personas.client(personas.owner)
    client.post(url("change_member_role", personas, admin.code), {"role": "owner"})
    client.post(url("change_member_role", personas, owner.code), {"role": "viewer"})
    owner.refresh_from_db()
    assert owner.role == Role.VIEWER
    assert personas.integration.owner_count() == 1


def test_bad_role_is_refused_with_a_message(personas):
    viewer = personas.member(personas.viewer)
    response = personas.client(personas.owner).post(
        url("change_member_role", personas, viewer.code), {"role": "god"}, follow=True
    )
    assert "Choose one of the roles" in response.content.decode()
    viewer.refresh_from_db()
    assert viewer.role == Role.VIEWER


def test_member_of_another_integration_is_404_by_code(personas):
    foreign = personas.other.members.get()
    response = personas.client(personas.owner).post(
        url("change_member_role", personas, foreign.code), {"role": "viewer"}
    )
    assert response.status_code == 404


# /i/<number>/members/<code>/remove/


def test_admin_removes_a_viewer_who_loses_access_at_once(personas):
    viewer_client = personas.client(personas.viewer)
    assert viewer_client.get(url("home", personas)).status_code == 200
    viewer = personas.member(personas.viewer)
    assert personas.client(personas.admin).post(url("remove_member", personas, viewer.code)).status_code == 302
    assert not personas.integration.members.filter(user=personas.viewer).exists()
    assert viewer_client.get(url("home", personas)).status_code == 404


def test_admin_cannot_remove_an_owner(personas):
    owner = personas.member(personas.owner)
    assert personas.client(personas.admin).post(url("remove_member", personas, owner.code)).status_code == 403
    assert personas.integration.members.filter(user=personas.owner).exists()


def test_viewer_can_leave(personas):
    viewer = personas.member(personas.viewer)
    response = personas.client(personas.viewer).post(url("remove_member", personas, viewer.code))
    assert response.status_code == 302 and response.url == reverse("index")
    assert not personas.integration.members.filter(user=personas.viewer).exists()


def test_member_of_another_integration_cannot_be_removed_by_code(personas):
    foreign = personas.other.members.get()
    response = personas.client(personas.owner).post(url("remove_member", personas, foreign.code))
    assert response.status_code == 404
    assert personas.other.members.filter(pk=foreign.pk).exists()


def test_viewer_cannot_remove(personas):
    admin = personas.member(personas.admin)
    assert personas.client(personas.viewer).post(url("remove_member", personas, admin.code)).status_code == 403
    assert personas.integration.members.filter(user=personas.admin).exists()


def test_last_owner_cannot_be_removed_or_leave(personas):
    owner = personas.member(personas.owner)
    response = personas.client(personas.owner).post(url("remove_member", personas, owner.code), follow=True)
    assert "last owner cannot be removed" in response.content.decode()
    assert personas.integration.members.filter(user=personas.owner).exists()


def test_admin_can_leave(personas):
    admin = personas.member(personas.admin)
    response = personas.client(personas.admin).post(url("remove_member", personas, admin.code))
    assert response.status_code == 302 and response.url == reverse("index")
    assert not personas.integration.members.filter(user=personas.admin).exists()


def test_remove_rejects_get(personas):
    viewer = personas.member(personas.viewer)
    assert personas.client(personas.owner).get(url("remove_member", personas, viewer.code)).status_code == 405


# /i/<number>/


def test_home_shows_the_integration(personas):
    response = personas.client(personas.viewer).get(url("home", personas))
    assert response.status_code == 200
    assert "Nordic Bikes" in response.content.decode()


def test_home_rejects_post(personas):
    assert personas.client(personas.owner).post(url("home", personas)).status_code == 405
