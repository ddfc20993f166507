"""The emails that tell members what happened: error digests and status reports.

Error digests: at most one per integration every 15 minutes, to the members who get error emails, listing what
is new since the last one (failed transfers, warnings such as a document left as a draft for the bookkeeper, late
jobs, a system refusing our credentials); nothing when nothing is new. Status reports: per member, daily / weekly
(Mondays) / monthly (the 1st), from the per-day counters.
Beat runs both every few minutes; each is safe to run twice (the integration's row lock, the member's sent-on date).
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from django.db import transaction
from django.db.models import Q, QuerySet, Sum
from django.urls import reverse
from django.utils import timezone

from billing.models import Usage, month_of
from connections.models import Module
from iex.lib import emails
from iex.lib.logs import log_context
from iex.models import Integration, Member, ReportFrequency
from scheduling.models import Job
from transferlog.models import DailyCount, Status, Transfer

logger = logging.getLogger(__name__)

DIGEST_EVERY = timedelta(minutes=15)
DIGEST_LISTS = 20  # failures (and warnings) listed by name; the rest are counted
SETTLE = timedelta(minutes=1)


def send_error_digests(now: datetime | None = None) -> int:
    """Send the digests that are due; returns how many went out."""
    now = now or timezone.now()
    since = now - timedelta(days=1)  # older news is not news: a digest tells what happened since yesterday
    candidates = set(
        Transfer.objects.filter(status__in=[Status.FAILED, Status.WARNING], updated__gte=since)
        .values_list("integration_id", flat=True)
        .distinct()
    )
    candidates |= set(
        Job.late(now).filter(late_notified=False).values_list("connection__integration_id", flat=True)
    )
    candidates |= set(
        Module.objects.filter(credentials_failed_at__gte=since).values_list("integration_id", flat=True)
    )
    candidates |= set(Module.objects.filter(unreachable_since__gte=since).values_list("integration_id", flat=True))
    sent = 0
    for integration_id, number in Integration.objects.filter(pk__in=candidates).values_list("pk", "number"):
        with log_context(integration=number):
            try:
                sent += _digest(integration_id, now, since)
            except Exception:
                # Nothing was marked as told (the transaction rolled back): the next run tries again.
                logger.exception("error digest failed")
    return sent


def _digest(integration_id: int, now: datetime, since: datetime) -> bool:
    # A failure is stamped just before its transaction commits: leave the last minute to the next digest, so
    # one committing late is not passed by the cursor.
    until = now - SETTLE
    with transaction.atomic():
        integration = Integration.objects.select_for_update().get(pk=integration_id)
        if integration.digest_sent_at and now - integration.digest_sent_at < DIGEST_EVERY:
            return False
        cursor = max(integration.digest_cursor or since, since)
        new = Transfer.objects.filter(integration=integration, updated__gt=cursor, updated__lte=until)
        listed, more = _listed(new.filter(status=Status.FAILED))
        warnings, more_warnings = _listed(new.filter(status=Status.WARNING))
        late = list(Job.late(now).filter(connection__integration=integration, late_notified=False))
        refused = list(
            integration.modules.filter(credentials_failed_at__gt=cursor, credentials_failed_at__lte=until)
        )
        # A system that stopped answering (connections/gate.py): told once, when it stops.
        silent = list(integration.modules.filter(unreachable_since__gt=cursor, unreachable_since__lte=until))
        if not (listed or warnings or late or refused or silent):
            return False
        integration.digest_sent_at, integration.digest_cursor = now, until
        integration.save(update_fields=["digest_sent_at", "digest_cursor"])
        Job.objects.filter(pk__in=[j.pk for j in late]).update(late_notified=True)
        recipients = list(integration.members.filter(error_emails=True).values_list("user__email", flat=True))
        if not recipients:
            return False
        context = {
            "integration": integration,
            "failures": listed,
            "more": more,
            "failed_count": len(listed) + more,
            "warnings": warnings,
            "more_warnings": more_warnings,
            "warning_count": len(warnings) + more_warnings,
            "late": late,
            "refused": refused,
            "silent": silent,
            "log_url": reverse("log", args=[integration.number]),
            "settings_url": reverse("settings", args=[integration.number]) + "#notifications",
        }
        # Sent inside the transaction: if the mail server refuses, nothing is marked as told.
        emails.send("error_digest", recipients, context)
    return True


def _listed(transfers: QuerySet[Transfer]) -> tuple[list[Transfer], int]:
    """The latest DIGEST_LISTS of the transfers, and how many more there are (counted only when the list is full)."""
    listed = list(transfers.order_by("-updated")[:DIGEST_LISTS])
    return listed, (transfers.count() - len(listed) if len(listed) == DIGEST_LISTS else 0)


def report_period(frequency: str, today: date) -> tuple[date, date] | None:
    """The days (first, last) the report due today covers, or None when none is due today."""
    if frequency == ReportFrequency.DAILY:
        return today - timedelta(days=1), today - timedelta(days=1)
    if frequency == ReportFrequency.WEEKLY and today.weekday() == 0:
        return today - timedelta(days=7), today - timedelta(days=1)
    if frequency == ReportFrequency.MONTHLY and today.day == 1:
        last = today - timedelta(days=1)
        return last.replace(day=1), last
    return None


def send_status_reports(now: datetime | None = None) -> int:
    """Send each member the report due today, once; returns how many went out."""
    today = (now or timezone.now()).date()
    sent = 0
    members = Member.objects.exclude(report_frequency=ReportFrequency.OFF).filter(
        Q(report_sent_on__isnull=True) | Q(report_sent_on__lt=today)
    )
    for member in members.select_related("integration", "user"):
        period = report_period(member.report_frequency, today)
        if period is None:
            continue
        with log_context(integration=member.integration.number):
            try:
                sent += _send_report(member, period, today)
            except Exception:
                logger.exception("status report for member %s failed", member.pk)
    return sent


def _send_report(member: Member, period: tuple[date, date], today: date) -> bool:
    with transaction.atomic():
        claimed = Member.objects.filter(pk=member.pk).exclude(report_sent_on=today).update(report_sent_on=today)
        if not claimed:
            return False  # another run sent it
        context = report(member.integration, *period)
        context["settings_url"] = reverse("settings", args=[member.integration.number]) + "#notifications"
        context["frequency"] = member.get_report_frequency_display().split(" ")[0].lower()
        # Inside the transaction: if the mail server refuses, the report is not marked as sent.
        emails.send("status_report", [member.user.email], context)
    return True


def report(integration: Integration, first: date, last: date) -> dict[str, Any]:
    """Created / updated / skipped / warnings / held / failed per connection over the days, and the allowance of
    the month the period ends in."""
    rows = (
        DailyCount.objects.filter(integration=integration, day__gte=first, day__lte=last)
        .values("connection_label")
        .annotate(
            created=Sum("created"),
            updated=Sum("updated"),
            skipped=Sum("skipped"),
            failed=Sum("failed"),
            warning=Sum("warning"),
            held=Sum("held"),
        )
        .order_by("connection_label")
    )
    return {
        "integration": integration,
        "first": first,
        "last": last,
        "connections": list(rows),
        # Read, never made: a report changes nothing.
        "usage": Usage.peek(integration, month_of(datetime.combine(last, time(), UTC))),
        "home_url": reverse("home", args=[integration.number]),
    }
