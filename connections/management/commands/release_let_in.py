from django.core.management.base import BaseCommand

from connections import pipeline


class Command(BaseCommand):
    help = "Queue again the transfers held while a system refused IEX, once it lets IEX in again; beat runs this."

    def handle(self, *args, **options) -> None:
        released = pipeline.release_let_in()
        self.stdout.write(f"release_let_in: queued {released} held transfers again")
