"""WooCommerce's orders, refunds and products (REST API v3) to the common format (connections/common.py).

WooCommerce's REST amounts exclude tax whatever `prices_include_tax` says (that only tells how the shop entered its
prices): a line's `subtotal` is before coupons, its `total` after them, its tax in `total_tax`, all strings padded to
the shop's decimals; `taxes[]` holds the raw amounts per tax rate, unpadded ("0.9") and with more decimals where the
shop's prices include tax. So the shop's figures are kept as they are: a line's net is its `total`, its tax its
`total_tax`, and they add up to the order's `total`. A line's rate is its tax rate's `rate_percent` (tax_lines), or,
from stores too old to say it, the line's tax over its net, to the nearest 0.05 %.

Refunds are orders of their own in WooCommerce, with negative quantities and amounts. A refund never changes once
made: it has one version (REFUND_VERSION), so the same refund found by a webhook and by the schedule is one transfer.
"""

from __future__ import annotations

import html
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from connections.common import ZERO, Address, CreditNote, Customer, Order, OrderLine, Product, money, spread

Raw = dict[str, Any]
REFUND_VERSION = datetime(2000, 1, 1, tzinfo=UTC)
RATE_STEP = Decimal("0.0005")  # rates worked out from amounts snap to 0.05 %
CANCELLED = ("cancelled", "trash")


def parse_gmt(value: str | None) -> datetime | None:
    """WooCommerce's `*_gmt` times have no offset: they are UTC."""
    return datetime.fromisoformat(value).replace(tzinfo=UTC) if value else None


def order_ref(order: Raw) -> tuple[str, str, datetime | None]:
    """(source_ref, reference, updated_at) of an order (a trashed order's webhook has its id only)."""
    return str(order["id"]), f"#{order.get('number') or order['id']}", parse_gmt(order.get("date_modified_gmt"))


def refund_ref(refund: Raw) -> tuple[str, str, datetime | None]:
    return str(refund["id"]), f"Refund {refund['id']}", REFUND_VERSION


def product_ref(product: Raw) -> tuple[str, str, datetime | None]:
    return (
        str(product["id"]),
        html.unescape(product.get("name") or ""),
        parse_gmt(product.get("date_modified_gmt")),
    )


def skip_reason(order: Raw, settings: dict) -> str:
    """Why this order is not transferred under the module's settings, or ""."""
    status = order.get("status") or "pending"
    if status not in settings["statuses"]:
        return f"Order not in allowed states (status: {status.replace('-', ' ')})"
    return ""


def _rates(order: Raw) -> dict[int, Decimal]:
    """Each tax rate's percentage as a fraction, by rate id, as the order's tax lines give it (a compound rate is
    left out: it taxes the tax too, so its line's rate is worked out from the amounts)."""
    rates = {}
    for line in order.get("tax_lines") or []:
        percent = line.get("rate_percent")
        if percent is not None and line.get("rate_id") is not None and not line.get("compound"):
            rates[int(line["rate_id"])] = Decimal(str(percent)) / 100
    return rates


def _rate(item: Raw, rates: dict[int, Decimal]) -> Decimal:
    """The rate of a line's tax: the sum of the rates it lists (a line fully discounted lists them too), or, where
    the order does not state them, its raw tax over its net (before coupons when coupons took it all)."""
    taxes = item.get("taxes") or []
    if not taxes:
        return ZERO
    if all(int(tax["id"]) in rates for tax in taxes):
        return sum((rates[int(tax["id"])] for tax in taxes), ZERO)
    for key in ("total", "subtotal"):
        net = abs(Decimal(str(item.get(key) or 0)))
        raw = abs(sum((Decimal(str(tax.get(key) or 0)) for tax in taxes), ZERO))
        if net:
            return (raw / net / RATE_STEP).quantize(Decimal(1), rounding=ROUND_HALF_UP) * RATE_STEP
    return ZERO


def _line(
    kind: Any, description: str, item: Raw, rates: dict[int, Decimal], sign: int = 1, **extra: Any
) -> OrderLine:
    """A line from WooCommerce's own figures (ex-tax; `sign` -1 turns a refund's negative amounts positive)."""
    quantity = abs(Decimal(str(item.get("quantity") or 1)))
    subtotal = sign * Decimal(str(item.get("subtotal") or item.get("total") or 0))
    rate = _rate(item, rates)
    return OrderLine(
        kind,
        html.unescape(description),
        quantity,
        subtotal / quantity if quantity else ZERO,  # the list price of one, before coupons, exact
        sign * money(item.get("total")),
        sign * money(item.get("total_tax")),
        rate,
        taxable=bool(rate) and item.get("tax_status") != "none",
        **extra,
    )


def _codes(order: Raw) -> list[str]:
    return [str(coupon.get("code")) for coupon in order.get("coupon_lines") or [] if coupon.get("code")]


def _lines(order: Raw, source: Raw, sign: int = 1) -> list[OrderLine]:
    """The products, shipping and fees of `source` (the order, or a refund of it), priced at the order's rates."""
    rates, codes = _rates(order), _codes(order)
    lines = []
    for item in source.get("line_items") or []:
        discounted = money(item.get("subtotal")) != money(item.get("total"))
        lines.append(
            _line(
                "product",
                item.get("name") or "",
                item,
                rates,
                sign,
                sku=item.get("sku") or "",
                discount_codes=codes if discounted else [],
                source_ref=str(_refunded_item(item) or item.get("id", "")),
            )
        )
    for shipping in source.get("shipping_lines") or []:
        if money(shipping.get("total")) or money(shipping.get("total_tax")):
            lines.append(_line("shipping", shipping.get("method_title") or "Shipping", shipping, rates, sign))
    for fee in source.get("fee_lines") or []:
        if money(fee.get("total")) or money(fee.get("total_tax")):
            lines.append(_line("fee", fee.get("name") or "Fee", fee, rates, sign))
    return lines


def _refunded_item(item: Raw) -> str:
    """The order's line a refund's line refunds (its `_refunded_item_id`)."""
    return next(
        (str(m.get("value")) for m in item.get("meta_data") or [] if m.get("key") == "_refunded_item_id"), ""
    )


def _customer(order: Raw) -> Customer:
    billing = order.get("billing") or {}
    name = " ".join(filter(None, [billing.get("first_name"), billing.get("last_name")]))
    return Customer(
        email=(billing.get("email") or "").strip().lower(),
        phone=billing.get("phone") or "",
        name=billing.get("company") or name or "Webshop customer",
        address=Address(
            name=name,
            company=billing.get("company") or "",
            street=", ".join(filter(None, [billing.get("address_1"), billing.get("address_2")])),
            zip=billing.get("postcode") or "",
            city=billing.get("city") or "",
            country=billing.get("country") or "",
            country_code=billing.get("country") or "",
        ),
    )


def search_terms(order: Raw) -> tuple[list[str], str]:
    """Who the order is billed to (and shipped to, when someone else), the company, and the email."""
    customer = _customer(order)
    shipping = order.get("shipping") or {}
    shipped = " ".join(filter(None, [shipping.get("first_name"), shipping.get("last_name")]))
    names = [customer.address.name, shipped if shipped != customer.address.name else "", customer.address.company]
    return names, customer.email


def _country(order: Raw) -> str:
    """Where the goods go (the place of supply that decides the VAT), else where the bill goes."""
    for key in ("shipping", "billing"):
        if code := (order.get(key) or {}).get("country"):
            return str(code).upper()
    return ""


def _date(order: Raw, *keys: str) -> str:
    return next((str(order[key])[:10] for key in keys if order.get(key)), "")


def to_order(order: Raw, settings: dict) -> Order:
    source_ref, reference, updated_at = order_ref(order)
    lines = _lines(order, order)
    refunded = sum((-money(r.get("total")) for r in order.get("refunds") or []), ZERO)
    total = money(order.get("total"))
    return Order(
        source_ref=source_ref,
        reference=reference,
        updated_at=updated_at,
        currency=order.get("currency") or "",
        total=total,
        customer=_customer(order),
        lines=lines,
        financial_status=order.get("status") or "",
        date=_date(order, "date_paid", "date_created"),
        taxes_included=bool(order.get("prices_include_tax")),
        country_code=_country(order),
        cancelled=order.get("status") in CANCELLED,
        deleted=order.get("status") == "trash",
        current_total=total - refunded,
        # WooCommerce's order does not say which lines its refunds took back: what is left is known exactly only
        # without refunds (a cancelled order with refunds is credited by amount: see the accounting client).
        current_lines=lines if not refunded else [],
        refunds=[str(refund.get("id")) for refund in order.get("refunds") or []],
    )


def to_credit_note(refund: Raw, order: Raw, settings: dict) -> CreditNote:
    """A refund of `order`: its lines (negative in WooCommerce, positive here), and what it paid back beside them
    (an amount refunded without items, or more than they come to) as an adjustment without the shop's tax."""
    lines = _lines(order, refund, sign=-1)
    amount = money(refund.get("amount"))
    if beside := amount - sum((line.gross for line in lines), ZERO):
        # Paid back without goods (or beyond them): WooCommerce says no tax, but a price taken off takes its VAT
        # with it, at the order's rates.
        lines += spread("adjustment", refund.get("reason") or "Refund", beside, _lines(order, order))
    source_ref, _, _ = refund_ref(refund)
    order_source_ref, order_reference, _ = order_ref(order)
    numbers = [str(r.get("id")) for r in sorted(order.get("refunds") or [], key=lambda r: r.get("id") or 0)]
    nth = numbers.index(source_ref) + 1 if source_ref in numbers else len(numbers) + 1
    return CreditNote(
        source_ref=source_ref,
        reference=f"{order_reference} refund {nth}",
        order_ref=order_source_ref,
        order_reference=order_reference,
        updated_at=REFUND_VERSION,
        currency=order.get("currency") or "",
        total=sum((line.gross for line in lines), ZERO),
        customer=_customer(order),
        lines=lines,
        date=_date(refund, "date_created", "date_created_gmt"),
        taxes_included=bool(order.get("prices_include_tax")),
        country_code=_country(order),
        note=refund.get("reason") or "",
    )


def to_products(product: Raw, settings: dict) -> list[Product]:
    """One common product per SKU: a simple product's own, or each variation's (the client reads them into
    `variations`; a variable product without them has none of its own). Each is taxed at its tax class's rate
    (`_rate`, read by the client), else at the module's rate at home. Catalogue prices are as the shop enters them:
    with VAT when the module says so."""
    name = html.unescape(product.get("name") or "")
    if product.get("type") == "variable":
        items = [v for v in product.get("variations") or [] if isinstance(v, dict)]
    else:
        items = [product]
    products = []
    for item in items:
        if not item.get("sku"):
            continue
        attributes = ", ".join(str(a.get("option")) for a in item.get("attributes") or [] if item is not product)
        taxed = (item.get("tax_status") or product.get("tax_status") or "taxable") == "taxable"
        rate = Decimal(str(item.get("_rate") or settings["vat_rate"])) / 100 if taxed else ZERO
        price = money(item.get("regular_price") or item.get("price"))
        net = price / (1 + rate) if settings["prices_include_vat"] else price
        products.append(
            Product(
                sku=str(item["sku"]),
                name=f"{name} - {attributes}" if attributes else name,
                price_net=money(net),
                vat_rate=rate,
                source_ref=str(item.get("id", "")),
                updated_at=parse_gmt(item.get("date_modified_gmt") or product.get("date_modified_gmt")),
            )
        )
    return products
