"""The common format every connector translates to and from.

A webshop's transforms turn its own records into these; an accounting system's transforms turn these into its
own documents. So a new shop works with every accounting system, and the other way round.
Money is Decimal in the order's currency; `unit_price_net` is excluding VAT.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, is_dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Literal

CENT = Decimal("0.01")

LineKind = Literal["product", "shipping", "fee", "discount", "rounding"]


def money(value: Any) -> Decimal:
    return Decimal(str(value or "0")).quantize(CENT, rounding=ROUND_HALF_UP)


@dataclass
class Address:
    name: str = ""
    company: str = ""
    street: str = ""
    zip: str = ""
    city: str = ""
    country: str = ""
    country_code: str = ""


@dataclass
class Customer:
    email: str = ""
    phone: str = ""
    vat_number: str = ""
    name: str = ""
    address: Address = field(default_factory=Address)


@dataclass
class OrderLine:
    kind: LineKind
    description: str
    quantity: Decimal
    unit_price_net: Decimal  # excluding VAT, after line discounts, unrounded beyond 4 decimals
    vat_rate: Decimal  # 0.25 for 25 %
    sku: str = ""

    @property
    def net(self) -> Decimal:
        return money(self.quantity * self.unit_price_net)

    @property
    def gross(self) -> Decimal:
        return money(self.net * (1 + self.vat_rate))


@dataclass
class Order:
    source_ref: str  # the shop's id, stable across changes
    reference: str  # what people call it: "#1042"
    updated_at: datetime | None
    currency: str
    total: Decimal  # what the customer pays, VAT included
    customer: Customer
    lines: list[OrderLine]
    financial_status: str = ""
    fulfillment_status: str = ""
    date: str = ""  # YYYY-MM-DD

    @property
    def lines_total(self) -> Decimal:
        return sum((line.gross for line in self.lines), Decimal("0"))


@dataclass
class Product:
    sku: str
    name: str
    price_net: Decimal  # excluding VAT
    vat_rate: Decimal
    source_ref: str = ""
    updated_at: datetime | None = None


@dataclass
class StockLevel:
    sku: str
    available: int


def to_data(obj: Any) -> dict:
    """A JSON-ready dict of a common record, for the transfer log."""
    return _jsonable(obj)


def _jsonable(value: Any) -> Any:
    # Read field by field: dataclasses.asdict would deep-copy the whole record first, only to be walked again here.
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return value


@dataclass
class Outcome:
    """How sending one record ended, as the receiving system confirmed it."""

    status: str  # a transferlog Status value
    reason: str = ""
    action: str = ""  # "created" or "updated" when the receiving system confirmed one
    target_ref: str = ""
