from django.core.management.base import BaseCommand

from billing import packs


class Command(BaseCommand):
    help = (
        "Ask Stripe again, with the same key, about order packs whose payment's answer was lost, and make the "
        "invoices of paid packs Stripe failed to make; beat: each minute."
    )

    def handle(self, *args, **options) -> None:
        answered = packs.ask_again_about_lost_payments()
        invoiced = packs.invoice_paid_packs()
        self.stdout.write(
            f"ask_again_about_packs: Stripe answered about {answered} order packs; {invoiced} invoices made"
        )
