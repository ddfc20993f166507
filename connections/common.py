"""The common format every connector translates to and from.

A webshop's transforms turn its own records into these; an accounting system's client turns these into its own
documents. So a new shop works with every accounting system, and the other way round.

Money is Decimal in the document's currency. A line keeps the shop's own figures: what it comes to excluding tax
after its discounts (`net`) and the tax the shop charged on it (`tax`), both to the cent as the shop computed them,
so `net + tax` of every line adds up to what the customer paid; and the list price it came from (`unit_price`,
excluding tax, exact: it may have more decimals than a receiving system takes). A receiving system that wants two
decimals derives its unit price and discount from these, and says where a cent of rounding went.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, fields, is_dataclass
from datetime import UTC, datetime
from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal
from typing import Any, Literal

CENT = Decimal("0.01")
ZERO = Decimal("0")

# product: goods; shipping, fee: charges; discount: an order-level discount the shop did not put on a line;
# adjustment: an amount refunded without goods (a refund's discrepancy); rounding: a correction IEX adds.
LineKind = Literal["product", "shipping", "fee", "discount", "adjustment", "rounding"]

logger = logging.getLogger(__name__)


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
    unit_price: Decimal  # the list price of one, excluding tax, exact (not rounded)
    net: Decimal  # what the line comes to excluding tax, after its discounts: the shop's figure, to the cent
    tax: Decimal  # the tax the shop charged on the line, to the cent
    vat_rate: Decimal  # the rate of that tax (several tax lines, e.g. state and county, add up): 0.25 for 25 %
    sku: str = ""
    discount_codes: list[str] = field(
        default_factory=list
    )  # the discounts that lowered it, as the shop names them
    source_ref: str = ""  # the shop's id of the line (refunds refer to it)
    taxable: bool = True  # taxed at home: for a product made from the line, the group of products with VAT

    @property
    def gross(self) -> Decimal:
        return self.net + self.tax


class Lines:
    """What a document's lines come to."""

    lines: list[OrderLine]

    @property
    def lines_total(self) -> Decimal:
        return sum((line.gross for line in self.lines), ZERO)

    @property
    def total_tax(self) -> Decimal:
        return sum((line.tax for line in self.lines), ZERO)


@dataclass
class Order(Lines):
    source_ref: str  # the shop's id, stable across changes
    reference: str  # what people call it: "#1042"
    updated_at: datetime | None
    currency: str
    total: Decimal  # what the customer pays, tax included: the shop's total
    customer: Customer
    lines: list[OrderLine]
    financial_status: str = ""
    fulfillment_status: str = ""
    date: str = ""  # YYYY-MM-DD
    taxes_included: bool = True  # the shop's prices include its tax
    country_code: str = ""  # where the goods go: decides the VAT (domestic, EU, abroad)
    cancelled: bool = False  # cancelled in the shop
    deleted: bool = (
        False  # deleted in the shop (WooCommerce's trash): its draft is withdrawn, a booked invoice kept
    )
    # What is left of the order after refunds and removed items: what the invoice minus its credit notes comes to.
    current_total: Decimal | None = None
    # Lines with what is left of each (refunded and removed quantities taken off): what a cancellation credits.
    current_lines: list[OrderLine] = field(default_factory=list)
    refunds: list[str] = field(default_factory=list)  # the shop's ids of the refunds made so far

    @property
    def left(self) -> Decimal:
        """What a cancellation credits: the shop's current total, else what the current lines come to."""
        if self.current_total is not None:
            return self.current_total
        return sum((line.gross for line in self.current_lines), ZERO)

    def cancellation(self, lines: list[OrderLine]) -> CreditNote:
        """The credit note a cancellation makes of a booked invoice: for `lines`, what is left of the order."""
        return CreditNote(
            source_ref=f"cancel:{self.source_ref}",
            reference=f"{self.reference} cancelled",
            order_ref=self.source_ref,
            order_reference=self.reference,
            updated_at=self.updated_at,
            currency=self.currency,
            total=self.left,
            customer=self.customer,
            lines=lines,
            date=(self.updated_at or datetime.now(UTC)).date().isoformat(),
            taxes_included=self.taxes_included,
            country_code=self.country_code,
            note="cancelled in the shop",
        )


@dataclass
class CreditNote(Lines):
    """A refund of (part of) an order: what the accounting system credits against the order's invoice."""

    source_ref: str  # the shop's id of the refund
    reference: str  # what people call it: "#1001 refund 2"
    order_ref: str  # the order's source_ref: which invoice it credits
    order_reference: str  # "#1001"
    updated_at: datetime | None
    currency: str
    total: Decimal  # the amount credited, tax included (positive): the money the shop paid back
    customer: Customer
    lines: list[OrderLine]  # what is credited, with positive quantities and amounts
    date: str = ""
    taxes_included: bool = True
    country_code: str = ""
    note: str = ""


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
    item_ref: str = ""  # the shop's id of the stock item, once a write has found it


def spread(kind: LineKind, label: str, amount: Decimal, over: list[OrderLine]) -> list[OrderLine]:
    """An amount taken off an order without goods (a refund of money only), spread over its tax rates as its lines'
    gross is: each part with the tax it holds; the last part takes the cents. Without taxed lines, one line."""
    gross: dict[Decimal, Decimal] = {}
    for line in over:
        gross[line.vat_rate] = gross.get(line.vat_rate, ZERO) + line.gross
    total = sum(gross.values(), ZERO)
    if not total:
        return [OrderLine(kind, label, Decimal(1), amount, amount, ZERO, ZERO, taxable=False)]
    parts, left = [], amount
    for n, (rate, part) in enumerate(sorted(gross.items())):
        share = left if n == len(gross) - 1 else money(amount * part / total)
        left -= share
        tax = money(share - share / (1 + rate))
        parts.append(OrderLine(kind, label, Decimal(1), share - tax, share - tax, tax, rate, taxable=bool(rate)))
    return [part for part in parts if part.gross]


# --- where the goods go: what VAT a receiving system books ---------------------------------------------------

EU = {
    "AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GR", "HR", "HU", "IE", "IT", "LT", "LU", "LV",
    "MT", "NL", "PL", "PT", "RO", "SE", "SI", "SK",
}  # fmt: skip
Region = Literal["domestic", "eu", "abroad"]


def region(country_code: str, settings: dict) -> Region:
    """Domestic (the module's home country, or no country), EU, or abroad."""
    if not country_code or country_code == settings["home_country"]:
        return "domestic"
    return "eu" if country_code in EU else "abroad"


# --- two decimals: what a receiving system that wants them makes of a line ------------------------------------

HUNDRED = Decimal(100)
SEARCH = 10  # discount percentages tried on either side of the one the line's discount gives
WIDE = 100  # and, when none of those comes to the cent, as far as this


def unit_and_discount(
    quantity: Decimal, unit_price: Decimal, net: Decimal, exact: bool = True
) -> tuple[Decimal, Decimal]:
    """A unit price to the cent and a discount percentage (two decimals) for a line the shop priced at `unit_price`
    (exact, excluding tax) that comes to `net`: e-conomic and Dinero make round(quantity x unit x (1 - discount / 100), 2)
    of them.

    The list price rounded to the cent, and the discount it needs. Two-decimal percentages of a large amount step in
    more than a cent (1 % of 3,999.00 is 39.99; 0.01 % is 0.40), so with `exact` the unit price may move off the list
    price too (as little as it can) to make the line come to the shop's net to the cent (a single item always does).
    What is left over, a cent or two, is for the document's rounding line. A line that comes to more than its list
    price to the cent (sold above it, or a list price of many decimals rounded down: 7 x 10.3914 is 72.74, 7 x 10.39
    only 72.73) starts from the unit price just above what it comes to, with a small discount."""
    unit = money(unit_price)
    if money(quantity * unit) == net:
        return unit, ZERO
    if unit <= 0 or net < 0:
        return money(net / quantity), ZERO  # no list price to discount from: priced as sold
    if net == 0:
        return unit, HUNDRED  # given away
    if net > quantity * unit:
        unit = (net / quantity).quantize(CENT, rounding=ROUND_CEILING)
    full = quantity * unit
    guess = ((1 - net / full) * 100).quantize(CENT, rounding=ROUND_HALF_UP)
    best: tuple[Decimal, Decimal, Decimal, Decimal] | None = None  # (gap, distance from the list price, unit, %)
    # Near the guess first; only a line no percentage there brings to the cent looks further (rarely: many units).
    for steps in (range(-SEARCH, SEARCH + 1), [*range(-WIDE, -SEARCH), *range(SEARCH + 1, WIDE + 1)]):
        if best is not None and (best[0] == 0 or not exact):
            break
        for step in steps:
            discount = guess + step * CENT
            if not ZERO <= discount < HUNDRED:
                continue
            factor = 1 - discount / 100
            units = {unit}
            if exact:
                ideal = money(net / (quantity * factor))
                units |= {ideal - CENT, ideal, ideal + CENT}
            for candidate in units:
                if candidate <= 0:
                    continue
                gap = abs(money(quantity * candidate * factor) - net)
                key = (gap, abs(candidate - unit_price), candidate, discount)
                if (
                    best is None
                    or key[:2] < best[:2]
                    or (key[:2] == best[:2] and abs(discount - guess) < abs(best[3] - guess))
                ):
                    best = key
    assert best is not None
    return best[2], best[3]


def two_decimal_net(quantity: Decimal, unit: Decimal, discount: Decimal) -> Decimal:
    """What a system that takes two decimals makes of a line: quantity x unit price less the discount, to the cent."""
    return money(quantity * unit * (1 - discount / 100))


def priced(line: OrderLine, vat: Decimal | None, exact: bool = True) -> tuple[Decimal, Decimal, Decimal]:
    """(unit price, discount %, cents moved off) of the two-decimal line for `line`: it comes to the shop's net; and
    when the receiving system works the line's VAT out itself at `vat` (None: not to be matched), to the net nearest
    the shop's whose VAT is the tax the shop charged. The cents moved off the line go on the document's rounding line
    (a line without VAT), so the document's VAT is the shop's to the cent and its total too."""
    unit, discount = unit_and_discount(line.quantity, line.unit_price, line.net, exact)
    if not vat or money(two_decimal_net(line.quantity, unit, discount) * vat) == line.tax:
        return unit, discount, ZERO
    for cents in (1, -1, 2, -2, 3, -3):  # the net nearest the shop's whose VAT is the shop's tax
        net = line.net + cents * CENT
        if money(net * vat) == line.tax:
            moved_unit, moved_discount = unit_and_discount(line.quantity, line.unit_price, net, exact)
            made = two_decimal_net(line.quantity, moved_unit, moved_discount)
            if money(made * vat) == line.tax:
                return moved_unit, moved_discount, line.net - made
    return unit, discount, ZERO


def percent(rate: Decimal) -> str:
    """0.25 -> '25 %', 0.085 -> '8.5 %'"""
    return f"{(rate * 100).normalize():f} %"


def held_sentences(problems: dict[tuple[Decimal, str], list[str]], country: str) -> list[str]:
    """One sentence per rate and reason, naming the lines it holds: "19 % tax on BIKE-RED and shipping to DE: …"."""
    sentences = []
    for (rate, why), lines in problems.items():
        what = ", ".join(lines[:-1]) + f" and {lines[-1]}" if len(lines) > 1 else lines[0]
        sentences.append(f"{percent(rate)} tax on {what} to {country or 'an unknown country'}: {why}")
    return sentences


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
    held_for: str = ""  # status "held": what releases it (transferlog.models.HeldFor); the settings by default
    reference: str = ""  # what people call the record, when the sending learnt a better name ("#1001 refund 1")


@dataclass
class DocumentLine:
    description: str
    quantity: Decimal
    unit_price: Decimal  # excluding VAT, as the document has it
    discount: Decimal  # percent
    net: Decimal  # what the line comes to excluding VAT
    vat_rate: Decimal | None  # 0.25 for 25 %; None when the system does not say
    vat: Decimal | None


@dataclass
class Document:
    """A document as the accounting system made it, read from its answer, for the Log to show beside the shop's
    record: amounts as the merchant reads them (a credit note's positive, like its refund), in its currency."""

    system: str  # "e-conomic"
    title: str  # "Invoice draft 17"
    url: str  # where the merchant opens it in the system
    currency: str
    customer: str  # as the system names the customer: "Kari Nordmann (customer 5)"
    lines: list[DocumentLine]
    net: Decimal
    vat: Decimal
    total: Decimal


def note_document(record: Any, read: Any, *args: Any, how: str) -> Document | None:
    """Read the document a system made (`read(*args)`) and note it for the Log's fold-out as `<title> <how>`. It is made
    already, so a document that cannot be read into these words is left unnoted (and logged): noting it never fails
    the transfer that made it, whose next attempt would make it again."""
    try:
        made: Document = read(*args)
    except Exception:  # any reading error: the document exists either way
        logger.warning("the document made could not be read for the Log", exc_info=True)
        return None
    record("document", to_data(made), f"{made.title} {how}")
    return made
