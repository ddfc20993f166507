from django.core.management.base import BaseCommand
from django.utils import timezone

from transferlog.models import purge, retention_groups


class Command(BaseCommand):
    help = (
        "Delete transfers past their plan's retention (failed ones are kept twice as long); beat runs this daily."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="only count what would be deleted")
        parser.add_argument("--batch", type=int, default=1000, help="rows deleted per transaction")

    def handle(self, *args, **options) -> None:
        count = purge(timezone.now(), batch=options["batch"], dry_run=options["dry_run"])
        verb = "would delete" if options["dry_run"] else "deleted"
        self.stdout.write(
            f"purge_transfers: {verb} {count} transfers "
            f"(kept {'/'.join(str(d) for d in sorted({d for d, _ in retention_groups()}))} days by the "
            "integrations' plans; failed ones twice as long)"
        )
