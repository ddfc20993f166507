from django.core.management.base import BaseCommand

from dashboard import notifications


class Command(BaseCommand):
    help = "Email the error digests that are due, at most one per integration every 15 minutes; beat: each minute."

    def handle(self, *args, **options) -> None:
        sent = notifications.send_error_digests()
        self.stdout.write(f"send_error_digests: sent {sent} digests")
