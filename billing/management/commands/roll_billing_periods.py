from django.core.management.base import BaseCommand

from billing import subscriptions


class Command(BaseCommand):
    help = (
        "Start subscriptions a saved card waits for, end trials and periods that are over; beat runs this hourly."
    )

    def handle(self, *args, **options) -> None:
        rolled = subscriptions.roll_periods()
        self.stdout.write(f"roll_billing_periods: rolled {rolled} subscriptions")
