"""The demo catalogue and a generator of realistic, internally consistent Shopify orders.

Money follows Shopify: strings with two decimals, and prices include VAT (`taxes_included`). Every total is
derived from the line items, shipping lines and discount codes:

- total_line_items_price = sum(price * quantity); total_discounts = sum of all discount allocations;
- subtotal_price = total_line_items_price - total_discounts; total_price = subtotal_price + shipping;
- each tax line holds the VAT inside its gross amount after discounts: round(gross - gross / (1 + rate), 2);
  total_tax and the order's tax_lines (one per rate) are the sums of the line and shipping tax lines.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, NamedTuple

from sandbox.common import entries, money, now_iso, to_decimal

ORDER_ID_BASE = 5_500_000_000_000
LINE_ID_BASE = 13_000_000_000_000
SHIPPING_ID_BASE = 4_400_000_000_000
CUSTOMER_ID_BASE = 7_100_000_000_000

ZERO = Decimal("0")
VAT = Decimal("0.25")
SHIPPING_TITLE = "PostNord"
SHIPPING_PRICE = Decimal("49.00")
WELCOME_CODE = ("WELCOME50", Decimal("50.00"))
REPRICING = ("line_items", "shipping_lines", "discount_codes")


class CatalogueItem(NamedTuple):
    sku: str
    title: str
    price: Decimal  # DKK including VAT
    taxable: bool  # False: 0% VAT (the book)
    stock: int


CATALOGUE = [
    CatalogueItem("BIKE-RED", "City Bike, Red", Decimal("4999.00"), True, 8),
    CatalogueItem("BIKE-BLUE", "City Bike, Blue", Decimal("4999.00"), True, 5),
    CatalogueItem("HELMET-M", "Helmet, Medium", Decimal("549.95"), True, 20),
    CatalogueItem("LOCK-U", "U-Lock", Decimal("349.00"), True, 30),
    CatalogueItem("BOOK-GUIDE", "Cycling Guide to Denmark (book)", Decimal("199.00"), False, 15),
    CatalogueItem("PUMP-MINI", "Mini Pump", Decimal("129.95"), True, 40),
]


class Person(NamedTuple):
    first_name: str
    last_name: str
    company: str | None
    address1: str
    zip: str
    city: str
    phone: str


PEOPLE = [
    Person("Mette", "Hansen", None, "Nørregade 12", "8000", "Aarhus C", "+4520112233"),
    Person("Lars", "Nielsen", None, "Vestergade 4, 2. th.", "5000", "Odense C", "+4521223344"),
    Person("Anna", "Jensen", None, "Strandvejen 101", "2900", "Hellerup", "+4522334455"),
    Person("Peter", "Larsen", "Larsen Cykler ApS", "Industrivej 7", "7100", "Vejle", "+4523445566"),
    Person("Camilla", "Pedersen", None, "Algade 33", "4000", "Roskilde", "+4524556677"),
    Person("Jonas", "Andersen", None, "Boulevarden 9", "9000", "Aalborg", "+4525667788"),
    Person("Sofie", "Christensen", None, "Havnegade 2", "6700", "Esbjerg", "+4526778899"),
    Person("Mikkel", "Rasmussen", "Rasmussen & Søn I/S", "Bygaden 15", "8600", "Silkeborg", "+4527889900"),
]


@dataclass
class _Line:
    product_id: int
    variant_id: int
    sku: str
    title: str
    price: Decimal
    quantity: int
    taxable: bool
    discount: Decimal = ZERO  # a manual discount on this line, applied before discount codes

    @property
    def gross(self) -> Decimal:
        return money(self.price * self.quantity)


def make_order(
    rng: random.Random, number: int, products: list[dict[str, Any]], **overrides: Any
) -> dict[str, Any]:
    """A new order number `number` over `products` (Shopify product JSON), random where not overridden.

    Overrides are applied with `apply_changes`. A basket given as `line_items` gets no random discount code;
    shipping stays random unless `shipping_lines` is given too. Raises ValueError for overrides that cannot apply.
    """
    lines = _draw_lines(rng, products)
    welcome = not any(line.discount for line in lines) and sum(line.gross for line in lines) > WELCOME_CODE[1]
    codes = [WELCOME_CODE] if welcome and rng.random() < 0.2 else []
    shipping = [(SHIPPING_TITLE, SHIPPING_PRICE)] if rng.random() < 0.85 else []
    person = rng.choice(PEOPLE)
    email = f"{person.first_name}.{person.last_name}@example.dk".lower() if rng.random() < 0.9 else None
    address = {
        "first_name": person.first_name,
        "last_name": person.last_name,
        "company": person.company,
        "address1": person.address1,
        "address2": None,
        "city": person.city,
        "zip": person.zip,
        "country": "Denmark",
        "country_code": "DK",
        "phone": person.phone,
    }
    now = now_iso()
    order = {
        "id": ORDER_ID_BASE + number,
        "name": f"#{number}",
        "order_number": number,
        "email": email,
        "phone": person.phone,
        "created_at": now,
        "updated_at": now,
        "processed_at": now,
        "currency": "DKK",
        "presentment_currency": "DKK",
        "financial_status": "paid" if rng.random() < 0.85 else "pending",
        "fulfillment_status": None,
        "taxes_included": True,
        **_priced(number, lines, shipping, codes),
        "customer": {
            "id": CUSTOMER_ID_BASE + PEOPLE.index(person),
            "email": email,
            "first_name": person.first_name,
            "last_name": person.last_name,
            "phone": person.phone,
        },
        "billing_address": address,
        "shipping_address": dict(address),
        "note": None,
        "tags": "",
    }
    if "line_items" in overrides:
        overrides.setdefault("discount_codes", [])
    apply_changes(order, products, overrides)
    return order


def apply_changes(order: dict[str, Any], products: list[dict[str, Any]], changes: dict[str, Any]) -> None:
    """Merge `changes` into `order`, all or nothing; ValueError when they cannot apply.

    `line_items` ([{"sku", "quantity"}]), `shipping_lines` ([{"price", "title"?}]) and `discount_codes`
    ([{"code", "amount"}], fixed amounts) are given short and reprice the order; the parts not given are kept
    (new line items carry no manual discount). An `email` becomes the customer's too. Other keys replace fields.
    """
    plain = {key: value for key, value in changes.items() if key not in REPRICING}
    if any(key in changes for key in REPRICING):
        if "line_items" in changes:
            specs = entries(changes["line_items"], "line_items", "sku")
            lines = [_new_line(products, spec) for spec in specs]
        else:
            lines = _lines_of(order)
        shipping = _shipping_of(changes.get("shipping_lines", order["shipping_lines"]))
        codes = _codes_of(changes.get("discount_codes", order["discount_codes"]))
        order.update(_priced(order["order_number"], lines, shipping, codes))
    order.update(plain)
    if "email" in plain and order.get("customer"):
        order["customer"]["email"] = plain["email"]


def _draw_lines(rng: random.Random, products: list[dict[str, Any]]) -> list[_Line]:
    """1-4 different variants, 1-3 of each; in one order in five, one line gets 10% off."""
    variants = [(product, variant) for product in products for variant in product["variants"]]
    picks = rng.sample(variants, rng.randint(1, min(4, len(variants))))
    lines = [_line(product, variant, rng.randint(1, 3)) for product, variant in picks]
    if rng.random() < 0.2:
        line = rng.choice(lines)
        line.discount = money(line.gross / 10)
    return lines


def _line(product: dict[str, Any], variant: dict[str, Any], quantity: int) -> _Line:
    return _Line(
        product["id"],
        variant["id"],
        variant["sku"],
        product["title"],
        to_decimal(variant["price"]),
        quantity,
        variant["taxable"],
    )


def _new_line(products: list[dict[str, Any]], spec: dict[str, Any]) -> _Line:
    quantity = spec.get("quantity", 1)
    if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 1:
        raise ValueError(f"quantity must be a positive integer, not {quantity!r}")
    for product in products:
        for variant in product["variants"]:
            if variant["sku"] == spec["sku"]:
                return _line(product, variant, quantity)
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
            to_decimal(item["price"]),
            item["quantity"],
            item["taxable"],
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
        (str(line.get("title", SHIPPING_TITLE)), money(to_decimal(line["price"])))
        for line in entries(value, "shipping_lines", "price")
    ]


def _codes_of(value: Any) -> list[tuple[str, Decimal]]:
    """(code, amount) of discount codes given in full or short form."""
    return [
        (str(code["code"]), money(to_decimal(code["amount"])))
        for code in entries(value, "discount_codes", "code", "amount")
    ]


def _priced(
    number: int, lines: list[_Line], shipping: list[tuple[str, Decimal]], codes: list[tuple[str, Decimal]]
) -> dict[str, Any]:
    """The money fields of an order: line items, shipping lines, discounts, tax lines and totals."""
    if not lines:
        raise ValueError("an order needs at least one line item")
    after_manual = [line.gross - line.discount for line in lines]
    if sum(amount for _, amount in codes) > sum(after_manual):
        raise ValueError("the discount codes exceed the order's value")
    applications: list[dict[str, Any]] = []
    if any(line.discount for line in lines):
        applications.append({"type": "manual", "title": "Line discount", "value_type": "fixed_amount"})
    first_code = len(applications)
    applications += [{"type": "discount_code", "code": code, "value": _text(amount)} for code, amount in codes]
    shares = [_allocate(amount, after_manual) for _, amount in codes]

    taxes: dict[Decimal, Decimal] = {}
    line_items = []
    for i, line in enumerate(lines):
        allocations = [(0, line.discount)] if line.discount else []
        allocations += [(first_code + c, code_shares[i]) for c, code_shares in enumerate(shares)]
        discount = sum((amount for _, amount in allocations), ZERO)
        tax = _tax(line.gross - discount, VAT if line.taxable else ZERO, taxes)
        line_items.append(
            {
                "id": LINE_ID_BASE + number * 100 + i,
                "product_id": line.product_id,
                "variant_id": line.variant_id,
                "sku": line.sku,
                "title": line.title,
                "name": line.title,
                "quantity": line.quantity,
                "price": _text(line.price),
                "total_discount": _text(discount),
                "taxable": line.taxable,
                "requires_shipping": True,
                "tax_lines": [tax],
                "discount_allocations": [
                    {"amount": _text(amount), "discount_application_index": index} for index, amount in allocations
                ],
            }
        )
    shipping_lines = [
        {
            "id": SHIPPING_ID_BASE + number * 10 + i,
            "title": title,
            "code": title,
            "price": _text(price),
            "discounted_price": _text(price),
            "tax_lines": [_tax(price, VAT, taxes)],
        }
        for i, (title, price) in enumerate(shipping)
    ]
    line_total = sum((line.gross for line in lines), ZERO)
    discounts = sum((line.discount for line in lines), ZERO) + sum((amount for _, amount in codes), ZERO)
    subtotal = line_total - discounts
    return {
        "total_price": _text(subtotal + sum((price for _, price in shipping), ZERO)),
        "subtotal_price": _text(subtotal),
        "total_tax": _text(sum(taxes.values(), ZERO)),
        "total_discounts": _text(discounts),
        "total_line_items_price": _text(line_total),
        "line_items": line_items,
        "shipping_lines": shipping_lines,
        "discount_codes": [
            {"code": code, "amount": _text(amount), "type": "fixed_amount"} for code, amount in codes
        ],
        "discount_applications": applications,
        "tax_lines": [
            {"title": "Moms", "rate": float(rate), "price": _text(amount)}
            for rate, amount in sorted(taxes.items(), reverse=True)
        ],
    }


def _tax(gross: Decimal, rate: Decimal, totals: dict[Decimal, Decimal]) -> dict[str, Any]:
    """The tax line for `gross` at `rate`, also added to `totals` (per rate)."""
    amount = money(gross - gross / (1 + rate))
    totals[rate] = totals.get(rate, ZERO) + amount
    return {"title": "Moms", "rate": float(rate), "price": _text(amount)}


def _allocate(amount: Decimal, weights: list[Decimal]) -> list[Decimal]:
    """`amount` split over `weights` in proportion, in cents; the last share takes the rounding remainder."""
    total = sum(weights, ZERO)
    if not total:
        return [ZERO for _ in weights]
    shares = [money(amount * weight / total) for weight in weights[:-1]]
    return [*shares, amount - sum(shares, ZERO)]


def _text(amount: Decimal) -> str:
    """Shopify's money format: a string with two decimals."""
    return str(money(amount))
