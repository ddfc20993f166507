from django.core.management.base import BaseCommand

from billing import usage


class Command(BaseCommand):
    help = "Queue again the held transfers of integrations whose orders are available again; beat runs this often."

    def handle(self, *args, **options) -> None:
        released = usage.release_where_possible()
        self.stdout.write(f"release_held_transfers: queued {released} held transfers again")
