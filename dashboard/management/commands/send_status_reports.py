from django.core.management.base import BaseCommand

from dashboard import notifications


class Command(BaseCommand):
    help = "Email each member the status report due today, once; beat runs this hourly."

    def handle(self, *args, **options) -> None:
        sent = notifications.send_status_reports()
        self.stdout.write(f"send_status_reports: sent {sent} reports")
