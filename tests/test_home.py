"""Home: per-day counters kept when transfers finish, the 30-day chart with its table, the latest failures."""

from datetime import UTC, date, datetime, timedelta

import pytest
import responses
import time_machine
from django.db.models import Count
from django.urls import reverse

from connections import pipeline
from tests.test_pipeline import ORDER, economic, receive
from transferlog.models import COUNTED, DailyCount, Status, Transfer

pytestmark = pytest.mark.django_db


def counters_by_day_and_status():
    found = {}
    for row in DailyCount.objects.values():
        for status in COUNTED:
            if row[status]:
                found[(row["day"], row["connection_label"], status)] = row[status]
    return found


def transfers_by_day_and_status():
    rows = Transfer.objects.filter(status__in=COUNTED).values("counted_on", "connection_label", "status")
    return {(r["counted_on"], r["connection_label"], r["status"]): r["n"] for r in rows.annotate(n=Count("id"))}


@responses.activate
def test_the_counters_agree_with_the_transfers_after_a_mixed_run(personas, connected):
    with time_machine.travel(datetime(2026, 11, 24, 10, tzinfo=UTC)):
        economic()
        pipeline.process(receive(connected).pk)  # created
        changed = {**ORDER, "updated_at": "2026-11-20T11:00:00+01:00"}
        pipeline.process(receive(connected, changed).pk)  # updated
        unpaid = {**ORDER, "id": 7, "name": "#7", "financial_status": "pending"}
        pipeline.process(receive(connected, unpaid).pk)  # skipped
        responses.reset()
        economic(draft_status=422)
        failing = {**ORDER, "id": 8, "name": "#8"}
        failed = receive(connected, failing)
        pipeline.process(failed.pk)  # failed
        second = receive(connected, {**ORDER, "id": 9, "name": "#9"})
        pipeline.process(second.pk)  # failed too
    assert Transfer.objects.get(pk=failed.pk).status == Transfer.objects.get(pk=second.pk).status == Status.FAILED
    with time_machine.travel(datetime(2026, 11, 25, 9, tzinfo=UTC)):
        responses.reset()
        economic()
        assert Transfer.objects.get(pk=failed.pk).retry(by="test")
        pipeline.process(failed.pk)  # retried: created the next day, no longer failed the day before
        responses.reset()
        economic(gross=1.0)  # e-conomic's total differs from the shop's: a draft left for the bookkeeper
        assert Transfer.objects.get(pk=second.pk).retry(by="test")
        pipeline.process(second.pk)  # retried: a warning the next day, no longer failed the day before
        responses.reset()
        economic(draft_status=422)
        still = receive(connected, {**ORDER, "id": 10, "name": "#10"})
        pipeline.process(still.pk)  # failed, and left failed
    assert Transfer.objects.get(pk=second.pk).status == Status.WARNING
    assert Transfer.objects.get(pk=still.pk).status == Status.FAILED

    counted = counters_by_day_and_status()
    assert counted == transfers_by_day_and_status()
    label = connected.label
    assert counted == {
        (date(2026, 11, 24), label, "created"): 1,
        (date(2026, 11, 24), label, "updated"): 1,
        (date(2026, 11, 24), label, "skipped"): 1,
        (date(2026, 11, 25), label, "created"): 1,
        (date(2026, 11, 25), label, "warning"): 1,
        (date(2026, 11, 25), label, "failed"): 1,
    }


def test_home_shows_counts_chart_and_failures_with_links_to_their_log_lines(personas, connected):
    today = datetime.now(UTC).date()
    label = connected.label
    DailyCount.objects.create(
        integration=personas.integration, day=today, connection_label=label, entity="orders", created=7, updated=3
    )
    DailyCount.objects.create(
        integration=personas.integration,
        day=today - timedelta(days=40),
        connection_label=label,
        entity="orders",
        created=100,
        failed=2,
    )
    failure = Transfer.objects.create(
        integration=personas.integration,
        connection=connected,
        connection_label=label,
        entity="orders",
        source_ref="55",
        reference="#1042",
        status=Status.FAILED,
        reason="e-conomic said: Validation failed",
    )
    body = (
        personas.client(personas.viewer).get(reverse("home", args=[personas.integration.number])).content.decode()
    )
    assert "<svg" in body and 'aria-labelledby="chart-title"' in body
    assert f"{today:%-d %b}: 7 created, 3 updated, 0 errors" in body  # each bar says what it shows
    assert '<td class="num">7</td><td class="num">3</td><td class="num">0</td>' in body  # the table behind it
    # Orders this month and all time.
    assert '<p class="big">10</p>' in body and "112 all time" in body
    link = f"/i/{personas.integration.number}/log/?q=%231042&amp;open={failure.code}#t-{failure.code}"
    assert link in body and "Validation failed" in body
    log = personas.client(personas.viewer).get(link.replace("&amp;", "&").split("#")[0]).content.decode()
    assert f'id="t-{failure.code}" open' in log


def test_home_lists_warnings_with_failures_as_its_chart_counts_them(personas, connected):
    today = datetime.now(UTC).date()
    label = connected.label
    DailyCount.objects.create(
        integration=personas.integration, day=today, connection_label=label, entity="orders", failed=1, warning=1
    )
    made = {}
    for n, status, reason in [
        (1, Status.FAILED, "e-conomic said: Validation failed"),
        (2, Status.WARNING, "Error in totals validation: e-conomic's total 1.00 differs from the shop's 4496.00"),
        (3, Status.CREATED, ""),
    ]:
        made[status] = Transfer.objects.create(
            integration=personas.integration, connection=connected, connection_label=label, entity="orders",
            source_ref=str(n), reference=f"#{n}", status=status, reason=reason,
        )  # fmt: skip
    body = (
        personas.client(personas.viewer).get(reverse("home", args=[personas.integration.number])).content.decode()
    )
    assert f"{today:%-d %b}: 0 created, 0 updated, 2 errors" in body
    section = body[body.index('id="failures"') : body.index("</section>", body.index('id="failures"'))]
    assert section.count("<li>") == 2  # the chart's two errors
    warning = made[Status.WARNING]
    assert '<span class="badge badge-warning">Warning</span>' in section
    assert '<span class="badge badge-failed">Failed</span>' in section
    assert (
        f"?q=%232&amp;open={warning.code}#t-{warning.code}" in section and "Error in totals validation" in section
    )
    assert f"/i/{personas.integration.number}/log/?status=warning" in section
    assert "#3" not in section


def test_home_costs_the_same_few_queries_however_many_transfers(
    personas, connected, django_assert_max_num_queries
):
    url = reverse("home", args=[personas.integration.number])
    client = personas.client(personas.owner)
    client.get(url)
    with django_assert_max_num_queries(22):  # with the first-run checklist (no transfer created yet)
        assert client.get(url).status_code == 200


def test_home_says_which_system_refuses_iexs_credentials(personas, connected):
    home = reverse("home", args=[personas.integration.number])
    assert "Nothing moves to or from" not in personas.client(personas.viewer).get(home).content.decode()
    economic_module = connected.target
    economic_module.credentials_refused("e-conomic said 401: The agreement grant token was revoked")
    body = personas.client(personas.viewer).get(home).content.decode()
    assert "Nothing moves to or from e-conomic" in body
    assert "The agreement grant token was revoked" in body
    assert economic_module.get_absolute_url() in body
    economic_module.set_credentials({"agreement_grant_token": "new", "app_secret_token": "x"})
    economic_module.save()
    assert "Nothing moves to or from" not in personas.client(personas.viewer).get(home).content.decode()


def test_home_links_the_owner_to_confirm_a_payment_the_bank_asked_for(personas):
    from billing.models import Pack, Subscription, month_of

    sub = Subscription.of(personas.integration)
    sub.payment_problem = "Paying for an order pack failed: The bank asks the card holder to confirm the payment"
    sub.save()
    Pack.objects.create(
        integration=personas.integration, month=month_of(datetime.now(UTC)), orders=100, amount=7900,
        source="automatic", status="action_required",
    )  # fmt: skip
    home = reverse("home", args=[personas.integration.number])
    owner = personas.client(personas.owner).get(home).content.decode()
    assert "Confirm the payment</a>" in owner and "subscription/#buy" in owner
    viewer = personas.client(personas.viewer).get(home).content.decode()
    assert "Confirm the payment</a>" not in viewer and "An owner can update the card" in viewer
