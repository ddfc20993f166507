"""The common format to e-conomic's documents, as an accountant books them.

e-conomic rejects null (a field is left out instead), replaces the whole document on PUT, and takes at most two
decimals for a unit price; it works VAT out itself, from the line's product group and the document's VAT zone (the
group's sales account for that zone, and that account's VAT code). So a document is planned line by line: each line
gets the VAT zone's rate of its product's group, and IEX checks that this is the rate the shop charged before anything
is sent. A foreign sales tax no VAT code covers (a US state tax) goes on a line of its own, in the product group whose
sales account the merchant chose for it. A line whose rate nothing books is not sent: the transfer is held, saying
which rate, which country and where to set it up.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from functools import partial
from typing import Any
from urllib.parse import quote

from connections.common import (
    ZERO,
    CreditNote,
    Customer,
    Order,
    OrderLine,
    Product,
    Region,
    held_sentences,
    money,
    percent,
    priced,
    region,
)

PRODUCT_NUMBER_MAX = 25
# The characters e-conomic writes as _N_ in the id of a resource's URL (its "self-link encoding").
SELF_LINK = {"<": 0, ">": 1, "*": 2, "%": 3, ":": 4, "&": 5, "/": 6, "\\": 7, "_": 8, " ": 9, "?": 10, ".": 11,
             "#": 12, "+": 13}  # fmt: skip
FILTER_ESCAPED = "$()*,[]"


def escape_filter(value: str) -> str:
    """A filter value with e-conomic's escapes: $ ( ) * , [ ] each after a $ (the query string is URL-encoded by
    requests)."""
    return "".join("$" + char if char in FILTER_ESCAPED else char for char in value)


def url_id(number: str) -> str:
    """An id (a product number) as it goes into a resource's URL: e-conomic's _N_ for its characters, one character
    at a time (the _ of a replacement must not be replaced again), percent-encoding for the rest."""
    return "".join(f"_{SELF_LINK[char]}_" if char in SELF_LINK else quote(char, safe="") for char in number)


def document_ref(order_ref: str) -> str:
    """Written to references.other: finds the document again if IEX's own record of it was lost."""
    return f"iex:{order_ref}"


def credit_note_ref(refund_ref: str) -> str:
    return f"iex:refund:{refund_ref}"


def customer_key(customer: Customer, field_name: str) -> tuple[str, str]:
    """(e-conomic filter field, value) that identifies the customer, per the module's setting."""
    api_field = {
        "email": "email",
        "phone": "telephoneAndFaxNumber",
        "vat_number": "corporateIdentificationNumber",
    }
    return api_field[field_name], getattr(customer, field_name)


def customer_payload(customer: Customer, currency: str, zone: int, settings: dict) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "name": customer.name[:255] or "Webshop customer",
        "currency": currency or settings["base_currency"],
        "customerGroup": {"customerGroupNumber": int(settings["customer_group"])},
        "paymentTerms": {"paymentTermsNumber": int(settings["payment_terms"])},
        "vatZone": {"vatZoneNumber": zone},
    }
    optional = {
        "email": customer.email[:255],
        "telephoneAndFaxNumber": customer.phone[:255],
        "corporateIdentificationNumber": customer.vat_number[:40],
        "address": customer.address.street[:510],
        "zip": customer.address.zip[:30],
        "city": customer.address.city[:50],
        "country": customer.address.country[:50],
    }
    payload.update({k: v for k, v in optional.items() if v})
    return payload


def product_payload(number: str, name: str, price: Decimal, group: int) -> dict[str, Any]:
    """A product as e-conomic keeps it: its sales price excluding VAT, in the group that decides its VAT."""
    return {
        "productNumber": number,
        "name": name[:300] or number,
        "productGroup": {"productGroupNumber": group},
        "salesPrice": float(money(price)),
    }


def product_from_common(product: Product, chart: Chart, settings: dict) -> dict[str, Any]:
    """A shop product as an e-conomic product (e-conomic keeps sales prices excluding VAT), in the group that books
    its rate at home, as products made from orders are."""
    group = new_product_group(
        product.vat_rate, bool(product.vat_rate), int(settings["zone_domestic"]), chart, settings
    )
    return product_payload(product.sku, product.name, product.price_net, group)


# --- the VAT chart ---------------------------------------------------------------------------------------------


@dataclass
class Chart:
    """What IEX knows of the agreement's VAT: each product group's VAT rate in each VAT zone (a fraction, 0.25),
    read from e-conomic and kept with the module (EconomicClient.chart)."""

    zones: dict[int, str]
    groups: dict[int, str]
    rates: dict[int, dict[int, Decimal]]  # group -> zone -> rate
    accounts: dict[int, dict[int, str]] = field(default_factory=dict)  # group -> zone -> "1010 Salg m/moms"

    def rate(self, group: int, zone: int) -> Decimal | None:
        return self.rates.get(group, {}).get(zone)

    def books(self, group: int, zone: int, rate: Decimal) -> bool:
        """Whether e-conomic books `rate` (the shop's, to four decimals) on the group's sales in the zone."""
        booked = self.rate(group, zone)
        return booked is not None and abs(booked - rate) < Decimal("0.00005")

    def describe(self, group: int) -> str:
        """'Varer m/moms (no. 1): 25 % Domestic, 0 % EU, 0 % Abroad'"""
        rates = ", ".join(
            f"{percent(rate)} {self.zones.get(zone, zone)}"
            for zone, rate in sorted(self.rates.get(group, {}).items())
        )
        return f"{self.groups.get(group, 'group')} (no. {group}): {rates or 'no sales accounts'}"

    def to_data(self) -> dict[str, Any]:
        return {
            "zones": {str(k): v for k, v in self.zones.items()},
            "groups": {str(k): v for k, v in self.groups.items()},
            "rates": {str(g): {str(z): str(r) for z, r in zones.items()} for g, zones in self.rates.items()},
            "accounts": {str(g): {str(z): a for z, a in zones.items()} for g, zones in self.accounts.items()},
        }

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> Chart:
        return cls(
            zones={int(k): v for k, v in data["zones"].items()},
            groups={int(k): v for k, v in data["groups"].items()},
            rates={int(g): {int(z): Decimal(r) for z, r in zones.items()} for g, zones in data["rates"].items()},
            accounts={
                int(g): {int(z): a for z, a in zones.items()} for g, zones in data.get("accounts", {}).items()
            },
        )


# --- planning a document -------------------------------------------------------------------------------------


@dataclass
class Line:
    """One line of an e-conomic document: a product, a quantity, a unit price to the cent, a discount percentage."""

    product: str
    description: str
    quantity: Decimal
    unit_price: Decimal
    discount: Decimal = ZERO  # percent
    group: int = 0  # the product group a product made for it goes in
    price: Decimal = ZERO  # the list price a product made for it gets (excluding VAT)
    name: str = ""  # the name a product made for it gets (the description without the discount codes)

    def payload(self, number: int) -> dict[str, Any]:
        line: dict[str, Any] = {
            "lineNumber": number,
            "sortKey": number,
            "product": {"productNumber": self.product},
            "description": self.description[:2500] or self.product,
            "quantity": float(self.quantity),
            "unitNetPrice": float(self.unit_price),  # two decimals: exact as a float, and as JSON
        }
        if self.discount:
            line["discountPercentage"] = float(self.discount)
        return line


@dataclass
class Plan:
    """A document planned from an order or a credit note: its VAT zone and lines, or why it cannot be sent."""

    zone: int
    lines: list[Line] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # why the transfer is held (rates nothing books)
    refused: list[str] = field(default_factory=list)  # what e-conomic would refuse (product numbers too long)
    vat: Decimal = ZERO  # the shop's tax that e-conomic books as VAT on this document
    groups: dict[str, int] = field(default_factory=dict)  # the group of each product that exists in e-conomic


def product_number(line: OrderLine, settings: dict) -> str:
    """The product a line goes on: its SKU; else the module's product for its kind, with or without VAT."""
    if line.kind == "product":
        return line.sku or settings["default_product"]
    if line.kind == "rounding":
        return settings["rounding_product"]
    kind = "refund" if line.kind == "adjustment" else line.kind
    return settings[f"{kind}_product"] if line.vat_rate else settings[f"{kind}_product_no_vat"]


def new_product_group(rate: Decimal, taxable: bool, zone: int, chart: Chart, settings: dict) -> int:
    """The product group a product made for a line goes in: of the groups for products with and without VAT, the
    one that books the line's rate in its VAT zone; else (abroad, where both book none) the one the shop's taxable
    flag points to."""
    taxed, untaxed = int(settings["product_group"]), int(settings["product_group_no_vat"])
    preferred = [taxed, untaxed] if taxable else [untaxed, taxed]
    return next((group for group in preferred if chart.books(group, zone, rate)), preferred[0])


def zone_for(country_code: str, taxed: bool, settings: dict) -> tuple[Region, int]:
    """The document's VAT zone: by where the goods go; an EU order the shop charged VAT on is a consumer's, booked
    with the VAT of home (the merchant's OSS setup decides, in the shop, what it charges)."""
    where = region(country_code, settings)
    if where == "eu":
        return where, int(settings["zone_eu_vat"] if taxed else settings["zone_eu"])
    return where, int(settings[f"zone_{where}"])


def plan(
    lines: Sequence[OrderLine],
    country_code: str,
    chart: Chart,
    settings: dict,
    groups: dict[str, int],
    sign: int = 1,
) -> Plan:
    """The document's lines for `lines` (sign -1: a credit note), each checked against the VAT chart.

    `groups`: the product group of each product that exists in e-conomic (by number); a product that does not will be
    made in `new_product_group`. Discounts go on each line as a percentage, or on discount lines (one per discount
    product, each booking the VAT of the lines it discounts) when the module says so. e-conomic works each line's VAT
    out from its net; where that would be a cent off the tax the shop charged, the line's net moves by that cent onto
    the rounding line (a product without VAT), so the document's VAT is the shop's to the cent."""
    where, zone = zone_for(country_code, any(line.tax for line in lines), settings)
    result = Plan(zone, groups=groups)
    rounding_product = settings["rounding_product"]
    rounding_group = groups.get(rounding_product) or int(settings["product_group_no_vat"])
    can_round = chart.books(rounding_group, zone, ZERO)
    discounts: dict[str, tuple[Decimal, int]] = {}  # discount product -> (what its discounts come to, its group)
    sales_tax = rounding = ZERO
    held: dict[tuple[Decimal, str], list[str]] = {}  # (rate, why nothing books it) -> the lines it holds
    for line in lines:
        product = product_number(line, settings)
        if len(product) > PRODUCT_NUMBER_MAX:
            result.refused.append(
                f"Product number {product!r} is longer than e-conomic's {PRODUCT_NUMBER_MAX} characters: give it "
                "a shorter SKU in the shop"
            )
            continue
        group = groups.get(product) or new_product_group(line.vat_rate, line.taxable, zone, chart, settings)
        route, problem = _route(line, group, zone, where, chart, settings)
        if problem:
            what = line.sku or line.description if line.kind == "product" else f"{line.kind} ({line.description})"
            held.setdefault((line.vat_rate, problem), []).append(what)
            continue
        if route == "sales tax":
            sales_tax += line.tax
        else:
            result.vat += line.tax
        vat = chart.rate(group, zone) if route == "vat" and can_round else None
        placed, discount, moved = _place(line, product, group, zone, chart, settings, groups, sign, vat)
        result.lines.append(placed)
        rounding += moved
        if discount:
            number, discount_group, amount = discount
            discounts[number] = (discounts.get(number, (ZERO, 0))[0] + amount, discount_group)
    result.problems = held_sentences(held, country_code)
    codes = sorted({code for line in lines for code in line.discount_codes})
    for number, (amount, group) in discounts.items():
        text = "Discount" + (f" {', '.join(codes)}" if codes else "")
        result.lines.append(Line(number, text, Decimal(sign), amount, group=group, name="Discount"))
    if sales_tax:
        number = settings["sales_tax_product"]
        group = groups.get(number) or int(settings["sales_tax_group"])
        text = f"Sales tax ({country_code})"
        result.lines.append(Line(number, text, Decimal(sign), sales_tax, group=group, name="Sales tax"))
    if rounding:
        result.lines.append(
            Line(rounding_product, "Rounding", Decimal(sign), rounding, group=rounding_group, name="Rounding")
        )
    return result


def _place(
    line: OrderLine,
    product: str,
    group: int,
    zone: int,
    chart: Chart,
    settings: dict,
    groups: dict[str, int],
    sign: int,
    vat: Decimal | None,
) -> tuple[Line, tuple[str, int, Decimal] | None, Decimal]:
    """The document's line for `line`; what it puts on a discount line, if anything; and the cents of its net that go
    on the rounding line so that e-conomic's VAT on it (`vat`, its rate: None when not to be matched) is the shop's."""
    text = line.description + (f" ({', '.join(line.discount_codes)})" if line.discount_codes else "")
    unit = money(line.unit_price)
    # The document's line at a unit price and discount; a product made for it gets the list price and group.
    line_at = partial(Line, product, text, sign * line.quantity, group=group, price=unit, name=line.description)
    listed = money(line.quantity * unit)
    as_lines = settings["discounts"] == "lines" and line.kind == "product" and line.net != listed
    if as_lines and (found := _discount_product(line, group, zone, chart, settings, groups)):
        number, discount_group = found
        return line_at(unit), (number, discount_group, line.net - listed), ZERO
    unit_price, discount, moved = priced(line, vat, exact=settings["rounding"] == "line_price")
    return line_at(unit_price, discount), None, moved


def _discount_product(
    line: OrderLine, group: int, zone: int, chart: Chart, settings: dict, groups: dict[str, int]
) -> tuple[str, int] | None:
    """(number, group) of the discount product for the line's discount, when it books the line's VAT; else None
    (the discount goes on the line as a percentage)."""
    number = settings["discount_product" if line.vat_rate else "discount_product_no_vat"]
    own = groups.get(number) or int(settings["product_group" if line.vat_rate else "product_group_no_vat"])
    return (number, own) if chart.rate(own, zone) == chart.rate(group, zone) else None


def _route(line: OrderLine, group: int, zone: int, where: Region, chart: Chart, settings: dict) -> tuple[str, str]:
    """("vat", "") when e-conomic books the line's tax as VAT through its group, ("sales tax", "") when it goes on
    the sales tax line, else ("", why neither can): the transfer is held."""
    if chart.books(group, zone, line.vat_rate):
        return "vat", ""
    booked = chart.rate(group, zone)
    foreign_sales_tax = where == "abroad" and line.vat_rate > 0 and booked == 0
    if foreign_sales_tax and settings.get("sales_tax_group"):
        return "sales tax", ""
    zone_name = f"VAT zone {chart.zones.get(zone, zone)}"
    named = f"product group {chart.groups.get(group, group)} (no. {group})"
    if booked is None:
        return "", f"{named} has no sales account for {zone_name} in e-conomic"
    if foreign_sales_tax:
        return "", "a sales tax no VAT code books: choose the product group for foreign sales tax"
    return "", (
        f"{named} books {percent(booked)} in {zone_name}; set up a product group for {percent(line.vat_rate)} in "
        "e-conomic, or change the VAT zones"
    )


def document_payload(
    *,
    reference: str,
    heading: str,
    date: str,
    currency: str,
    customer_number: int,
    customer: Customer,
    planned: Plan,
    settings: dict,
) -> dict[str, Any]:
    """A draft invoice (or order). Its currency is the shop's; e-conomic takes the day's exchange rate to the
    agreement's base currency when none is given, which is what an accountant expects of a sale."""
    recipient: dict[str, Any] = {
        "name": customer.name[:250] or "Webshop customer",
        "vatZone": {"vatZoneNumber": planned.zone},
    }
    address = customer.address
    fields = {"address": address.street[:250], "zip": address.zip[:50], "city": address.city[:250],
              "country": address.country[:50]}  # fmt: skip
    recipient.update({k: v for k, v in fields.items() if v})
    return {
        "date": date,
        "currency": currency or settings["base_currency"],
        "customer": {"customerNumber": customer_number},
        "recipient": recipient,
        "paymentTerms": {"paymentTermsNumber": int(settings["payment_terms"])},
        "layout": {"layoutNumber": int(settings["layout"])},
        "references": {"other": reference[:250]},
        "notes": {"heading": heading[:250]},
        "lines": [line.payload(number) for number, line in enumerate(planned.lines, start=1)],
    }


def order_document(order: Order, customer_number: int, planned: Plan, settings: dict) -> dict:
    return document_payload(
        reference=document_ref(order.source_ref),
        heading=f"Order {order.reference}",
        date=order.date,
        currency=order.currency,
        customer_number=customer_number,
        customer=order.customer,
        planned=planned,
        settings=settings,
    )


def credit_note_document(
    credit: CreditNote, invoice: str, customer_number: int, planned: Plan, settings: dict
) -> dict:
    return document_payload(
        reference=credit_note_ref(credit.source_ref),
        heading=f"Credit note for order {credit.order_reference}, invoice {invoice}"
        + (f": {credit.note}" if credit.note else ""),
        date=credit.date,
        currency=credit.currency,
        customer_number=customer_number,
        customer=credit.customer,
        planned=planned,
        settings=settings,
    )
