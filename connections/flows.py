"""The flows a connection can carry: what to fetch from the source and how to send one record to the target."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from connections.common import Outcome, StockLevel, to_data

if TYPE_CHECKING:
    from connections.models import Connection, Mapping

# (source_ref, reference, source_updated_at, data as received)
Fetched = tuple[str, str, datetime | None, Any]
Record = Callable[[str, Any, str], Any]


@dataclass(frozen=True)
class Flow:
    key: str
    label: str
    entity: str
    source: str  # category of the source system
    target: str  # category of the receiving system
    fetch: Callable[[Connection, datetime], Iterator[Fetched]]
    send: Callable[[Connection, Any, Mapping, Record], Outcome]
    key_of: Callable[[Connection, Any], str]  # the source record the mapping is kept for
    metered: bool = False  # a create counts against the allowance


# --- orders: webshop > accounting ----------------------------------------------------------------------------


def fetch_orders(connection: Connection, since: datetime) -> Iterator[Fetched]:
    shop = connection.source.system.transforms
    for order in connection.source.client().orders_since(since):
        yield (*shop.order_ref(order), order)


def send_order(connection: Connection, data: Any, mapping: Mapping, record: Record) -> Outcome:
    shop = connection.source.system.transforms
    settings = connection.source.settings_values()
    if reason := shop.skip_reason(data, settings):
        return Outcome("skipped", reason)
    order = shop.to_order(data, settings)
    record("transformed", to_data(order), "In IEX's common format")
    return connection.target.client().send_order(order, mapping, record)


# --- products: webshop > accounting --------------------------------------------------------------------------


def fetch_products(connection: Connection, since: datetime) -> Iterator[Fetched]:
    shop = connection.source.system.transforms
    for product in connection.source.client().products_since(since):
        yield (*shop.product_ref(product), product)


def send_product(connection: Connection, data: Any, mapping: Mapping, record: Record) -> Outcome:
    shop = connection.source.system.transforms
    products = shop.to_products(data, connection.source.settings_values())
    if not products:
        return Outcome("skipped", "The product has no variant with a SKU, so it has no product number")
    client = connection.target.client()
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
    known = dict(connection.mappings.values_list("source_ref", "data"))
    for level in connection.source.client().stock_levels():
        if known.get(level.sku) != {"available": level.available}:
            yield level.sku, level.sku, None, {"sku": level.sku, "available": level.available}


def send_stock(connection: Connection, data: Any, mapping: Mapping, record: Record) -> Outcome:
    level = StockLevel(sku=data["sku"], available=int(data["available"]))
    record("sent", to_data(level), f"Set available stock of {level.sku} to {level.available}")
    (answer,) = connection.target.client().set_stock([level])
    record("answer", answer, "The shop's answer")
    if "skipped" in answer:
        return Outcome("skipped", answer["skipped"])
    mapping.target_ref, mapping.target_state, mapping.data = (
        level.sku,
        "stock",
        {"available": level.available},
    )
    return Outcome("updated", "", "updated", level.sku)


def _source_ref(connection: Connection, data: Any) -> str:
    return str(data.get("id") or data.get("sku"))


FLOWS: dict[str, Flow] = {
    flow.key: flow
    for flow in (
        Flow("orders", "orders", "orders", "webshop", "accounting", fetch_orders, send_order, _source_ref, True),
        Flow(
            "products",
            "products",
            "products",
            "webshop",
            "accounting",
            fetch_products,
            send_product,
            _source_ref,
        ),
        Flow("stock", "stock", "stock", "accounting", "webshop", fetch_stock, send_stock, _source_ref),
    )
}
