"""Error digests (one per burst, none when nothing is new), status reports at each frequency, and the settings."""

import re
from datetime import UTC, date, datetime, timedelta

import pytest
import responses
import time_machine
from django.core import mail
from django.urls import reverse

from connections import gate
from dashboard import notifications
from iex.models import Member, ReportFrequency
from scheduling.models import Job
from scheduling.tasks import run_job
from transferlog.models import DailyCount, Status, Transfer

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 26, 12, tzinfo=UTC)
SHOP_ORDERS = "https://nordic-bikes.myshopify.com/admin/api/2025-01/orders.json"


@pytest.fixture
def committed(django_capture_on_commit_callbacks):
    return lambda: django_capture_on_commit_callbacks(execute=True)


def fail(connection, n, at, status=Status.FAILED, reason=""):
    with time_machine.travel(at, tick=False):
        transfer = Transfer.objects.create(
            integration=connection.integration,
            connection=connection,
            connection_label=connection.label,
            entity="orders",
            source_ref=str(n),
            reference=f"#{n}",
            status=Status.RUNNING,
        )
        transfer.finish(status, reason or f"e-conomic said no to #{n}")
    return transfer


def warn(connection, n, at):
    reason = (
        "Error in totals validation: e-conomic's total 4,000.00 differs from the shop's 4496.00 DKK by 496.00; "
        "the document stays a draft"
    )
    return fail(connection, n, at, Status.WARNING, reason)


def digest(at, committed):
    with time_machine.travel(at, tick=False), committed():
        return notifications.send_error_digests()


def test_a_burst_of_failures_is_one_digest_and_nothing_new_is_no_email(personas, connected, committed):
    viewer = personas.member(personas.viewer)
    viewer.error_emails = False
    viewer.save()
    for n in range(3):
        fail(connected, n, NOW - timedelta(minutes=5 - n))
    assert digest(NOW, committed) == 1
    (email,) = mail.outbox
    assert sorted(email.to) == ["admin@shop.example", "owner@shop.example"]
    assert email.subject == f"Integration no. {personas.integration.number}: 3 failed transfers"
    assert all(f"#{n}" in email.body for n in range(3)) and "e-conomic said no to #2" in email.body
    assert f"/i/{personas.integration.number}/settings/#notifications" in email.body
    # Nothing new: nothing, now or later.
    assert digest(NOW + timedelta(minutes=1), committed) == 0
    assert digest(NOW + timedelta(minutes=30), committed) == 0
    # A new failure within 15 minutes of the last digest waits; after them it goes, alone.
    fail(connected, 9, NOW + timedelta(minutes=31))
    assert digest(NOW + timedelta(minutes=40), committed) == 1
    assert len(mail.outbox) == 2 and "#9" in mail.outbox[1].body and "#2" not in mail.outbox[1].body
    fail(connected, 10, NOW + timedelta(minutes=41))
    assert digest(NOW + timedelta(minutes=50), committed) == 0  # 10 minutes after the last one
    assert digest(NOW + timedelta(minutes=56), committed) == 1
    assert len(mail.outbox) == 3


def test_a_late_job_and_refused_credentials_are_told_once(personas, connected, committed):
    connected.trigger = "schedule"
    connected.save()
    job = Job.ensure_for(connected)
    Job.objects.filter(pk=job.pk).update(on_time_at=NOW - timedelta(hours=2), interval=300)
    with time_machine.travel(NOW - timedelta(minutes=5), tick=False):
        connected.target.credentials_refused("e-conomic answered 401: invalid agreement grant token")
    assert digest(NOW, committed) == 1
    body = mail.outbox[0].body
    assert "Nothing moves to or from e-conomic: e-conomic answered 401" in body
    assert f'The job "{connected.label}" has not completed' in body
    assert digest(NOW + timedelta(minutes=20), committed) == 0  # told already


def test_warnings_are_in_the_digest_linked_to_their_log_lines(personas, connected, committed):
    fail(connected, 1, NOW - timedelta(minutes=6))
    fail(connected, 2, NOW - timedelta(minutes=5))
    warning = warn(connected, 3, NOW - timedelta(minutes=4))
    assert digest(NOW, committed) == 1
    (email,) = mail.outbox
    assert email.subject == f"Integration no. {personas.integration.number}: 2 failed transfers, 1 warning"
    text, (html, _) = email.body, email.alternatives[0]
    assert (
        "Warnings (sent, but to check):\n- #3 (Shopify > e-conomic: orders, 26 Nov 11:56 UTC): Error in totals"
        in text
    )
    log_line = f"/i/{personas.integration.number}/log/?q=%233&open={warning.code}"
    assert log_line in text and log_line.replace("&", "&amp;") in html
    assert "Error in totals validation" in html and "<strong>Warnings</strong>" in html
    # A warning alone is news too.
    warn(connected, 4, NOW + timedelta(minutes=20))
    assert digest(NOW + timedelta(minutes=30), committed) == 1
    assert mail.outbox[1].subject == f"Integration no. {personas.integration.number}: 1 transfer with a warning"
    assert (
        "#4" in mail.outbox[1].body
        and "#3" not in mail.outbox[1].body
        and "Failed transfers" not in (mail.outbox[1].body)
    )


@responses.activate
def test_a_job_that_fails_every_run_is_told_late_once_with_its_last_error(
    personas, connected, committed, monkeypatch
):
    # The runs are minutes apart in the test's time, not in Redis's: the shop's gate must not count them as in a row.
    monkeypatch.setattr(gate, "FAILURES", 100)
    job = Job.ensure_for(connected)
    with time_machine.travel(NOW - timedelta(minutes=20), tick=False):
        job.start_now()

    def runs(status, *minutes):
        responses.reset()
        responses.get(SHOP_ORDERS, status=status, json={"orders": []} if status == 200 else None)
        for m in minutes:
            with time_machine.travel(NOW + timedelta(minutes=m), tick=False):
                run_job(job.pk)

    runs(502, -20, -15, -10, -5)
    assert digest(NOW, committed) == 1
    assert mail.outbox[0].subject == f"Integration no. {personas.integration.number}: a job is late"
    assert (
        f'The job "{connected.label}" has not completed successfully for over two intervals (last success: never).'
        " Its last run failed: nordic-bikes.myshopify.com answered 502" in mail.outbox[0].body
    )
    runs(502, 5, 10)
    assert digest(NOW + timedelta(minutes=20), committed) == 0  # told already: failing on is not news
    runs(200, 25)  # on time again ...
    runs(502, 30)
    assert digest(NOW + timedelta(minutes=34), committed) == 0  # ... and not late for two intervals
    assert digest(NOW + timedelta(minutes=36), committed) == 1  # late again: news again
    assert "(last success: 26 Nov 12:25 UTC)" in mail.outbox[1].body


def only_the_owner_gets_reports(personas, frequency):
    Member.objects.update(report_frequency=ReportFrequency.OFF)
    owner = personas.member(personas.owner)
    owner.report_frequency = frequency
    owner.save()


@pytest.mark.parametrize(
    ("frequency", "sent_on"),
    [
        (ReportFrequency.DAILY, {date(2026, 11, 23), date(2026, 11, 24), date(2026, 12, 1)}),
        (ReportFrequency.WEEKLY, {date(2026, 11, 23)}),  # a Monday
        (ReportFrequency.MONTHLY, {date(2026, 12, 1)}),
        (ReportFrequency.OFF, set()),
    ],
)
def test_status_reports_go_out_on_the_days_they_are_due_once(personas, connected, committed, frequency, sent_on):
    only_the_owner_gets_reports(personas, frequency)
    DailyCount.objects.create(
        integration=personas.integration,
        day=date(2026, 11, 22),
        connection_label=connected.label,
        entity="orders",
        created=12,
        updated=4,
        skipped=2,
        failed=1,
    )
    from billing.models import Usage

    with time_machine.travel(datetime(2026, 11, 22, tzinfo=UTC)):
        Usage.of(personas.integration)
    sent = set()
    for day in (date(2026, 11, 23), date(2026, 11, 24), date(2026, 12, 1)):
        for hour in (0, 5):  # beat runs it every hour: the second run sends nothing
            with (
                time_machine.travel(datetime(day.year, day.month, day.day, hour, tzinfo=UTC), tick=False),
                committed(),
            ):
                if notifications.send_status_reports():
                    assert hour == 0
                    sent.add(day)
    assert sent == sent_on
    assert len(mail.outbox) == len(sent_on)
    if frequency == ReportFrequency.WEEKLY:
        (email,) = mail.outbox
        assert (
            email.subject == f"Integration no. {personas.integration.number}: your weekly report, 16 Nov to 22 Nov"
        )
        assert f"{connected.label}: 12 created, 4 updated, 2 skipped, 1 failed" in email.body
        assert "#notifications" in email.body
        assert "Orders in November: 0 of 1,000 used." in email.body  # the month the period ended in


def test_a_status_report_has_warnings_and_held_per_connection(personas, connected, committed):
    only_the_owner_gets_reports(personas, ReportFrequency.DAILY)
    DailyCount.objects.create(
        integration=personas.integration,
        day=date(2026, 11, 22),
        connection_label=connected.label,
        entity="orders",
        created=12,
        updated=4,
        skipped=2,
        warning=3,
        held=5,
        failed=1,
    )
    with time_machine.travel(datetime(2026, 11, 23, tzinfo=UTC), tick=False), committed():
        assert notifications.send_status_reports() == 1
    (email,) = mail.outbox
    assert f"{connected.label}: 12 created, 4 updated, 2 skipped, 1 failed, 3 warnings, 5 held" in email.body
    html = email.alternatives[0][0]
    headers = ["Connection", "Created", "Updated", "Skipped", "Warnings", "Held", "Failed"]
    assert re.findall(r"<th[^>]*>(\w+)</th>", html) == headers
    cells = re.findall(r"<td[^>]*>([^<]*)</td>", html)
    assert cells == [connected.label.replace(">", "&gt;"), "12", "4", "2", "3", "5", "1"]


def test_a_status_report_tells_the_allowance_of_a_month_without_usage_and_makes_none(
    personas, connected, committed
):
    from billing.models import Plan, Subscription, Usage

    only_the_owner_gets_reports(personas, ReportFrequency.DAILY)
    with time_machine.travel(datetime(2026, 11, 23, tzinfo=UTC), tick=False), committed():
        assert notifications.send_status_reports() == 1
    # No order in November, no subscription yet: none used of what the trial's plan includes.
    assert "Orders in November: 0 of 1,000 used." in mail.outbox[0].body
    assert "Orders in November: <strong>0</strong> of 1,000 used." in mail.outbox[0].alternatives[0][0]
    assert not Usage.objects.exists() and not Subscription.objects.exists()  # a report changes nothing
    Subscription.of(personas.integration, Plan.objects.get(code="basic"))
    with time_machine.travel(datetime(2026, 11, 24, tzinfo=UTC), tick=False), committed():
        assert notifications.send_status_reports() == 1
    assert "Orders in November: 0 of 200 used." in mail.outbox[1].body
    assert not Usage.objects.exists()


def test_each_member_sets_their_own_notifications(personas):
    url = reverse("save_notifications", args=[personas.integration.number])
    response = personas.client(personas.viewer).post(url, {"report_frequency": "daily"})
    assert response.status_code == 302
    viewer = personas.member(personas.viewer)
    assert (viewer.error_emails, viewer.report_frequency) == (False, "daily")
    assert personas.member(personas.owner).report_frequency == "weekly"  # nobody else's


def test_owners_choose_who_gets_error_emails_admins_all_but_owners_and_viewers_none(personas):
    owner, viewer = personas.member(personas.owner), personas.member(personas.viewer)
    url = reverse("set_member_error_emails", args=[personas.integration.number, owner.code])
    assert personas.client(personas.viewer).post(url, {}).status_code == 403
    assert personas.client(personas.admin).post(url, {}).status_code == 403  # an owner's: not an admin's to change
    owner.refresh_from_db()
    assert owner.error_emails
    of_viewer = reverse("set_member_error_emails", args=[personas.integration.number, viewer.code])
    assert personas.client(personas.admin).post(of_viewer, {"error_emails": "on"}).status_code == 302
    assert personas.client(personas.owner).post(url, {}).status_code == 302
    owner.refresh_from_db()
    assert not owner.error_emails
    page = personas.client(personas.owner).get(reverse("settings", args=[personas.integration.number]))
    assert 'id="notifications"' in page.content.decode()


def test_a_failure_stamped_just_before_the_digest_waits_for_the_next_one(personas, connected, committed):
    """A failure is stamped before its transaction commits: the last minute is left to the next digest."""
    fail(connected, 1, NOW - timedelta(minutes=5))
    fail(connected, 2, NOW - timedelta(seconds=20))
    assert digest(NOW, committed) == 1
    assert "#1" in mail.outbox[0].body and "#2" not in mail.outbox[0].body
    assert digest(NOW + timedelta(minutes=16), committed) == 1
    assert "#2" in mail.outbox[1].body and "#1" not in mail.outbox[1].body


def test_a_mail_server_error_marks_nothing_as_told(personas, connected, committed, monkeypatch):
    from iex.lib import emails

    fail(connected, 1, NOW - timedelta(minutes=5))
    real = emails.send
    monkeypatch.setattr(emails, "send", lambda *a, **k: (_ for _ in ()).throw(OSError("SMTP refused")))
    assert digest(NOW, committed) == 0
    monkeypatch.setattr(emails, "send", real)
    assert digest(NOW + timedelta(minutes=1), committed) == 1
    assert "#1" in mail.outbox[0].body
