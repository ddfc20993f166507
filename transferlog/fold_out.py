"""What a transfer's fold-out shows a merchant: what the shop sent beside the document made of it (customer, lines,
totals, the difference), then every state named by what it was, its data behind a toggle that says what it holds.

Read from the states alone, in the formats the Log keeps: the shop's record as IEX read it into its common format
(the "transformed" state: the figures that were sent, whatever the shop's settings are today) and the document as
the accounting system made it (the "document" state its connector notes, in the same words for every system). So
the fold-out needs no connector and no request to any system, and still reads the same after a module is removed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from transferlog.models import Status, Transfer, TransferState

CENT = Decimal("0.01")
# States that are an outcome or a wait, named by it (their note says why).
OUTCOMES = {**dict(Status.choices), "waiting": "Waiting"}
KINDS = {
    "shipping": "Shipping",
    "fee": "Fee",
    "discount": "Discount",
    "adjustment": "Refund",
    "rounding": "Rounding",
}


@dataclass
class Line:
    description: str
    kind: str  # "" for goods, else what the line is: "Shipping", "Fee", ...
    quantity: Decimal
    unit_price: Decimal  # excluding VAT
    discount: Decimal  # the amount the line's discounts took off, excluding VAT
    vat_rate: Decimal | None  # None: the system does not say
    vat: Decimal | None
    net: Decimal

    @property
    def vat_percent(self) -> str:
        return "" if self.vat_rate is None else f"{(self.vat_rate * 100).normalize():f} %"


@dataclass
class Side:
    """One side of the summary: what a system holds, labelled with the system."""

    system: str
    title: str
    customer: str
    currency: str
    lines: list[Line]
    net: Decimal
    vat: Decimal
    total: Decimal
    url: str = ""


@dataclass
class Summary:
    shop: Side | None = None
    document: Side | None = None
    received_as: str = ""  # the shop system, for the raw data's labels
    sent_to: str = ""
    states: list[dict[str, Any]] = field(default_factory=list)
    sent: Any = None  # the document as sent, in the receiving system's format

    @property
    def difference(self) -> Decimal:
        """How much the document's total differs from the shop's (0 when they agree, or one side is missing)."""
        if self.shop is None or self.document is None:
            return Decimal(0)
        return self.document.total - self.shop.total


def _amount(value: Any) -> Decimal:
    try:
        return Decimal(str(value if value not in (None, "") else 0))
    except InvalidOperation:
        return Decimal(0)


def _optional(value: Any) -> Decimal | None:
    return None if value is None else _amount(value)


def _line(line: dict[str, Any], description: str, kind: str, vat: Any, discounted: Decimal | None = None) -> Line:
    """One line of either side: its discount is what its quantity at its unit price comes to beyond its net (on the
    document's side only where the document says a discount: `discounted`)."""
    quantity, unit, net = _amount(line.get("quantity")), _amount(line.get("unit_price")), _amount(line.get("net"))
    beyond = (quantity * unit).quantize(CENT) - net
    discount = (beyond if discounted else Decimal(0)) if discounted is not None else max(beyond, Decimal(0))
    return Line(
        description=description,
        kind=kind,
        quantity=quantity,
        unit_price=unit,
        discount=discount,
        vat_rate=_optional(line.get("vat_rate")),
        vat=_optional(vat),
        net=net,
    )


def shop_side(data: dict[str, Any], system: str) -> Side:
    """The shop's order or refund from IEX's common format (connections.common.Order / CreditNote, as logged)."""
    lines = [
        _line(
            line,
            str(line.get("description") or line.get("sku") or ""),
            KINDS.get(str(line.get("kind")), ""),
            line.get("tax"),
        )
        for line in data.get("lines") or []
    ]
    customer = data.get("customer") or {}
    named = " · ".join(str(part) for part in (customer.get("name"), customer.get("email")) if part)
    reference = str(data.get("reference") or "")
    return Side(
        system=system,
        title=reference if data.get("order_reference") else f"Order {reference}",
        customer=named,
        currency=str(data.get("currency") or ""),
        lines=lines,
        net=sum((line.net for line in lines), Decimal(0)),
        vat=sum((line.vat or Decimal(0) for line in lines), Decimal(0)),
        total=_amount(data.get("total")),
    )


def document_side(data: dict[str, Any]) -> Side:
    """The document as the accounting system made it (connections.common.Document, as its connector logged it)."""
    lines = [
        _line(line, str(line.get("description") or ""), "", line.get("vat"), _amount(line.get("discount")))
        for line in data.get("lines") or []
    ]
    return Side(
        system=str(data.get("system") or ""),
        title=str(data.get("title") or ""),
        customer=str(data.get("customer") or ""),
        currency=str(data.get("currency") or ""),
        lines=lines,
        net=_amount(data.get("net")),
        vat=_amount(data.get("vat")),
        total=_amount(data.get("total")),
        url=str(data.get("url") or ""),
    )


def _toggle(state: TransferState, shop: str, target: str) -> str:
    """What a state's data is, said on its toggle."""
    data = state.data if isinstance(state.data, dict) else {}
    if state.kind == "sent" and data.get("method"):
        return f"As sent to {target}: {data['method']} /{data.get('path', '')}"
    return {
        "read": f"As read from {shop}",
        "transformed": "In IEX's common format",
        "looked up": "What was looked for, and found",
        "sent": f"As sent to {target}",
    }.get(state.kind, f"{target}'s answer")


def _named(state: TransferState) -> dict[str, str]:
    """A state's name, and what it says besides: an outcome or a wait is named by what it is ("Failed", then why);
    a step by its note, which the connector writes in the merchant's words ("Invoice draft sent")."""
    label = OUTCOMES.get(state.kind)
    if label is None:
        return {"name": state.note or state.kind.capitalize(), "note": ""}
    return {"name": label, "note": "" if state.note == label else state.note}


def _systems(transfer: Transfer) -> tuple[str, str]:
    """(the shop, the receiving system) as the transfer's connection was named: kept when a module is removed."""
    shop, _, rest = transfer.connection_label.partition(" > ")
    return shop or "the shop", rest.partition(":")[0] or "the receiving system"


def summary(transfer: Transfer, states: list[TransferState]) -> Summary:
    shop, target = _systems(transfer)
    found = Summary(received_as=shop, sent_to=target)
    transformed = [s.data for s in states if s.kind == "transformed" and isinstance(s.data, dict)]
    if transformed:
        found.shop = shop_side(transformed[-1], shop)
    documents = [(n, s.data) for n, s in enumerate(states) if s.kind == "document" and isinstance(s.data, dict)]
    if documents:
        found.document = document_side(documents[-1][1])
    # The document's own request: the last one sent before the document was noted (not the customer's, made first).
    before = states[: documents[-1][0]] if documents else states
    found.sent = next((s.data for s in reversed(before) if s.kind == "sent"), None)
    for state in states:
        if state.kind == "document":
            continue  # shown above, as the summary's second side
        # (The record as received is not repeated here: it is the raw data's first column.)
        found.states.append({"state": state, "toggle": _toggle(state, shop, target), **_named(state)})
    return found
