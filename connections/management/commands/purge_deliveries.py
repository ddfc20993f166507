from django.core.management.base import BaseCommand
from django.utils import timezone

from connections.intake import DELIVERY_RETENTION_DAYS, purge_deliveries


class Command(BaseCommand):
    help = f"Delete handled webhook deliveries older than {DELIVERY_RETENTION_DAYS} days; beat runs this daily."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="only count what would be deleted")

    def handle(self, *args, **options) -> None:
        count = purge_deliveries(timezone.now(), dry_run=options["dry_run"])
        verb = "would delete" if options["dry_run"] else "deleted"
        self.stdout.write(
            f"purge_deliveries: {verb} {count} webhook deliveries handled over {DELIVERY_RETENTION_DAYS} days ago"
        )
