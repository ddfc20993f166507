"""Home's first-run checklist (issue 21, 2): a new integration's Home lists the steps to its first transfer, each
ticked by what was done where it is done, and says nothing is moving instead of "Nice."; the checklist goes with the
first transfer created."""

import pytest
from django.urls import reverse

from connections.models import Connection, Module
from scheduling.models import Job
from transferlog.models import DailyCount

pytestmark = pytest.mark.django_db


def home(personas, user=None):
    response = personas.client(user or personas.owner).get(reverse("home", args=[personas.integration.number]))
    assert response.status_code == 200
    return response


def steps(response):
    """(title, done, next) of each step, as the page has them."""
    return [(s.title, s.done, s.next) for s in response.context["first_steps"] or ()]


def test_a_new_integration_is_told_what_to_do_first_and_not_that_all_is_well(personas):
    response = home(personas)
    page = response.content.decode()
    assert steps(response)[0] == ("Add your shop", False, True)
    assert [done for _, done, _ in steps(response)] == [False] * 6
    assert "Set up your first transfer" in page and "0 of 6 done" in page
    assert "Nice." not in page and "No failed transfers or warnings yet" in page
    assert "Nothing has been created yet" in page  # beside "Active": active, but nothing made
    assert f'href="{reverse("systems", args=[personas.integration.number])}"' in page


def test_each_step_ticks_itself_as_it_is_done(personas):
    integration = personas.integration
    shop = Module.objects.create(integration=integration, kind="shopify")
    books = Module.objects.create(integration=integration, kind="economic")
    Connection.ensure_for(integration)
    titles = [title for title, _, _ in steps(home(personas))]
    assert titles[:2] == ["Connect Shopify", "Connect e-conomic"]  # added: now connect them

    shop.set_credentials({"shop_domain": "nordic-bikes.myshopify.com", "access_token": "shpat_x"})
    shop.save()
    books.set_credentials({"agreement_grant_token": "grant"})
    books.save()
    books.tested("e-conomic refused the credentials (401): check them")  # a failed test is not connected
    found = steps(home(personas))
    assert found[0][1] and not found[1][1] and found[1][2]
    assert "Test failed" in home(personas).content.decode()

    books.tested()
    books.settings = {"layout": 19}
    books.save()
    found = steps(home(personas))
    assert [done for _, done, _ in found[:3]] == [True, True, True]

    orders = integration.connections.get(flow="orders")
    Job.ensure_for(orders).choose_start(None)  # "from now", chosen on Connections
    found = steps(home(personas))
    assert found[3][1] and found[4][2]
    orders.active = True
    orders.save()
    found = steps(home(personas))
    assert found[4][1] and found[5][2]
    assert "Nothing has been received from the shop yet" in home(personas).content.decode()


def test_the_checklist_goes_with_the_first_transfer_created(personas, connected):
    DailyCount.objects.create(
        integration=personas.integration, day="2026-12-01", connection_label="x", entity="orders", skipped=3
    )
    assert home(personas).context["first_steps"]  # skipped orders are not a first transfer
    DailyCount.objects.filter(integration=personas.integration).update(created=1)
    response = home(personas)
    assert response.context["first_steps"] is None
    assert "Set up your first transfer" not in response.content.decode()


def test_a_viewer_sees_the_steps_without_the_buttons_to_do_them(personas):
    page = home(personas, personas.viewer).content.decode()
    assert "Set up your first transfer" in page
    assert 'class="button button-primary"' not in page
