"""The demo catalogue and a generator of realistic, internally consistent Shopify orders, refunds and cancellations.

The shop is Danish: its currency is DKK and its catalogue prices include 25 % Danish VAT. It ships abroad, and an
order's prices and taxes follow the country it ships to (COUNTRIES), as a Danish shop set up for EU one-stop-shop
VAT would charge them: DK, SE and DE keep the catalogue price and hold their own VAT inside it (`taxes_included`);
NO (export) and the US are priced without the Danish VAT (`taxes_included` false), NO with no tax at all, the US with
state and county sales tax added on top.

Money follows Shopify: strings with two decimals, each beside a `*_set` object ({"shop_money": {"amount",
"currency_code"}, "presentment_money": {...}}, both in DKK) where Shopify's documented example has one; tax rates and
a refund line's `subtotal` and `total_tax` are JSON numbers. Every total derives from the line items, shipping lines
and discount codes. With D = a line's discounted amount = price * quantity - the sum of its discount allocations
(prices are gross when taxes are included, net otherwise):

- total_line_items_price = sum(price * quantity); total_discounts = the sum of all discount allocations;
- subtotal_price = total_line_items_price - total_discounts = sum(D); shipping = sum(shipping discounted_price);
- each tax line of a line item is computed from its D: round(D * rate / (1 + sum of its rates)) when taxes are
  included, round(D * rate) when they are not; shipping lines are taxed the same way where the country taxes
  shipping; lines that are not taxable, and orders to a country without tax, have no tax lines;
- total_tax = the sum of all line and shipping tax lines; the order's tax_lines = those sums per (title, rate);
- total_price = total_line_items_price - total_discounts + shipping + (total_tax unless taxes_included);
- a line's total_discount holds only its own (manual) discount: shares of discount codes appear only in its
  discount_allocations, as in Shopify's documented example (where total_discount is "0.00" beside allocations).

A refund (`refund`) takes back r more of a line's Q units; what r units are worth is cumulative:
  discount(r) = round(A * r / Q), subtotal(r) = price * r - discount(r), tax(r) = round(T * r / Q)
(A the line's allocations, T its tax). A refund line's `subtotal` and `total_tax` are the growth of subtotal(r) and
tax(r), so refunding every unit gives back exactly D and T. As in the documented example, `subtotal` excludes the tax
when taxes are excluded and includes it when they are included. Shipping is refunded as an amount (gross when taxes
are included) with the shipping tax in the same cumulative proportion. The current_* fields are the originals less
what was refunded:

- current_quantity = quantity - refunded units; current_total_discounts = sum(A - discount(r));
- current_subtotal_price = sum(D - subtotal(r)); current_total_tax = total_tax - sum(tax(r)) - refunded shipping tax;
- current_total_price = current_subtotal_price + shipping not refunded + (current_total_tax unless taxes_included),
  which is also total_price less every refund transaction of a paid order.
"""

from __future__ import annotations

import copy
import hashlib
import random
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, NamedTuple

from sandbox.common import entries, later_than, money, now_iso, to_decimal

# Ids above 2**53, as JSON integers: a client that reads them as doubles (JavaScript, some JSON parsers) gets them
# wrong. Bases are even and every id odd, so no id survives a round trip through a double.
ORDER_ID_BASE = 9_100_000_000_000_000
LINE_ID_BASE = 9_200_000_000_000_000
SHIPPING_ID_BASE = 9_300_000_000_000_000
CUSTOMER_ID_BASE = 9_400_000_000_000_000
TRANSACTION_ID_BASE = 9_500_000_000_000_000  # sales: + order number * 1000 + 1
REFUND_TRANSACTION_ID_BASE = 9_550_000_000_000_000
REFUND_ID_BASE = 9_600_000_000_000_000
REFUND_LINE_ID_BASE = 9_700_000_000_000_000
ADJUSTMENT_ID_BASE = 9_800_000_000_000_000
REFUND_SHIPPING_ID_BASE = 9_900_000_000_000_000

SHOP_DOMAIN = "sandbox.myshopify.com"
CURRENCY = "DKK"
ZERO = Decimal("0")
HOME_VAT = Decimal("0.25")  # in the catalogue prices
WELCOME_CODE = ("WELCOME50", Decimal("50.00"))
REPRICING = ("line_items", "shipping_lines", "discount_codes")
AT_CREATION_ONLY = ("country", "taxes_included")
CANCEL_REASONS = ("customer", "fraud", "inventory", "declined", "other")
RESTOCK_TYPES = ("no_restock", "cancel", "return")  # legacy_restock: "not accepted when creating new refunds"
PAID = ("paid", "partially_refunded")  # a payment was taken and can be refunded
CUSTOMER_SINCE = "2024-03-01T10:00:00+00:00"

IdMaker = Callable[[int], int]  # a new id above the given base


class Refused(Exception):
    """What Shopify answers 422 to; `errors` is the body's "errors" value."""

    def __init__(self, errors: Any) -> None:
        super().__init__(errors)
        self.errors = errors


class CatalogueItem(NamedTuple):
    sku: str
    title: str
    price: Decimal  # DKK including VAT
    taxable: bool  # False: no tax lines (the book)
    stock: int
    grams: int = 0


CATALOGUE = [
    CatalogueItem("BIKE-RED", "City Bike, Red", Decimal("4999.00"), True, 8, 14500),
    CatalogueItem("BIKE-BLUE", "City Bike, Blue", Decimal("4999.00"), True, 5, 14500),
    CatalogueItem("HELMET-M", "Helmet, Medium", Decimal("549.95"), True, 20, 350),
    CatalogueItem("LOCK-U", "U-Lock", Decimal("349.00"), True, 30, 1200),
    CatalogueItem("BOOK-GUIDE", "Cycling Guide to Denmark (book)", Decimal("199.00"), False, 15, 400),
    CatalogueItem("PUMP-MINI", "Mini Pump", Decimal("129.95"), True, 40, 90),
]


class Country(NamedTuple):
    code: str
    name: str
    taxes_included: bool  # the shop shows prices with tax there (and keeps the catalogue price)
    taxes: tuple[tuple[str, Decimal], ...]  # (title, rate) on taxable lines; () = no tax (export)
    tax_shipping: bool
    shipping: tuple[str, Decimal]  # the usual shipping line: title, price (gross when taxes are included)
    share: float  # of generated orders
    locale: str


COUNTRIES = {
    country.code: country
    for country in (
        Country(
            "DK", "Denmark", True, (("Moms", Decimal("0.25")),), True, ("PostNord", Decimal("49.00")), 0.70, "da"
        ),
        Country(
            "SE", "Sweden", True, (("Moms", Decimal("0.25")),), True, ("PostNord", Decimal("99.00")), 0.08, "sv"
        ),
        Country(
            "DE", "Germany", True, (("MwSt.", Decimal("0.19")),), True, ("DHL", Decimal("129.00")), 0.08, "de"
        ),
        # Export outside the EU: no VAT, and the Danish VAT is taken out of the price.
        Country("NO", "Norway", False, (), False, ("PostNord", Decimal("119.00")), 0.07, "nb"),
        # One state's rates for every US address: enough for two tax lines on top of the price. Many US states do
        # not tax shipping; this shop's tax_shipping is off there.
        Country(
            "US",
            "United States",
            False,
            (("State Tax", Decimal("0.06")), ("County Tax", Decimal("0.025"))),
            False,
            ("DHL Express", Decimal("399.00")),
            0.07,
            "en",
        ),
    )
}


class Person(NamedTuple):
    country: str
    first_name: str
    last_name: str
    company: str | None
    address1: str
    zip: str
    city: str
    phone: str
    province: str | None = None
    province_code: str | None = None


PEOPLE = [
    Person("DK", "Mette", "Hansen", None, "Nørregade 12", "8000", "Aarhus C", "+4520112233"),
    Person("DK", "Lars", "Nielsen", None, "Vestergade 4, 2. th.", "5000", "Odense C", "+4521223344"),
    Person("DK", "Anna", "Jensen", None, "Strandvejen 101", "2900", "Hellerup", "+4522334455"),
    Person("DK", "Peter", "Larsen", "Larsen Cykler ApS", "Industrivej 7", "7100", "Vejle", "+4523445566"),
    Person("DK", "Camilla", "Pedersen", None, "Algade 33", "4000", "Roskilde", "+4524556677"),
    Person("DK", "Jonas", "Andersen", None, "Boulevarden 9", "9000", "Aalborg", "+4525667788"),
    Person("DK", "Sofie", "Christensen", None, "Havnegade 2", "6700", "Esbjerg", "+4526778899"),
    Person("DK", "Mikkel", "Rasmussen", "Rasmussen & Søn I/S", "Bygaden 15", "8600", "Silkeborg", "+4527889900"),
    Person("SE", "Erik", "Lindqvist", None, "Drottninggatan 52", "111 21", "Stockholm", "+46701234567"),
    Person("SE", "Karin", "Berg", "Cykelverkstan AB", "Stortorget 3", "211 22", "Malmö", "+46702345678"),
    Person("DE", "Lukas", "Becker", None, "Schönhauser Allee 10", "10119", "Berlin", "+4915112345678"),
    Person("DE", "Julia", "Wagner", None, "Jungfernstieg 7", "20354", "Hamburg", "+4915223456789"),
    Person("NO", "Kari", "Nordmann", None, "Karl Johans gate 22", "0159", "Oslo", "+4791234567"),
    Person("NO", "Ola", "Hansen", None, "Bryggen 5", "5003", "Bergen", "+4792345678"),
    Person(
        "US", "Bob", "Norman", None, "Chestnut Street 92", "40202", "Louisville", "+15024592181", "Kentucky", "KY"
    ),
    Person(
        "US", "Emily", "Carter", None, "215 Main Street", "40601", "Frankfort", "+15025550142", "Kentucky", "KY"
    ),
]


@dataclass
class _Line:
    product_id: int
    variant_id: int
    sku: str
    title: str
    variant_title: str | None
    price: Decimal  # in the order's terms: gross when taxes are included, net otherwise
    quantity: int
    taxable: bool
    grams: int
    discount: Decimal = ZERO  # a manual discount on this line, applied before discount codes

    @property
    def gross(self) -> Decimal:
        return money(self.price * self.quantity)


def make_order(
    rng: random.Random, number: int, products: list[dict[str, Any]], **overrides: Any
) -> dict[str, Any]:
    """A new order number `number` over `products` (Shopify product JSON), random where not overridden.

    `country` (an ISO code of COUNTRIES; default: drawn, mostly DK) and `taxes_included` (default: the country's)
    decide the prices and taxes. Other overrides are applied with `apply_changes`. A basket given as `line_items`
    gets no random discount code; shipping stays random unless `shipping_lines` is given too. Raises ValueError for
    overrides that cannot apply.
    """
    overrides = dict(overrides)
    drawn = rng.choices(list(COUNTRIES), weights=[country.share for country in COUNTRIES.values()])[0]
    code = overrides.pop("country", drawn)
    if code not in COUNTRIES:
        raise ValueError(f"country must be one of {', '.join(COUNTRIES)}, not {code!r}")
    country = COUNTRIES[code]
    taxes_included = overrides.pop("taxes_included", country.taxes_included)
    if not isinstance(taxes_included, bool):
        raise ValueError(f"taxes_included must be true or false, not {taxes_included!r}")

    lines = _draw_lines(rng, products, taxes_included)
    welcome = not any(line.discount for line in lines) and sum(line.gross for line in lines) > WELCOME_CODE[1]
    codes = [WELCOME_CODE] if welcome and rng.random() < 0.2 else []
    shipping = [country.shipping] if rng.random() < 0.85 else []
    person = rng.choice([person for person in PEOPLE if person.country == code])
    has_email = rng.random() < 0.9
    paid = rng.random() < 0.85

    order_id = ORDER_ID_BASE + number * 1000 + 1
    token = hashlib.sha256(str(order_id).encode()).hexdigest()[:32]
    domain = "com" if code == "US" else code.lower()
    email = f"{person.first_name}.{person.last_name}@example.{domain}".lower() if has_email else None
    customer_id = CUSTOMER_ID_BASE + 2 * PEOPLE.index(person) + 1
    address = _address(person, country)
    now = now_iso()
    order: dict[str, Any] = {
        "id": order_id,
        "admin_graphql_api_id": f"gid://shopify/Order/{order_id}",
        "app_id": 580111,  # the Online Store
        "browser_ip": "203.0.113.10",
        "buyer_accepts_marketing": False,
        "cancel_reason": None,
        "cancelled_at": None,
        "cart_token": token[::-1],
        "checkout_id": order_id + 2,
        "checkout_token": token[16:] + token[:16],
        "client_details": {
            "accept_language": f"{country.locale}-{code}",
            "browser_height": None,
            "browser_ip": "203.0.113.10",
            "browser_width": None,
            "session_hash": None,
            "user_agent": "Mozilla/5.0",
        },
        "closed_at": None,
        "confirmation_number": token[:9].upper(),
        "confirmed": True,
        "contact_email": email,
        "created_at": now,
        "currency": CURRENCY,
        "current_total_additional_fees_set": None,
        "current_total_duties_set": None,
        "customer_locale": f"{country.locale}-{code}",
        "device_id": None,
        "duties_included": False,
        "email": email,
        "estimated_taxes": False,
        "financial_status": "paid" if paid else "pending",
        "fulfillment_status": None,
        "landing_site": "/",
        "landing_site_ref": None,
        "location_id": None,
        "merchant_business_entity_id": "MTAwMDAwMDAwMQ",
        "merchant_of_record_app_id": None,
        "name": f"#{number}",
        "note": None,
        "note_attributes": [],
        "number": number - 1000,
        "order_number": number,
        "order_status_url": f"https://{SHOP_DOMAIN}/1/orders/{token}/authenticate?key={token[:16]}",
        "original_total_additional_fees_set": None,
        "original_total_duties_set": None,
        "payment_gateway_names": ["shopify_payments"],
        "phone": person.phone,
        "po_number": None,
        "presentment_currency": CURRENCY,
        "processed_at": now,
        "reference": None,
        "referring_site": None,
        "source_identifier": None,
        "source_name": "web",
        "source_url": None,
        "tags": "",
        "tax_exempt": False,
        "taxes_included": taxes_included,
        "test": False,
        "token": token,
        "total_cash_rounding_payment_adjustment_set": _set(ZERO),
        "total_cash_rounding_refund_adjustment_set": _set(ZERO),
        "total_tip_received": "0.00",
        "updated_at": now,
        "user_id": None,
        "billing_address": address,
        "customer": {
            "id": customer_id,
            "email": email,
            "created_at": CUSTOMER_SINCE,
            "updated_at": now,
            "first_name": person.first_name,
            "last_name": person.last_name,
            "state": "disabled",
            "note": None,
            "verified_email": True,
            "multipass_identifier": None,
            "tax_exempt": False,
            "phone": person.phone,
            "email_marketing_consent": {
                "state": "not_subscribed",
                "opt_in_level": "single_opt_in",
                "consent_updated_at": None,
            },
            "sms_marketing_consent": None,
            "tags": "",
            "currency": CURRENCY,
            "tax_exemptions": [],
            "admin_graphql_api_id": f"gid://shopify/Customer/{customer_id}",
            "default_address": {
                "id": customer_id + 2,
                "customer_id": customer_id,
                **{key: address[key] for key in ("first_name", "last_name", "company", "address1", "address2")},
                **{key: address[key] for key in ("city", "province", "country", "zip", "phone", "name")},
                "province_code": address["province_code"],
                "country_code": code,
                "country_name": country.name,
                "default": True,
            },
        },
        "fulfillments": [],
        "payment_terms": None,
        "refunds": [],
        "shipping_address": dict(address),
    }
    order.update(_priced(number, lines, shipping, codes, country, taxes_included))
    if "line_items" in overrides:
        overrides.setdefault("discount_codes", [])
    apply_changes(order, products, overrides)
    return order


def apply_changes(order: dict[str, Any], products: list[dict[str, Any]], changes: dict[str, Any]) -> None:
    """Merge `changes` into `order`, all or nothing; ValueError when they cannot apply.

    `line_items` ([{"sku", "quantity"}]), `shipping_lines` ([{"price", "title"?}]) and `discount_codes`
    ([{"code", "amount"}], fixed amounts) are given short and reprice the order; the parts not given are kept
    (new line items carry no manual discount). An order with refunds cannot be repriced, and `country` and
    `taxes_included` can only be chosen at creation. An `email` becomes the customer's too. Other keys replace
    fields as they are (no repricing: e.g. a new shipping_address does not change the taxes).
    """
    fixed = [key for key in AT_CREATION_ONLY if key in changes]
    if fixed:
        raise ValueError(f"{' and '.join(fixed)} can only be chosen when the order is created")
    plain = {key: value for key, value in changes.items() if key not in REPRICING}
    if any(key in changes for key in REPRICING):
        if order["refunds"]:
            raise ValueError("an order with refunds cannot be repriced")
        if "line_items" in changes:
            specs = entries(changes["line_items"], "line_items", "sku")
            lines = [_new_line(products, spec, order["taxes_included"]) for spec in specs]
        else:
            lines = _lines_of(order)
        shipping = _shipping_of(changes.get("shipping_lines", order["shipping_lines"]))
        codes = _codes_of(changes.get("discount_codes", order["discount_codes"]))
        country = country_of(order)
        order.update(_priced(order["order_number"], lines, shipping, codes, country, order["taxes_included"]))
    order.update(plain)
    if "email" in plain and order.get("customer"):
        order["customer"]["email"] = plain["email"]
    settle(order)


def country_of(order: dict[str, Any]) -> Country:
    """The country the order's taxes follow: where it ships (else where it is billed; else Denmark)."""
    address = order.get("shipping_address") or order.get("billing_address") or {}
    return COUNTRIES.get(str(address.get("country_code")), COUNTRIES["DK"])


def refund(
    order: dict[str, Any],
    request: Any,
    new_id: IdMaker,
    locations: list[int],
    at: str | None = None,
) -> dict[str, Any]:
    """Refund part of `order` as Shopify's admin would, and return the Refund (the Admin API's full shape).

    `request`: {"refund_line_items": [{"line_item_id" or "sku", "quantity", "restock_type"?, "location_id"?}],
    "shipping": {"full_refund": true} or {"amount": "5.00"} (which takes precedence), "note"?}. A restock_type of
    cancel or return restocks at `location_id`, by default the first of `locations` (the admin picks the primary
    location for the merchant). The order gets the refund (as Shopify embeds it: without `return` and
    `refund_shipping_lines`), lower current_* fields, a new financial_status when money went back, and updated_at
    `at` (default: now, later than before). Raises Refused (a 422) for what Shopify refuses.
    """
    if not isinstance(request, dict):
        raise Refused({"refund": ["must be an object"]})
    note = request.get("note")
    if note is not None and not isinstance(note, str):
        raise Refused({"note": ["must be a string"]})
    items = _refund_items(order, request.get("refund_line_items", []), locations)
    shipping = _shipping_to_refund(order, request.get("shipping"))
    if not items and not shipping:
        # Shopify's wording is not documented; a refund of nothing has no use here.
        raise Refused({"base": ["A refund needs line items or shipping to refund"]})

    refund_id = new_id(REFUND_ID_BASE)
    now = now_iso()
    included = order["taxes_included"]
    refunded = _refunded_units(order)
    refund_line_items = []
    back = ZERO  # what the customer gets back
    for line, quantity, restock_type, location_id in items:
        before = refunded.get(line["id"], 0)
        refunded[line["id"]] = before + quantity
        subtotal = _unit_part(line, before + quantity, "subtotal") - _unit_part(line, before, "subtotal")
        tax = _unit_part(line, before + quantity, "tax") - _unit_part(line, before, "tax")
        back += subtotal if included else subtotal + tax
        snapshot = {key: value for key, value in copy.deepcopy(line).items() if key not in LIVE_LINE_KEYS}
        refund_line_items.append(
            {
                "id": new_id(REFUND_LINE_ID_BASE),
                "line_item_id": line["id"],
                "location_id": location_id,
                "quantity": quantity,
                "restock_type": restock_type,
                "subtotal": float(subtotal),
                "subtotal_set": _set(subtotal),
                "total_tax": float(tax),
                "total_tax_set": _set(tax),
                "line_item": snapshot,
            }
        )

    refund_shipping_lines, order_adjustments = [], []
    if shipping:
        already = _refunded_shipping(order)
        tax = _shipping_tax_part(order, already + shipping) - _shipping_tax_part(order, already)
        back += shipping if included else shipping + tax
        offset = ZERO
        for line in order["shipping_lines"]:
            price = to_decimal(line["discounted_price"])
            part = _clamp(already + shipping - offset, price) - _clamp(already - offset, price)
            offset += price
            if part > 0:
                refund_shipping_lines.append(
                    {
                        "id": new_id(REFUND_SHIPPING_ID_BASE),
                        "shipping_line_id": line["id"],
                        "subtotal_amount_set": _set(part),
                        "shipping_line": copy.deepcopy(line),
                    }
                )
        # Signs as in the documented shipping refund: the adjustment is negative ("-5.00"), the transaction
        # positive. The docs say tax_amount is "added to amount", so amount excludes the tax; its sign follows
        # amount's (the example's "0.00" does not show it).
        amount = -(shipping - tax) if included else -shipping
        order_adjustments.append(
            {
                "id": new_id(ADJUSTMENT_ID_BASE),
                "order_id": order["id"],
                "refund_id": refund_id,
                "amount": _text(amount),
                "tax_amount": _text(-tax),
                "kind": "shipping_refund",
                "reason": "Shipping refund",
                "amount_set": _set(amount),
                "tax_amount_set": _set(-tax),
            }
        )

    transactions = []
    if order["financial_status"] in PAID and back > 0:
        # An unpaid order has no payment to give back: its refund only takes the items back.
        left = to_decimal(order["total_price"]) - _refunded_money(order) - back
        transaction_id = new_id(REFUND_TRANSACTION_ID_BASE)
        transactions.append(
            {
                "id": transaction_id,
                "admin_graphql_api_id": f"gid://shopify/OrderTransaction/{transaction_id}",
                "amount": _text(back),
                "authorization": None,
                "created_at": now,
                "currency": CURRENCY,
                "device_id": None,
                "error_code": None,
                "gateway": "shopify_payments",
                "kind": "refund",
                "location_id": None,
                "message": "Refund succeeded",
                "order_id": order["id"],
                "parent_id": TRANSACTION_ID_BASE + order["order_number"] * 1000 + 1,  # the sale
                "payment_id": f"{order['confirmation_number']}.{len(order['refunds']) + 2}",
                "processed_at": now,
                "receipt": {},
                "source_name": "web",
                "status": "success",
                "test": False,
                "user_id": None,
                # Only the refund endpoint (and the refunds/create webhook) shows these three; note "currency"
                # where the *_set objects say "currency_code", as documented.
                "total_unsettled_set": {
                    "presentment_money": {"amount": _text(left), "currency": CURRENCY},
                    "shop_money": {"amount": _text(left), "currency": CURRENCY},
                },
                "manual_payment_gateway": False,
                "amount_rounding": None,
            }
        )

    result = {
        "id": refund_id,
        "order_id": order["id"],
        "created_at": now,
        "note": note,
        "user_id": None,
        "processed_at": now,
        "duties": [],
        "total_duties_set": _set(ZERO),
        "return": None,
        "restock": any(restock != "no_restock" for _, _, restock, _ in items),
        "additional_fees": [],
        "total_additional_fees_set": _set(ZERO),
        "refund_shipping_lines": refund_shipping_lines,
        "admin_graphql_api_id": f"gid://shopify/Refund/{refund_id}",
        "order_adjustments": order_adjustments,
        "refund_line_items": refund_line_items,
        "transactions": transactions,
    }
    order["refunds"].append(_embedded(result))
    if transactions:
        fully = _refunded_money(order) >= to_decimal(order["total_price"])
        order["financial_status"] = "refunded" if fully else "partially_refunded"
    order["updated_at"] = at or later_than(order["updated_at"])
    settle(order)
    return result


def cancel(
    order: dict[str, Any], reason: Any, refund_payment: bool, new_id: IdMaker, locations: list[int]
) -> dict[str, Any] | None:
    """Cancel `order` (closing it) for `reason`; with `refund_payment`, a paid order gets everything still
    refundable back (restock_type cancel). Returns that refund, if one was made. An unpaid order is voided.
    Raises Refused (a 422) for an unknown reason or an order cancelled before.
    """
    if reason not in CANCEL_REASONS:
        raise Refused({"reason": ["is not included in the list"]})
    if order["cancelled_at"]:
        # The wording is not documented; Shopify does refuse to cancel twice.
        raise Refused({"base": ["Order has already been cancelled"]})
    at = later_than(order["updated_at"])
    made = None
    if order["financial_status"] in ("pending", "authorized"):
        order["financial_status"] = "voided"
    elif order["financial_status"] in PAID and refund_payment:
        left = _refunded_units(order)
        items = [
            {
                "line_item_id": line["id"],
                "quantity": line["quantity"] - left.get(line["id"], 0),
                "restock_type": "cancel",
            }
            for line in order["line_items"]
            if line["quantity"] > left.get(line["id"], 0)
        ]
        if items or _shipping_left(order) > 0:
            request = {"refund_line_items": items, "shipping": {"full_refund": True}, "note": "Order canceled"}
            made = refund(order, request, new_id, locations, at)
    # Without a refund the current_* fields keep what was sold: Shopify's docs only tie them to edits and refunds.
    order.update({"cancelled_at": at, "cancel_reason": reason, "closed_at": at, "updated_at": at})
    settle(order)
    return made


def settle(order: dict[str, Any]) -> None:
    """Derive the current_* fields, current quantities and total_outstanding from the order and its refunds."""
    refunded = _refunded_units(order)
    discounts = subtotal = line_tax = ZERO
    for line in order["line_items"]:
        units = refunded.get(line["id"], 0)
        line["current_quantity"] = line["quantity"] - units
        line["fulfillable_quantity"] = line["current_quantity"]
        allocated = sum((to_decimal(a["amount"]) for a in line["discount_allocations"]), ZERO)
        discounts += allocated - _unit_part(line, units, "discount")
        subtotal += _line_total(line) - _unit_part(line, units, "subtotal")
        line_tax += _unit_part(line, units, "tax")
    shipping_refunded = _refunded_shipping(order)
    shipping_left = _shipping_left(order)
    tax = to_decimal(order["total_tax"]) - line_tax - _shipping_tax_part(order, shipping_refunded)
    total = subtotal + shipping_left + (ZERO if order["taxes_included"] else tax)
    unpaid = order["financial_status"] in ("pending", "authorized", "partially_paid")
    for name, amount in (
        ("current_subtotal_price", subtotal),
        ("current_total_discounts", discounts),
        ("current_total_price", total),
        ("current_total_tax", tax),
    ):
        order[name] = _text(amount)
        order[f"{name}_set"] = _set(amount)
    order["total_outstanding"] = _text(total if unpaid else ZERO)
    # The order's own refunds show each refunded line as the order has it now (with current_quantity), unlike
    # the refund endpoint's snapshot: so does the documented example.
    lines = {line["id"]: line for line in order["line_items"]}
    for each in order["refunds"]:
        for item in each["refund_line_items"]:
            if item["line_item_id"] in lines:
                item["line_item"] = copy.deepcopy(lines[item["line_item_id"]])


# Order line keys the refund endpoint's line_item lacks.
LIVE_LINE_KEYS = ("current_quantity", "attributed_staffs")
# Refund keys an order's embedded refunds lack, and transaction keys only the refund endpoint shows.
ENDPOINT_REFUND_KEYS = ("return", "refund_shipping_lines")
ENDPOINT_TRANSACTION_KEYS = ("total_unsettled_set", "manual_payment_gateway", "amount_rounding")


def _embedded(full: dict[str, Any]) -> dict[str, Any]:
    embedded = {key: copy.deepcopy(value) for key, value in full.items() if key not in ENDPOINT_REFUND_KEYS}
    for transaction in embedded["transactions"]:
        for key in ENDPOINT_TRANSACTION_KEYS:
            transaction.pop(key, None)
    return embedded


def _refund_items(
    order: dict[str, Any], value: Any, locations: list[int]
) -> list[tuple[dict[str, Any], int, str, int | None]]:
    """(line item, quantity, restock_type, location_id) of the requested refund lines; Refused if invalid."""
    if not isinstance(value, list) or not all(isinstance(entry, dict) for entry in value):
        raise Refused({"refund_line_items": ["must be a list of objects"]})
    refunded = _refunded_units(order)
    items = []
    for entry in value:
        quantity = entry.get("quantity")
        if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 1:
            raise Refused({"refund_line_items.quantity": ["must be greater than 0"]})
        line = _line_to_refund(order, entry, refunded)
        left = line["quantity"] - refunded.get(line["id"], 0)
        if quantity > left:
            # "Quantity cannot refund more items than were purchased" is Shopify's message for this.
            raise Refused({"refund_line_items.quantity": ["cannot refund more items than were purchased"]})
        refunded[line["id"]] = refunded.get(line["id"], 0) + quantity
        restock_type = entry.get("restock_type", "no_restock")
        if restock_type not in RESTOCK_TYPES:
            raise Refused({"refund_line_items.restock_type": ["is not included in the list"]})
        location_id = entry.get("location_id")
        if restock_type == "no_restock":
            location_id = None
        elif location_id is None:
            location_id = locations[0]
        elif location_id not in locations:
            raise Refused({"refund_line_items.location_id": ["is invalid"]})
        items.append((line, quantity, restock_type, location_id))
    return items


def _line_to_refund(order: dict[str, Any], entry: dict[str, Any], refunded: dict[int, int]) -> dict[str, Any]:
    """The order line an entry names by line_item_id, or by sku (the first such line with units left)."""
    if "line_item_id" in entry:
        for line in order["line_items"]:
            if line["id"] == entry["line_item_id"]:
                return line
        raise Refused({"refund_line_items.line_item_id": ["is invalid"]})
    named = [line for line in order["line_items"] if "sku" in entry and line["sku"] == entry["sku"]]
    if not named:
        raise Refused({"refund_line_items": ["need a line_item_id (or the sku of a line of the order)"]})
    return next((line for line in named if line["quantity"] > refunded.get(line["id"], 0)), named[0])


def _shipping_to_refund(order: dict[str, Any], value: Any) -> Decimal:
    """The shipping amount to refund (in the order's terms); Refused if invalid or above what is left."""
    if value is None:
        return ZERO
    if not isinstance(value, dict):
        raise Refused({"shipping": ["must be an object"]})
    left = _shipping_left(order)
    if "amount" in value:  # "Takes precedence over full_refund"
        try:
            amount = money(to_decimal(value["amount"]))
        except ValueError:
            raise Refused({"shipping.amount": ["is not a number"]}) from None
        if amount < 0:
            raise Refused({"shipping.amount": ["must be greater than or equal to 0"]})
        if amount > left:
            # Undocumented wording; Shopify refuses more than the shipping's "maximum_refundable".
            raise Refused({"shipping.amount": [f"must be less than or equal to the refundable {_text(left)}"]})
        return amount
    return left if value.get("full_refund") is True else ZERO


def _refunded_units(order: dict[str, Any]) -> dict[int, int]:
    units: dict[int, int] = {}
    for each in order["refunds"]:
        for item in each["refund_line_items"]:
            units[item["line_item_id"]] = units.get(item["line_item_id"], 0) + item["quantity"]
    return units


def _refunded_shipping(order: dict[str, Any]) -> Decimal:
    """The shipping refunded so far, in the order's terms (gross when taxes are included), from the adjustments."""
    total = ZERO
    for each in order["refunds"]:
        for adjustment in each["order_adjustments"]:
            if adjustment["kind"] == "shipping_refund":
                amount = -to_decimal(adjustment["amount"])
                total += amount - to_decimal(adjustment["tax_amount"]) if order["taxes_included"] else amount
    return total


def _refunded_money(order: dict[str, Any]) -> Decimal:
    return sum(
        (
            to_decimal(transaction["amount"])
            for each in order["refunds"]
            for transaction in each["transactions"]
            if transaction["kind"] == "refund" and transaction["status"] == "success"
        ),
        ZERO,
    )


def _shipping_total(order: dict[str, Any]) -> Decimal:
    return sum((to_decimal(line["discounted_price"]) for line in order["shipping_lines"]), ZERO)


def _shipping_left(order: dict[str, Any]) -> Decimal:
    return _shipping_total(order) - _refunded_shipping(order)


def _shipping_tax_part(order: dict[str, Any], refunded: Decimal) -> Decimal:
    """The shipping tax that goes with `refunded` of the shipping (cumulative, so all of it gives back all)."""
    total = _shipping_total(order)
    tax = sum((to_decimal(t["price"]) for line in order["shipping_lines"] for t in line["tax_lines"]), ZERO)
    return money(tax * refunded / total) if total else ZERO


def _line_total(line: dict[str, Any]) -> Decimal:
    """D: the line's price * quantity less its discount allocations."""
    allocated = sum((to_decimal(a["amount"]) for a in line["discount_allocations"]), ZERO)
    return money(to_decimal(line["price"]) * line["quantity"]) - allocated


def _unit_part(line: dict[str, Any], units: int, part: str) -> Decimal:
    """What `units` of the line's units are worth: their "discount", "subtotal" (after it) or "tax"."""
    if units == 0:
        return ZERO
    allocated = sum((to_decimal(a["amount"]) for a in line["discount_allocations"]), ZERO)
    discount = money(allocated * units / line["quantity"])
    if part == "discount":
        return discount
    if part == "subtotal":
        return money(to_decimal(line["price"]) * units) - discount
    tax = sum((to_decimal(t["price"]) for t in line["tax_lines"]), ZERO)
    return money(tax * units / line["quantity"])


def _clamp(amount: Decimal, ceiling: Decimal) -> Decimal:
    return min(max(amount, ZERO), ceiling)


def _address(person: Person, country: Country) -> dict[str, Any]:
    return {
        "first_name": person.first_name,
        "address1": person.address1,
        "phone": person.phone,
        "city": person.city,
        "zip": person.zip,
        "province": person.province,
        "country": country.name,
        "last_name": person.last_name,
        "address2": None,
        "company": person.company,
        "latitude": None,
        "longitude": None,
        "name": f"{person.first_name} {person.last_name}",
        "country_code": country.code,
        "province_code": person.province_code,
    }


def _draw_lines(rng: random.Random, products: list[dict[str, Any]], taxes_included: bool) -> list[_Line]:
    """1-4 different variants, 1-3 of each; in one order in five, one line gets 10% off."""
    variants = [(product, variant) for product in products for variant in product["variants"]]
    picks = rng.sample(variants, rng.randint(1, min(4, len(variants))))
    lines = [_line(product, variant, rng.randint(1, 3), taxes_included) for product, variant in picks]
    if rng.random() < 0.2:
        line = rng.choice(lines)
        line.discount = money(line.gross / 10)
    return lines


def _line(product: dict[str, Any], variant: dict[str, Any], quantity: int, taxes_included: bool) -> _Line:
    """A line of `variant`, priced as the catalogue says (with Danish VAT), or without that VAT for an order whose
    prices exclude taxes."""
    price = to_decimal(variant["price"])
    if not taxes_included and variant["taxable"]:
        price = money(price / (1 + HOME_VAT))
    title = variant.get("title")
    return _Line(
        product["id"],
        variant["id"],
        variant["sku"],
        product["title"],
        None if title in (None, "Default Title") else title,
        price,
        quantity,
        variant["taxable"],
        variant.get("grams", 0),
    )


def _new_line(products: list[dict[str, Any]], spec: dict[str, Any], taxes_included: bool) -> _Line:
    quantity = spec.get("quantity", 1)
    if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 1:
        raise ValueError(f"quantity must be a positive integer, not {quantity!r}")
    for product in products:
        for variant in product["variants"]:
            if variant["sku"] == spec["sku"]:
                return _line(product, variant, quantity, taxes_included)
    raise ValueError(f"no product has SKU {spec['sku']!r}")


def _lines_of(order: dict[str, Any]) -> list[_Line]:
    """The order's line items as they are, with their manual discounts."""
    manual = {i for i, application in enumerate(order["discount_applications"]) if application["type"] == "manual"}
    return [
        _Line(
            item["product_id"],
            item["variant_id"],
            item["sku"],
            item["title"],
            item.get("variant_title"),
            to_decimal(item["price"]),
            item["quantity"],
            item["taxable"],
            item.get("grams", 0),
            sum(
                (
                    to_decimal(allocation["amount"])
                    for allocation in item["discount_allocations"]
                    if allocation["discount_application_index"] in manual
                ),
                ZERO,
            ),
        )
        for item in order["line_items"]
    ]


def _shipping_of(value: Any) -> list[tuple[str, Decimal]]:
    """(title, price) of shipping lines given in full or short form."""
    return [
        (str(line.get("title", "Shipping")), money(to_decimal(line["price"])))
        for line in entries(value, "shipping_lines", "price")
    ]


def _codes_of(value: Any) -> list[tuple[str, Decimal]]:
    """(code, amount) of discount codes given in full or short form."""
    return [
        (str(code["code"]), money(to_decimal(code["amount"])))
        for code in entries(value, "discount_codes", "code", "amount")
    ]


def _priced(
    number: int,
    lines: list[_Line],
    shipping: list[tuple[str, Decimal]],
    codes: list[tuple[str, Decimal]],
    country: Country,
    taxes_included: bool,
) -> dict[str, Any]:
    """The money fields of an order: line items, shipping lines, discounts, tax lines and totals (not current_*:
    see `settle`)."""
    if not lines:
        raise ValueError("an order needs at least one line item")
    after_manual = [line.gross - line.discount for line in lines]
    if sum(amount for _, amount in codes) > sum(after_manual):
        raise ValueError("the discount codes exceed the order's value")
    applications: list[dict[str, Any]] = []
    if any(line.discount for line in lines):
        applications.append(
            {
                "target_type": "line_item",
                "type": "manual",
                "value": "10.0",
                "value_type": "percentage",
                "allocation_method": "one",
                "target_selection": "explicit",
                "title": "Line discount",
                "description": "Line discount",
            }
        )
    first_code = len(applications)
    applications += [
        {
            "target_type": "line_item",
            "type": "discount_code",
            "value": _value_text(amount),
            "value_type": "fixed_amount",
            "allocation_method": "across",
            "target_selection": "all",
            "code": code,
        }
        for code, amount in codes
    ]
    shares = [_allocate(amount, after_manual) for _, amount in codes]

    taxes: dict[tuple[str, Decimal], Decimal] = {}
    line_items = []
    for i, line in enumerate(lines):
        allocations = [(0, line.discount)] if line.discount else []
        allocations += [(first_code + c, code_shares[i]) for c, code_shares in enumerate(shares)]
        discount = sum((amount for _, amount in allocations), ZERO)
        rates = country.taxes if line.taxable else ()
        line_id = LINE_ID_BASE + number * 1000 + 2 * i + 1
        name = f"{line.title} - {line.variant_title}" if line.variant_title else line.title
        line_items.append(
            {
                "id": line_id,
                "admin_graphql_api_id": f"gid://shopify/LineItem/{line_id}",
                "attributed_staffs": [],
                "current_quantity": line.quantity,
                "fulfillable_quantity": line.quantity,
                "fulfillment_service": "manual",
                "fulfillment_status": None,
                "gift_card": False,
                "grams": line.grams,
                "name": name,
                "price": _text(line.price),
                "price_set": _set(line.price),
                "product_exists": True,
                "product_id": line.product_id,
                "properties": [],
                "quantity": line.quantity,
                "requires_shipping": True,
                "sku": line.sku,
                "taxable": line.taxable,
                "title": line.title,
                "total_discount": _text(line.discount),
                "total_discount_set": _set(line.discount),
                "variant_id": line.variant_id,
                "variant_inventory_management": "shopify",
                "variant_title": line.variant_title,
                "vendor": "Sandbox Cycles",
                "tax_lines": _tax_lines(line.gross - discount, rates, taxes_included, taxes),
                "duties": [],
                "discount_allocations": [
                    {"amount": _text(amount), "amount_set": _set(amount), "discount_application_index": index}
                    for index, amount in allocations
                ],
            }
        )
    shipping_lines = [
        {
            "id": SHIPPING_ID_BASE + number * 1000 + 2 * i + 1,
            "carrier_identifier": None,
            "code": title,
            "discounted_price": _text(price),
            "discounted_price_set": _set(price),
            "is_removed": False,
            "phone": None,
            "price": _text(price),
            "price_set": _set(price),
            "requested_fulfillment_service_id": None,
            "source": "shopify",
            "title": title,
            "tax_lines": _tax_lines(price, country.taxes if country.tax_shipping else (), taxes_included, taxes),
            "discount_allocations": [],
        }
        for i, (title, price) in enumerate(shipping)
    ]
    line_total = sum((line.gross for line in lines), ZERO)
    discounts = sum((line.discount for line in lines), ZERO) + sum((amount for _, amount in codes), ZERO)
    shipping_total = sum((price for _, price in shipping), ZERO)
    tax = sum(taxes.values(), ZERO)
    total = line_total - discounts + shipping_total + (ZERO if taxes_included else tax)
    return {
        "total_price": _text(total),
        "total_price_set": _set(total),
        "subtotal_price": _text(line_total - discounts),
        "subtotal_price_set": _set(line_total - discounts),
        "total_tax": _text(tax),
        "total_tax_set": _set(tax),
        "total_discounts": _text(discounts),
        "total_discounts_set": _set(discounts),
        "total_line_items_price": _text(line_total),
        "total_line_items_price_set": _set(line_total),
        "total_shipping_price_set": _set(shipping_total),
        "total_weight": sum(line.grams * line.quantity for line in lines),
        "line_items": line_items,
        "shipping_lines": shipping_lines,
        "discount_codes": [
            {"code": code, "amount": _text(amount), "type": "fixed_amount"} for code, amount in codes
        ],
        "discount_applications": applications,
        "tax_lines": [
            {
                "price": _text(amount),
                "rate": float(rate),
                "title": title,
                "price_set": _set(amount),
                "channel_liable": False,
            }
            for (title, rate), amount in taxes.items()
        ],
    }


def _tax_lines(
    amount: Decimal,
    rates: tuple[tuple[str, Decimal], ...],
    taxes_included: bool,
    totals: dict[tuple[str, Decimal], Decimal],
) -> list[dict[str, Any]]:
    """The tax lines for `amount` (after discounts) at `rates`, also added to `totals` (per title and rate).

    Included taxes are the part of the amount each rate makes up; excluded taxes are added on top. channel_liable
    is false, as in real orders (the documented example has null).
    """
    combined = sum((rate for _, rate in rates), ZERO)
    tax_lines = []
    for title, rate in rates:
        tax = money(amount * rate / (1 + combined)) if taxes_included else money(amount * rate)
        totals[title, rate] = totals.get((title, rate), ZERO) + tax
        tax_lines.append(
            {
                "channel_liable": False,
                "price": _text(tax),
                "price_set": _set(tax),
                "rate": float(rate),
                "title": title,
            }
        )
    return tax_lines


def _allocate(amount: Decimal, weights: list[Decimal]) -> list[Decimal]:
    """`amount` split over `weights` in proportion, in cents; the last share takes the rounding remainder."""
    total = sum(weights, ZERO)
    if not total:
        return [ZERO for _ in weights]
    shares = [money(amount * weight / total) for weight in weights[:-1]]
    return [*shares, amount - sum(shares, ZERO)]


def _text(amount: Decimal) -> str:
    """Shopify's money format: a string with two decimals (and no "-0.00")."""
    rounded = money(amount)
    return str(rounded if rounded else abs(rounded))


def _set(amount: Decimal) -> dict[str, dict[str, str]]:
    """The amount in shop and presentment currency (the same here)."""
    text = _text(amount)
    return {
        "shop_money": {"amount": text, "currency_code": CURRENCY},
        "presentment_money": {"amount": text, "currency_code": CURRENCY},
    }


def _value_text(amount: Decimal) -> str:
    """A discount application's value: "10.0" for 10.00, as documented."""
    text = format(amount.normalize(), "f")
    return text if "." in text else f"{text}.0"
