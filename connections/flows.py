"""The flows a connection can carry: what to fetch from the source and how to send one record to the target.

A flow speaks to its systems only through the connector contract (connections/systems/__init__.py) and the common
format (connections/common.py): it works for every webshop and every accounting system.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Literal

from connections.common import Outcome, StockLevel, to_data
from connections.systems import JSON, PARTIAL, Busy, Claim, Raw, Record, System, accounting, webshop
from transferlog.models import HeldFor, Transfer

if TYPE_CHECKING:
    from connections.models import Connection, Mapping

# (source_ref, reference, source_updated_at, the record as received)
Fetched = tuple[str, str, datetime | None, Raw]
Send = Callable[["Connection", Raw, "Mapping", Record, Claim], Outcome]


@dataclass(frozen=True, kw_only=True)
class Flow:
    key: str
    label: str
    entity: str
    source: Literal["webshop", "accounting"]  # the category of the source system
    target: Literal["webshop", "accounting"]  # the category of the receiving system
    fetch: Callable[[Connection, datetime], Iterator[Fetched]]
    send: Send
    metered: bool = False  # a create counts against the allowance (IEX's rule: orders, not their credit notes)
    awaited: bool = False  # another flow's transfers may wait for its records' documents (refunds, for invoices)
    # Webhooks of this entity may announce the flow's records too (WooCommerce's order.updated lists its refunds).
    announced_by: str = ""

    def key_of(self, data: Raw) -> str:
        """The source record the mapping is kept for: one document per shop order, refund, product or SKU."""
        return str(data.get("id") or data.get("sku"))

    def posted_by(self, system: System) -> bool:
        """Whether the system posts webhooks that bring this flow's records: only then can webhooks drive it
        (e-conomic posts none, so its stock is fetched on a schedule)."""
        if system.webhooks is None:
            return False
        posted = set(system.webhooks.TOPICS.values())
        return self.entity in posted or bool(self.announced_by and self.announced_by in posted)


# --- orders: webshop > accounting ----------------------------------------------------------------------------


def fetch_orders(connection: Connection, since: datetime) -> Iterator[Fetched]:
    shop = webshop(connection.source.kind)
    for order in shop.client(connection.source).orders_since(since):
        yield (*shop.transforms.order_ref(order), order)


def send_order(connection: Connection, data: Raw, mapping: Mapping, record: Record, claim: Claim) -> Outcome:
    shop = webshop(connection.source.kind)
    settings = connection.source.settings_values()
    data = _whole(connection, "orders", data, record)
    order = shop.transforms.to_order(data, settings)
    # A cancellation withdraws what was sent, whatever the order's state.
    if not order.cancelled and (reason := shop.transforms.skip_reason(data, settings)):
        return Outcome("skipped", reason)
    record("transformed", to_data(order), "In IEX's common format")
    books = accounting(connection.target.kind)
    return books.client(connection.target).send_order(order, mapping, record, claim)


def _whole(connection: Connection, entity: str, data: Raw, record: Record) -> Raw:
    """The record itself, or, when a webhook only announced it (PARTIAL), the whole record read from the shop."""
    if not data.get(PARTIAL):
        return data
    whole = webshop(connection.source.kind).client(connection.source).whole(entity, data)
    record("read", whole, f"Read from {connection.source.system.label}: its webhook only said which record")
    return whole


# --- credit notes: webshop > accounting ----------------------------------------------------------------------


def fetch_refunds(connection: Connection, since: datetime) -> Iterator[Fetched]:
    shop = webshop(connection.source.kind)
    for refund in shop.client(connection.source).refunds_since(since):
        yield (*shop.transforms.refund_ref(refund), refund)


def send_credit_note(connection: Connection, data: Raw, mapping: Mapping, record: Record, claim: Claim) -> Outcome:
    """A refund credits the invoice of its order: the order's document on the orders connection of the same two
    systems. Until that invoice exists the credit note is held, and the order's transfer releases it when it makes
    the invoice. The order is the one the invoice was made from (its last transfer's data), read from the shop only
    when the Log no longer has it."""
    order_ref = str(data.get("order_id"))
    orders = connection.source.outgoing.filter(flow="orders", target=connection.target).first()
    if orders is None:
        return Outcome("skipped", "No orders connection between these two systems: no invoice to credit")
    sold = Transfer.objects.filter(connection=orders, source_ref=order_ref).exclude(source_data=None)
    sold = sold.exclude(source_data__has_key=PARTIAL)  # a webhook that only named the order (trashed) is no order
    sold = sold.order_by("-id")
    invoice = orders.mappings.filter(source_ref=order_ref).first()
    if invoice is None or not invoice.target_ref:
        if invoice is not None and invoice.leased_by is not None:
            raise Busy(f"The invoice of order {order_ref} is being sent; the refund credits it next")
        named = sold.values_list("reference", flat=True).first()
        waiting = f"Waiting for the invoice of order {named or order_ref}: the refund is credited once it is made"
        held_for = HeldFor.record(orders.pk, order_ref)
        return Outcome("held", waiting, held_for=held_for, reference=f"{named} refund" if named else "")
    shop = webshop(connection.source.kind)
    settings = connection.source.settings_values()
    data = _whole(connection, "credit_notes", data, record)
    order = sold.values_list("source_data", flat=True).first() or shop.client(connection.source).order(order_ref)
    credit = shop.transforms.to_credit_note(data, order, settings)
    record("transformed", to_data(credit), f"Refund of {credit.order_reference} in IEX's common format")
    books = accounting(connection.target.kind)
    outcome = books.client(connection.target).send_credit_note(credit, invoice, mapping, record, claim)
    outcome.reference = credit.reference  # "#1001 refund 1": found in the Log by the order's number
    return outcome


# --- products: webshop > accounting --------------------------------------------------------------------------


def fetch_products(connection: Connection, since: datetime) -> Iterator[Fetched]:
    shop = webshop(connection.source.kind)
    for product in shop.client(connection.source).products_since(since):
        yield (*shop.transforms.product_ref(product), product)


def send_product(connection: Connection, data: Raw, mapping: Mapping, record: Record, claim: Claim) -> Outcome:
    products = webshop(connection.source.kind).transforms.to_products(data, connection.source.settings_values())
    if not products:
        return Outcome("skipped", "The product has no variant with a SKU, so it has no product number")
    client = accounting(connection.target.kind).client(connection.target)
    outcomes = []
    for product in products:
        record("transformed", to_data(product), f"Variant {product.sku} in IEX's common format")
        outcomes.append(client.send_product(product, mapping, record))
    action = "created" if any(o.action == "created" for o in outcomes) else "updated"
    skipped = [o.reason for o in outcomes if o.status == "skipped"]
    if len(skipped) == len(outcomes):
        return Outcome("skipped", "; ".join(skipped))
    return Outcome(action, "; ".join(skipped), action, ", ".join(p.sku for p in products))


# --- stock: accounting > webshop -----------------------------------------------------------------------------


def fetch_stock(connection: Connection, since: datetime) -> Iterator[Fetched]:
    """Stock levels have no change time in e-conomic: every level that differs from the last one sent."""
    known: dict[str, JSON] = dict(connection.mappings.values_list("source_ref", "data"))
    for level in accounting(connection.source.kind).client(connection.source).stock_levels():
        sent = known.get(level.sku)
        if not isinstance(sent, dict) or sent.get("available") != level.available:
            yield level.sku, level.sku, None, {"sku": level.sku, "available": level.available}


def send_stock(connection: Connection, data: Raw, mapping: Mapping, record: Record, claim: Claim) -> Outcome:
    # The shop's stock item found by the last write is kept on the mapping: the next write needs no search for it.
    known = str((mapping.data or {}).get("item") or "")
    level = StockLevel(sku=str(data["sku"]), available=int(str(data["available"])), item_ref=known)
    record("sent", to_data(level), f"Set available stock of {level.sku} to {level.available}")
    (answer,) = webshop(connection.target.kind).client(connection.target).set_stock([level])
    record("answer", answer, "The shop's answer")
    if "skipped" in answer:
        return Outcome("skipped", str(answer["skipped"]))
    level_set = answer.get("inventory_level")
    item = level_set.get("inventory_item_id") if isinstance(level_set, dict) else None
    mapping.target_ref, mapping.target_state = level.sku, "stock"
    mapping.data = {"available": level.available, "item": str(item or known)}
    return Outcome("updated", "", "updated", level.sku)


FLOWS: dict[str, Flow] = {
    flow.key: flow
    for flow in (
        Flow(
            key="orders",
            label="orders",
            entity="orders",
            source="webshop",
            target="accounting",
            fetch=fetch_orders,
            send=send_order,
            metered=True,
            awaited=True,
        ),
        Flow(
            key="credit_notes",
            label="credit notes",
            entity="credit_notes",
            source="webshop",
            target="accounting",
            fetch=fetch_refunds,
            send=send_credit_note,
            announced_by="orders",
        ),
        Flow(
            key="products",
            label="products",
            entity="products",
            source="webshop",
            target="accounting",
            fetch=fetch_products,
            send=send_product,
        ),
        Flow(
            key="stock",
            label="stock",
            entity="stock",
            source="accounting",
            target="webshop",
            fetch=fetch_stock,
            send=send_stock,
        ),
    )
}
