"""Home: per-day counters kept when transfers finish, the 30-day chart with its table, the latest failures."""

import re
from datetime import UTC, date, datetime, timedelta

import pytest
import responses
import time_machine
from django.db.models import Count
from django.urls import reverse
from django.utils import timezone

from connections import pipeline
from tests.test_pipeline import ORDER, economic, receive
from transferlog.models import COUNTED, UNFINISHED, DailyCount, Status, Transfer

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
    # Each bar says what it shows, in the Log's words, and the table behind it has the same numbers.
    assert f"{today:%-d %b}: 7 created, 3 updated, 0 skipped, 0 warnings, 0 held, 0 failed" in body
    assert '<td class="num">7</td><td class="num">3</td>' + '<td class="num">0</td>' * 4 in body
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
    assert f"{today:%-d %b}: 0 created, 0 updated, 0 skipped, 1 warning, 0 held, 1 failed" in body
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
    # A backlog of every kind of wait, more kinds than Home names, costs no more.
    for n in range(40):
        status = [Status.PENDING, Status.RETRYING, Status.HELD, Status.FAILED, Status.CREATED][n % 5]
        ended(connected, n, status, f"e-conomic answered {500 + n % 8}")
    with django_assert_max_num_queries(22):
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


def ended(connection, n, status, reason="", minutes_ago=0, **fields):
    """A transfer of the connection that ended in `status`, counted as the pipeline counts it (Transfer.finish)."""
    transfer = Transfer.objects.create(
        integration=connection.integration, connection=connection, connection_label=connection.label,
        entity=connection.entity, source_ref=str(7000 + n), reference=f"#{n}",
        created=timezone.now() - timedelta(minutes=minutes_ago), **fields,
    )  # fmt: skip
    if status in COUNTED:
        transfer.finish(status, reason)
    else:
        Transfer.objects.filter(pk=transfer.pk).update(status=status, reason=reason)
    return transfer


def today_in_the_table(body):
    """Home's table of the numbers: its header and today's row (the first: newest first)."""
    table = body[body.index('<table class="table compact">') :]
    header = re.findall(r'<th scope="col" class="num">([^<]+)</th>', table)
    today = re.search(r"<tbody>\s*<tr><th scope=\"row\">[^<]+</th>(.*?)</tr>", table, re.S).group(1)
    return dict(zip(header, re.findall(r'<td class="num">([^<]+)</td>', today), strict=True))


def test_the_chart_and_the_counters_count_what_the_logs_filters_list_in_the_same_words(personas, connected):
    made = [Status.CREATED] * 3 + [Status.UPDATED] * 2 + [Status.SKIPPED, Status.HELD, Status.FAILED]
    made += [Status.WARNING] * 2  # sent, but to check: no "errors" beside the Log's 1 failed
    for n, status in enumerate(made):
        ended(connected, n, status)
    viewer = personas.client(personas.viewer)
    home = viewer.get(reverse("home", args=[personas.integration.number])).content.decode()
    log_url = reverse("log", args=[personas.integration.number])
    log = viewer.get(log_url).content.decode()
    options = dict(
        (label, value) for value, label in re.findall(r'<option value="(\w+)"[^>]*>([^<]+)</option>', log)
    )

    table = today_in_the_table(home)
    assert list(table) == ["Created", "Updated", "Skipped", "Warning", "Held", "Failed"]
    for label, shown in table.items():
        status = options[label]  # the Log filters by the very word Home shows
        listed = viewer.get(log_url, {"status": status}).content.decode().count('class="log-row ')
        assert int(shown) == listed == made.count(status), label
        assert f'?status={status}"><i class="key bar-{status}"></i>{label}</a>' in home  # the legend links there
    assert f"{timezone.now():%-d %b}: 3 created, 2 updated, 1 skipped, 2 warnings, 1 held, 1 failed" in home
    # The orders card adds up to the same, in the same words, each linking to its transfers in the Log.
    card = home[home.index("<h2>Orders</h2>") : home.index("</section>", home.index("<h2>Orders</h2>"))]
    assert '<p class="big">9</p>' in card  # the held one is not done: "Not done yet" counts it, once
    assert "1 held</a>" not in card
    assert '?entity=orders&amp;status=created">3 created</a> · ' in card and "2 warnings</a>" in card
    assert "Errors" not in home and "handled this month" not in home


def test_home_shows_what_waits_with_the_oldest_age_and_reason_and_never_says_nice_meanwhile(personas, connected):
    from connections.models import Delivery

    home = reverse("home", args=[personas.integration.number])
    with time_machine.travel(timezone.now() - timedelta(minutes=30)):
        # Webhooks stored while Redis was away: no transfer yet, but orders all the same.
        for _ in range(2):
            Delivery.objects.create(
                integration=personas.integration, module=connected.source, topic="orders/paid", body=b"{}"
            )
    Delivery.objects.create(
        integration=personas.integration, module=connected.source, body=b"{}", status=Delivery.Status.PROCESSED
    )
    silent = "e-conomic has not answered since 10:32: waiting for it"
    for n in range(3):
        ended(connected, n, Status.RETRYING, silent, minutes_ago=20 - n)
    ended(connected, 3, Status.RETRYING, "Waiting for an order pack being paid", minutes_ago=4)
    ended(connected, 4, Status.PENDING, minutes_ago=1)
    ended(connected, 5, Status.HELD, "No orders left this month, and automatic top-up is off", minutes_ago=9)
    ended(connected, 6, Status.CREATED)  # done: not waiting
    body = personas.client(personas.viewer).get(home).content.decode()

    panel = body[body.index('id="waiting"') : body.index("</section>", body.index('id="waiting"'))]
    assert "8 received and not done yet</strong>; the oldest has waited 30\xa0minutes" in panel
    lines = [re.sub(r"<[^>]+>", "", line).split() for line in re.findall(r"<li>(.*?)</li>", panel, re.S)]
    assert [" ".join(line) for line in lines] == [
        "2 received: webhooks from the shop stored, not read yet (they become transfers when read) · the oldest for "
        "30 minutes",
        f"3 retrying: {silent} · the oldest for 20 minutes",
        "1 held: No orders left this month, and automatic top-up is off · the oldest for 9 minutes",
        "1 retrying: Waiting for an order pack being paid · the oldest for 4 minutes",
        "1 pending: waiting for a worker to send them · the oldest for 1 minute",
    ]
    assert "/log/?status=waiting" in panel
    assert "Nice." not in body and "No failed transfers or warnings so far; 8 not done yet" in body

    # Once everything is done, and nothing failed, Home may say so.
    Transfer.objects.filter(status__in=UNFINISHED).update(status=Status.CREATED)
    Delivery.objects.update(status=Delivery.Status.PROCESSED)
    body = personas.client(personas.viewer).get(home).content.decode()
    assert "Nothing is waiting" in body and "No failed transfers or warnings. Nice." in body


def test_the_log_lists_what_home_counts_as_not_done_yet(personas, connected):
    for n, status in enumerate([Status.PENDING, Status.RUNNING, Status.RETRYING, Status.HELD, Status.CREATED]):
        ended(connected, n, status, "why" if status in (Status.RETRYING, Status.HELD) else "")
    viewer = personas.client(personas.viewer)
    log = viewer.get(reverse("log", args=[personas.integration.number]), {"status": "waiting"}).content.decode()
    assert sorted(re.findall(r'class="log-ref">(#\d+)<', log)) == ["#0", "#1", "#2", "#3"]
    home = viewer.get(reverse("home", args=[personas.integration.number])).content.decode()
    assert "4 received and not done yet" in home


def test_numbers_read_the_same_on_home_subscription_and_the_log(personas, connected):
    from billing.models import Usage

    usage = Usage.of(personas.integration)
    usage.included, usage.used = 20000, 12345
    usage.save()
    DailyCount.objects.create(
        integration=personas.integration, day=timezone.now().date(), connection_label=connected.label,
        entity="orders", created=20000,
    )  # fmt: skip
    waited = ended(connected, 1, Status.RETRYING, "Waiting for an order pack being paid")
    waited.states.create(kind="waiting", note="Waiting for an order pack being paid", times=20000,
                         last_at=timezone.now())  # fmt: skip
    viewer = personas.client(personas.viewer)
    number = personas.integration.number
    home = viewer.get(reverse("home", args=[number])).content.decode()
    subscription = viewer.get(reverse("subscription", args=[number])).content.decode()
    transfer = viewer.get(reverse("transfer_detail", args=[number, waited.code])).content.decode()
    assert '<p class="big">20,000</p>' in home  # orders done this month
    assert '12,345 <span class="muted">of 20,000</span>' in home and "12,345 of 20,000 orders used" in home
    assert '<td class="num">20,000</td>' in home and ">20,000</text>" in home  # the table and the chart's scale
    assert '12,345 <span class="muted">of 20,000</span>' in subscription and "<dd>20,000</dd>" in subscription
    assert "20,000 times" in transfer
    # A number that is an address, not an amount, stays bare.
    assert f'href="/i/{number}/log/' in home and f'href="/i/{number}/' in subscription
