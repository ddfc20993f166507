from django.core.management.base import BaseCommand

from connections import intake, pipeline


class Command(BaseCommand):
    help = (
        "Queue drains for webhook deliveries, and re-enqueue transfers, still waiting after --older-than seconds "
        "(beat runs this every minute)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--older-than", type=int, default=120, help="seconds a delivery may wait (default 120)"
        )
        parser.add_argument("--dry-run", action="store_true", help="only count them")

    def handle(self, *args, **options) -> None:
        deliveries = intake.sweep(options["older_than"], dry_run=options["dry_run"])
        transfers = pipeline.sweep(options["older_than"], dry_run=options["dry_run"])
        verb = "would queue again" if options["dry_run"] else "queued again"
        self.stdout.write(
            f"sweep_inbox: {verb} {deliveries} deliveries and {transfers} transfers waiting over "
            f"{options['older_than']} s"
        )
