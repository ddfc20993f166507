"""Fill the Log's search fields (the customer's names and email) of orders received before intake filled them, as
intake reads them now (each webshop's transforms). Run once after deploying the release that added the search; in
batches by id, each its own transaction, so intake goes on meanwhile; run again, it does only what is left."""

from django.core.management.base import BaseCommand

from connections.systems import SYSTEMS, Webshop
from transferlog.models import Transfer, search_text

BATCH = 2000


def _webshop(kind: str | None, label: str) -> Webshop | None:
    """The webshop that sent the order: its connection's source, or (the module removed since) the one its label
    names ("Shopify > e-conomic: orders")."""
    by_label = {system.label: system for system in SYSTEMS.values()}
    system = SYSTEMS.get(kind or "") or by_label.get(label.partition(" > ")[0])
    return system if isinstance(system, Webshop) else None


def fill_search_terms() -> int:
    """How many orders it filled."""
    done = 0
    orders = Transfer.objects.filter(entity="orders", search_terms="", search_email="").exclude(source_data=None)
    orders = orders.order_by("pk")
    last = 0
    while batch := list(
        orders.filter(pk__gt=last).values_list(
            "pk", "connection__source__kind", "connection_label", "source_data"
        )[:BATCH]
    ):
        filled = []
        for pk, kind, label, data in batch:
            shop = _webshop(kind, label)
            try:
                names, email = shop.transforms.search_terms(data) if shop and isinstance(data, dict) else ([], "")
            except (AttributeError, TypeError, ValueError):
                continue  # as at intake: a record of an odd shape is found by its numbers
            if (words := search_text(*names)) or email:
                filled.append(Transfer(pk=pk, search_terms=words, search_email=search_text(email)))
        Transfer.objects.bulk_update(filled, ["search_terms", "search_email"], batch_size=500)
        done += len(filled)
        last = batch[-1][0]
    return done


class Command(BaseCommand):
    help = (
        "Fill the Log's customer search of orders received before it (once, after deploying it; intake goes on)."
    )

    def handle(self, *args, **options) -> None:
        self.stdout.write(f"fill_search_terms: {fill_search_terms()} orders found by their customer now")
