from django.conf import settings
from django.core.management.base import BaseCommand

from connections import intake
from transferlog.models import Transfer


class Command(BaseCommand):
    help = (
        "Queue drains for webhook deliveries, and re-enqueue transfers, still waiting after --older-than seconds, "
        "and run again transfers whose worker died (beat runs this every SWEEP_INTERVAL_SECONDS)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--older-than",
            type=int,
            default=None,
            help="seconds a delivery may wait (default: SWEEP_AFTER_SECONDS)",
        )
        parser.add_argument("--dry-run", action="store_true", help="only count them")

    def handle(self, *args, **options) -> None:
        deliveries = intake.sweep(options["older_than"], dry_run=options["dry_run"])
        transfers = Transfer.sweep(options["older_than"], dry_run=options["dry_run"])
        verb = "would queue again" if options["dry_run"] else "queued again"
        older_than = settings.SWEEP_AFTER_SECONDS if options["older_than"] is None else options["older_than"]
        self.stdout.write(
            f"sweep_inbox: {verb} {deliveries} deliveries and {transfers} transfers waiting over {older_than} s"
        )
