import html
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from connections import pipeline
from iex.models import Integration
from tests.conftest import make_user

pytestmark = pytest.mark.django_db


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


# --- Integrations: plan, usage, systems, latest failures ---------------------------------------------------


def failed_transfer(connection, ref="1001", reason="restapi.e-conomic.com answered 400: Validation failed"):
    from django.utils import timezone

    from transferlog.models import Status, Transfer

    made = pipeline.receive(connection, ref, f"#{ref}", timezone.now(), {"id": ref, "name": f"#{ref}"})
    Transfer.objects.filter(pk=made.pk).update(status=Status.FAILED, reason=reason)
    return made


def test_integrations_list_shows_plan_usage_and_systems_in_a_fixed_number_of_queries(
    personas, connected, staff_client, django_assert_max_num_queries
):
    from billing.models import Subscription, Usage

    Subscription.of(personas.integration)
    usage = Usage.of(personas.integration)
    usage.used, usage.bought = 12, 100
    usage.save()
    with CaptureQueriesContext(connection) as few:
        page = staff_client.get("/admin/iex/integration/").content.decode()
    assert "Standard (trial)" in page and "12 of 1,100" in page
    assert "shopify, economic" in page
    assert "No subscription" in page and "0 of 0" in page  # Elsewhere has neither a plan nor usage yet
    for n in range(5):
        owner = make_user(f"more{n}@shop.example")
        Subscription.of(Integration.create_for(owner, f"More {n}"))
    with django_assert_max_num_queries(len(few.captured_queries)):
        assert staff_client.get("/admin/iex/integration/").status_code == 200


def test_an_integrations_page_shows_its_latest_failures_linked_and_no_credentials(
    personas, connected, staff_client
):
    from billing.models import Subscription

    Subscription.of(personas.integration)
    failed = failed_transfer(connected)
    response = staff_client.get(f"/admin/iex/integration/{personas.integration.pk}/change/")
    assert response.status_code == 200
    page = response.content.decode()
    assert f"/admin/transferlog/transfer/{failed.pk}/change/" in page
    assert "#1001" in page and "Validation failed" in page
    assert f"?q={personas.integration.number}&amp;status__exact=failed" in page
    assert "Standard (trial)" in page and "0 of 1,000" in page
    for secret in ("shpat_secret", "app-secret", connected.source.credentials):
        assert secret not in page


def test_looking_at_an_integration_creates_nothing(personas, staff_client):
    from billing.models import Subscription, Usage

    assert staff_client.get(f"/admin/iex/integration/{personas.integration.pk}/change/").status_code == 200
    assert not Subscription.objects.exists() and not Usage.objects.exists()


# --- Transfers: read-only, bounded -------------------------------------------------------------------------


def test_staff_list_transfers_filtered_and_searched_within_an_integration(personas, connected, staff_client):
    failed = failed_transfer(connected, "1001")
    failed_transfer(connected, "2002")
    url = "/admin/transferlog/transfer/"
    page = staff_client.get(url).content.decode()
    assert "#1001" in page and "#2002" in page
    page = staff_client.get(url, {"status__exact": "failed", "entity": "orders"}).content.decode()
    assert "#1001" in page
    assert "#1001" not in staff_client.get(url, {"entity": "stock"}).content.decode()
    number = personas.integration.number
    page = staff_client.get(url, {"q": f"{number} #10"}).content.decode()
    assert "#1001" in page and "#2002" not in page
    assert "#1001" not in staff_client.get(url, {"q": personas.other.number}).content.decode()
    # An order number alone would read every row: the number comes first.
    page = staff_client.get(url, {"q": "#1001"}, follow=True).content.decode()
    assert "Start with an integration" in page and f"/{failed.pk}/change/" not in page


def test_the_transfer_list_never_counts_the_whole_table(personas, connected, staff_client):
    failed_transfer(connected)
    with CaptureQueriesContext(connection) as queries:
        assert staff_client.get("/admin/transferlog/transfer/", {"status__exact": "failed"}).status_code == 200
    counts = [
        q["sql"] for q in queries.captured_queries if "COUNT(" in q["sql"] and "transferlog_transfer" in q["sql"]
    ]
    assert counts and all("LIMIT 10000" in sql for sql in counts)


def test_a_transfer_page_is_read_only_with_its_data_pretty(personas, connected, staff_client):
    failed = failed_transfer(connected)
    response = staff_client.get(f"/admin/transferlog/transfer/{failed.pk}/change/")
    assert response.status_code == 200
    page = response.content.decode()
    # Indented JSON, escaped.
    assert "<pre>{\n  &quot;id&quot;: &quot;1001&quot;,\n  &quot;name&quot;: &quot;#1001&quot;\n}</pre>" in page
    assert 'name="_save"' not in page
    change = staff_client.post(f"/admin/transferlog/transfer/{failed.pk}/change/", {"status": "created"})
    assert change.status_code == 403
    assert staff_client.get("/admin/transferlog/transfer/add/").status_code == 403
    delete = staff_client.post(f"/admin/transferlog/transfer/{failed.pk}/delete/", {"post": "yes"})
    assert delete.status_code == 403
    failed.refresh_from_db()
    assert failed.status == "failed"


# --- Integrations: switched and deleted through the dashboard only ----------------------------------------


def change_form_data(page: str) -> dict[str, str]:
    """What the browser would post back from an admin change page: its inputs with their values."""
    data = {}
    for tag in re.findall(r"<input[^>]*>", page):
        name = re.search(r'name="([^"]+)"', tag)
        if name is None or ('type="checkbox"' in tag and "checked" not in tag):
            continue
        value = re.search(r'value="([^"]*)"', tag)
        data[name.group(1)] = html.unescape(value.group(1)) if value else ("on" if "checkbox" in tag else "")
    return data


def test_staff_cannot_switch_an_integration_off_in_the_admin(personas, staff_client):
    """Integration.set_active notes who and when, and the dashboard releases held transfers: no way around it."""
    url = f"/admin/iex/integration/{personas.integration.pk}/change/"
    page = staff_client.get(url).content.decode()
    assert 'name="active"' not in page
    data = change_form_data(page)
    assert data["name"] == "Nordic Bikes"
    data.pop("active", None)  # the box unticked
    data["name"] = "Nordic Bikes ApS"
    response = staff_client.post(url, data)
    assert response.status_code == 302, response.content.decode()[:3000]
    personas.integration.refresh_from_db()
    assert personas.integration.name == "Nordic Bikes ApS"  # what may change, changed
    assert personas.integration.active and personas.integration.active_changed_at is None


def test_staff_cannot_delete_an_integration_in_the_admin(personas, staff_client):
    """Deleting cascades to every transfer, and the confirmation page would list millions of them."""
    url = f"/admin/iex/integration/{personas.integration.pk}/delete/"
    assert staff_client.get(url).status_code == 403
    assert staff_client.post(url, {"post": "yes"}).status_code == 403
    assert Integration.objects.filter(pk=personas.integration.pk).exists()
    listing = staff_client.get("/admin/iex/integration/").content.decode()
    assert "delete_selected" not in listing
    change = staff_client.get(f"/admin/iex/integration/{personas.integration.pk}/change/").content.decode()
    assert "deletelink" not in change
