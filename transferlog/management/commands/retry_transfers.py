from datetime import UTC, datetime, time

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from iex.models import Integration
from transferlog.models import Status
from transferlog.tasks import retry_transfers

BATCH = 1000


def parse_since(value: str) -> datetime:
    """YYYY-MM-DD (midnight UTC) or an ISO datetime (UTC unless it says otherwise)."""
    try:
        at = parse_datetime(value)
        if at is None and (day := parse_date(value)):
            at = datetime.combine(day, time.min)
    except ValueError:  # well-formed but impossible, like 2026-13-01
        at = None
    if at is None:
        raise CommandError(f"--since must be YYYY-MM-DD or an ISO datetime; got {value!r}")
    return at if timezone.is_aware(at) else at.replace(tzinfo=UTC)


class Command(BaseCommand):
    help = "Queue an integration's failed (or held) transfers again, as the Log's retry does; prints how many."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--integration", required=True, help="the integration's number")
        parser.add_argument(
            "--status", choices=[Status.FAILED.value, Status.HELD.value], default=Status.FAILED.value
        )
        parser.add_argument(
            "--since", help="only those that failed or were held since then: YYYY-MM-DD (UTC) or an ISO datetime"
        )
        parser.add_argument("--dry-run", action="store_true", help="only count them")

    def handle(self, *args, **options) -> None:
        integration = Integration.objects.filter(number=options["integration"]).first()
        if integration is None:
            raise CommandError(f"No integration {options['integration']!r}")
        if not integration.active:
            raise CommandError(
                f"Integration {integration.number} is inactive: its transfers would only be skipped; activate it first"
            )
        rows = integration.transfers.filter(status=options["status"])
        if options["since"]:
            # `updated` is when a transfer reached its status: "failed since the outage began".
            rows = rows.filter(updated__gte=parse_since(options["since"]))

        if options["dry_run"]:
            self.stdout.write(
                f"retry_transfers: would queue {rows.count()} {options['status']} transfers of {integration}"
            )
            return
        queued = last = 0
        # Keyset batches on the primary key: a transfer retried here that fails again at once is not met twice.
        while ids := list(rows.filter(pk__gt=last).order_by("pk").values_list("pk", flat=True)[:BATCH]):
            last = ids[-1]
            # The Log's "retry all failed" task, run here: Transfer.retry, then enqueue on commit.
            queued += retry_transfers(ids, by="an operator (manage.py retry_transfers)")
        self.stdout.write(f"retry_transfers: queued {queued} {options['status']} transfers of {integration}")
