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
from connections.systems import JSON, Raw, Record, accounting, webshop

if TYPE_CHECKING:
    from connections.models import Connection, Mapping

# (source_ref, reference, source_updated_at, the record as received)
Fetched = tuple[str, str, datetime | None, Raw]


@dataclass(frozen=True, kw_only=True)
class Flow:
    key: str
    label: str
    entity: str
    source: Literal["webshop", "accounting"]  # the category of the source system
    target: Literal["webshop", "accounting"]  # the category of the receiving system
    fetch: Callable[[Connection, datetime], Iterator[Fetched]]
    send: Callable[[Connection, Raw, Mapping, Record], Outcome]
    metered: bool = False  # a create counts against the allowance

    def key_of(self, data: Raw) -> str:
        """The source record the mapping is kept for: one document per shop order, product or SKU."""
        return str(data.get("id") or data.get("sku"))


# --- orders: webshop > accounting ----------------------------------------------------------------------------


def fetch_orders(connection: Connection, since: datetime) -> Iterator[Fetched]:
    shop = webshop(connection.source.kind)
    for order in shop.client(connection.source).orders_since(since):
        yield (*shop.transforms.order_ref(order), order)


def send_order(connection: Connection, data: Raw, mapping: Mapping, record: Record) -> Outcome:
    shop = webshop(connection.source.kind)
    settings = connection.source.settings_values()
    if reason := shop.transforms.skip_reason(data, settings):
        return Outcome("skipped", reason)
    order = shop.transforms.to_order(data, settings)
    record("transformed", to_data(order), "In IEX's common format")
    books = accounting(connection.target.kind)
    return books.client(connection.target).send_order(order, mapping, record)


# --- products: webshop > accounting --------------------------------------------------------------------------


def fetch_products(connection: Connection, since: datetime) -> Iterator[Fetched]:
    shop = webshop(connection.source.kind)
    for product in shop.client(connection.source).products_since(since):
        yield (*shop.transforms.product_ref(product), product)


def send_product(connection: Connection, data: Raw, mapping: Mapping, record: Record) -> Outcome:
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
        if known.get(level.sku) != {"available": level.available}:
            yield level.sku, level.sku, None, {"sku": level.sku, "available": level.available}


def send_stock(connection: Connection, data: Raw, mapping: Mapping, record: Record) -> Outcome:
    level = StockLevel(sku=str(data["sku"]), available=int(str(data["available"])))
    record("sent", to_data(level), f"Set available stock of {level.sku} to {level.available}")
    (answer,) = webshop(connection.target.kind).client(connection.target).set_stock([level])
    record("answer", answer, "The shop's answer")
    if "skipped" in answer:
        return Outcome("skipped", str(answer["skipped"]))
    mapping.target_ref, mapping.target_state = level.sku, "stock"
    mapping.data = {"available": level.available}
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
