from datetime import UTC, date, datetime

from django.core.management.base import BaseCommand, CommandError
from django.db.models import Count, Q
from django.utils import timezone

from billing.models import Usage, month_of
from transferlog.models import Status


class Command(BaseCommand):
    help = "Print each integration's orders in a month: included, bought, used and held."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--month", help="YYYY-MM (default: this month, UTC)")

    def handle(self, *args, **options) -> None:
        month = month_of(timezone.now())
        if options["month"]:
            try:
                year, number = (int(part) for part in options["month"].split("-"))
                month = date(year, number, 1)
            except ValueError as exc:
                raise CommandError(f"--month must be YYYY-MM, got {options['month']!r}") from exc
        start = datetime(month.year, month.month, 1, tzinfo=UTC)
        end = datetime(month.year + month.month // 12, month.month % 12 + 1, 1, tzinfo=UTC)
        held = Q(
            integration__transfers__status=Status.HELD,
            integration__transfers__created__gte=start,
            integration__transfers__created__lt=end,
        )
        rows = (
            Usage.objects.filter(month=month)
            .select_related("integration")
            .annotate(held=Count("integration__transfers", filter=held))
            .order_by("integration__number")
        )
        self.stdout.write(
            f"{'number':<8} {'integration':<30} {'included':>9} {'bought':>8} {'used':>8} {'held':>6}"
        )
        totals = [0, 0, 0, 0]
        for usage in rows:
            values = [usage.included, usage.bought, usage.used, usage.held]
            totals = [t + v for t, v in zip(totals, values, strict=True)]
            self.stdout.write(
                f"{usage.integration.number:<8} {usage.integration.name[:30]:<30} "
                f"{values[0]:>9} {values[1]:>8} {values[2]:>8} {values[3]:>6}"
            )
        self.stdout.write(
            f"usage_report: {month:%Y-%m}, {len(rows)} integrations; included {totals[0]}, bought {totals[1]}, "
            f"used {totals[2]}, held {totals[3]}"
        )
