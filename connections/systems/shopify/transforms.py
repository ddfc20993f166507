"""Shopify's Order, Refund and Product resources to the common format (connections/common.py).

Money in Shopify's REST resources is a string (refund lines: a number); ids can exceed 2**53, so they are kept as
strings. The shop's own figures are kept to the cent: a line's discounts are its `discount_allocations`, its tax the
sum of its `tax_lines` (never recomputed from the rate: Shopify rounds its own way), and with `taxes_included` the
price holds the tax, so what the line comes to excluding tax is its price less discounts less that tax.

An invoice is the order as it was sold (`quantity`, `total_price`); what is refunded later becomes a credit note
(`to_credit_note`), so the invoice minus its credit notes comes to the shop's `current_total_price`.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from connections.common import ZERO, Address, CreditNote, Customer, Order, OrderLine, Product, money

Raw = dict[str, Any]


def parse_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def order_ref(order: Raw) -> tuple[str, str, datetime | None]:
    """(source_ref, reference, updated_at) of a Shopify order."""
    return (
        str(order["id"]),
        order.get("name") or f"#{order.get('order_number', order['id'])}",
        parse_time(order.get("updated_at")),
    )


def product_ref(product: Raw) -> tuple[str, str, datetime | None]:
    return str(product["id"]), product.get("title", ""), parse_time(product.get("updated_at"))


def refund_ref(refund: Raw) -> tuple[str, str, datetime | None]:
    """A refund never changes once made: its creation is its only version."""
    return str(refund["id"]), f"Refund {refund['id']}", parse_time(refund.get("created_at"))


def skip_reason(order: Raw, settings: dict) -> str:
    """Why this order is not transferred under the module's settings, or ""."""
    financial = order.get("financial_status") or "pending"
    if financial not in settings["financial_states"]:
        return f"Order not in allowed states (financial status: {financial.replace('_', ' ')})"
    fulfillment = order.get("fulfillment_status") or "unfulfilled"
    if settings["fulfillment_states"] and fulfillment not in settings["fulfillment_states"]:
        return f"Order not in allowed states (fulfillment status: {fulfillment})"
    return ""


def _rate(item: Raw) -> Decimal:
    if item.get("taxable") is False:
        return ZERO
    # Several tax lines (e.g. state and county) add up to the line's rate.
    return sum((Decimal(str(t.get("rate") or 0)) for t in item.get("tax_lines") or []), ZERO)


def _tax(item: Raw) -> Decimal:
    return sum((money(t.get("price")) for t in item.get("tax_lines") or []), ZERO)


def _includes_tax(order: Raw, settings: dict) -> bool:
    includes = order.get("taxes_included")
    return settings["prices_include_vat"] if includes is None else bool(includes)


def _codes(order: Raw, item: Raw) -> list[str]:
    """The names of the discounts allocated to a line: the code, or the title of an automatic or manual one."""
    applications = order.get("discount_applications") or []
    names = []
    for allocation in item.get("discount_allocations") or []:
        index = allocation.get("discount_application_index")
        if isinstance(index, int) and 0 <= index < len(applications):
            application = applications[index]
            name = application.get("code") or application.get("title") or application.get("description") or ""
            if name and name not in names:
                names.append(name)
    return names


def _line(
    kind: Any, description: str, quantity: Decimal, price: Decimal, after_discounts: Decimal, tax: Decimal,
    rate: Decimal, includes_tax: bool, **extra: Any,
) -> OrderLine:  # fmt: skip
    """A line from the shop's figures: `price` is one item's list price and `after_discounts` what the line comes to
    after its discounts, both as the shop shows them (with or without its tax)."""
    net = after_discounts - tax if includes_tax else after_discounts
    unit = price / (1 + rate) if includes_tax and rate else price
    return OrderLine(kind, description, quantity, unit, net, tax, rate, **extra)


def _product_line(order: Raw, item: Raw, includes_tax: bool, quantity: Decimal | None = None) -> OrderLine:
    ordered = Decimal(str(item.get("quantity") or 0))
    quantity = ordered if quantity is None else quantity
    share = quantity / ordered if ordered else ZERO  # of the line's discount and tax (a part refunded, say)
    discount = _line_discount(item)
    price = money(item.get("price"))
    return _line(
        "product",
        item.get("name") or item.get("title") or "",
        quantity,
        price,
        money((price * ordered - discount) * share),
        money(_tax(item) * share),
        _rate(item),
        includes_tax,
        sku=item.get("sku") or "",
        discount_codes=_codes(order, item),
        source_ref=str(item.get("id", "")),
        taxable=item.get("taxable") is not False,
    )


def _line_discount(item: Raw) -> Decimal:
    """The line's discounts as the shop shows them: its allocations (older orders: its total_discount)."""
    if allocations := item.get("discount_allocations"):
        return sum((money(a.get("amount")) for a in allocations), ZERO)
    return money(item.get("total_discount"))


def _shipping_paid(shipping: Raw) -> Decimal:
    """What the customer paid for the shipping line, after its discounts, as the shop shows it."""
    paid = shipping.get("discounted_price")
    return money(shipping.get("price") if paid is None else paid)


def _shipping_line(shipping: Raw, includes_tax: bool, share: Decimal = Decimal(1)) -> OrderLine:
    return _line(
        "shipping",
        shipping.get("title") or "Shipping",
        Decimal(1),
        money(shipping.get("price")),
        money(_shipping_paid(shipping) * share),
        money(_tax(shipping) * share),
        _rate(shipping),
        includes_tax,
        source_ref=str(shipping.get("id", "")),
    )


def _customer(order: Raw) -> Customer:
    customer = order.get("customer") or {}
    billing = order.get("billing_address") or order.get("shipping_address") or {}
    name = " ".join(filter(None, [billing.get("first_name"), billing.get("last_name")])) or " ".join(
        filter(None, [customer.get("first_name"), customer.get("last_name")])
    )
    return Customer(
        email=(order.get("email") or customer.get("email") or "").strip().lower(),
        phone=order.get("phone") or customer.get("phone") or billing.get("phone") or "",
        name=billing.get("company") or name or "Webshop customer",
        address=Address(
            name=name,
            company=billing.get("company") or "",
            street=", ".join(filter(None, [billing.get("address1"), billing.get("address2")])),
            zip=billing.get("zip") or "",
            city=billing.get("city") or "",
            country=billing.get("country") or "",
            country_code=billing.get("country_code") or "",
        ),
    )


def search_terms(order: Raw) -> tuple[list[str], str]:
    """The customer as the order names it (who it is billed to, and the shop's customer account when that differs),
    the company, and the email."""
    customer = _customer(order)
    account = order.get("customer") or {}
    named = " ".join(filter(None, [account.get("first_name"), account.get("last_name")]))
    names = [customer.address.name, named if named != customer.address.name else "", customer.address.company]
    return names, customer.email


def _country(order: Raw) -> str:
    """Where the goods go (the place of supply that decides the VAT), else where the bill goes."""
    for key in ("shipping_address", "billing_address"):
        if code := (order.get(key) or {}).get("country_code"):
            return str(code).upper()
    return ""


def _shop_money(order: Raw, key: str) -> Decimal:
    """An amount Shopify gives only as a MoneyBag (`original_total_duties_set`), in the shop's currency."""
    return money(((order.get(key) or {}).get("shop_money") or {}).get("amount"))


def fee(kind: Any, label: str, amount: Decimal) -> OrderLine:
    """A line of an amount without the shop's tax."""
    return OrderLine(kind, label, Decimal(1), amount, amount, ZERO, ZERO, taxable=False)


def _charges(order: Raw, current: bool = False) -> list[OrderLine]:
    """What the customer paid beside goods and shipping, each on a line of its own without the shop's tax: a tip,
    duties, additional fees (all part of `total_price`), and a discount Shopify put on no line."""
    when = "current" if current else "original"
    charges = [
        ("Tip", money(order.get("total_tip_received"))),
        ("Duties", _shop_money(order, f"{when}_total_duties_set")),
        ("Additional fees", _shop_money(order, f"{when}_total_additional_fees_set")),
    ]
    lines = [fee("fee", label, amount) for label, amount in charges if amount]
    # A discount the shop allocated to no line nor shipping (older orders): the lines' tax is already the shop's
    # after it, so it takes no tax off again.
    items, shipping = order.get("line_items") or [], order.get("shipping_lines") or []
    allocated = sum((_line_discount(item) for item in items), ZERO) + sum(
        (money(s.get("price")) - _shipping_paid(s) for s in shipping), ZERO
    )
    if not current and (unallocated := money(order.get("total_discounts")) - allocated) > 0:
        lines.append(fee("discount", "Discount", -unallocated))
    return lines


def to_order(order: Raw, settings: dict) -> Order:
    includes_tax = _includes_tax(order, settings)
    lines = [_product_line(order, item, includes_tax) for item in order.get("line_items") or []]
    lines += [
        _shipping_line(shipping, includes_tax)
        for shipping in order.get("shipping_lines") or []
        if money(shipping.get("price")) and not shipping.get("is_removed")
    ]
    lines += _charges(order)
    source_ref, reference, updated_at = order_ref(order)
    current = order.get("current_total_price")
    return Order(
        source_ref=source_ref,
        reference=reference,
        updated_at=updated_at,
        currency=order.get("currency") or "",
        total=money(order.get("total_price")),
        financial_status=order.get("financial_status") or "",
        fulfillment_status=order.get("fulfillment_status") or "",
        date=(order.get("processed_at") or order.get("created_at") or "")[:10],
        customer=_customer(order),
        lines=lines,
        taxes_included=includes_tax,
        country_code=_country(order),
        cancelled=bool(order.get("cancelled_at")),
        current_total=money(current) if current is not None else None,
        current_lines=_current_lines(order, includes_tax),
        refunds=[str(refund.get("id")) for refund in order.get("refunds") or []],
    )


def _current_lines(order: Raw, includes_tax: bool) -> list[OrderLine]:
    """What is left of the order: each line's current quantity, and the shipping not refunded."""
    lines = []
    for item in order.get("line_items") or []:
        quantity = Decimal(str(item.get("current_quantity", item.get("quantity")) or 0))
        if quantity > 0:
            lines.append(_product_line(order, item, includes_tax, quantity))
    refunded_shipping = sum(
        (
            -money(adjustment.get("amount")) - money(adjustment.get("tax_amount"))
            for refund in order.get("refunds") or []
            for adjustment in refund.get("order_adjustments") or []
            if adjustment.get("kind") == "shipping_refund"
        ),
        ZERO,
    )
    for shipping in order.get("shipping_lines") or []:
        line = _shipping_line(shipping, includes_tax)
        if not line.gross or shipping.get("is_removed"):
            continue
        left = max(line.gross - refunded_shipping, ZERO)
        refunded_shipping = max(refunded_shipping - line.gross, ZERO)
        if left:
            lines.append(_shipping_line(shipping, includes_tax, left / line.gross))
    return lines + _charges(order, current=True)


def to_credit_note(refund: Raw, order: Raw, settings: dict) -> CreditNote:
    """A refund of `order` as what to credit: the refunded quantities of its lines (Shopify's own subtotal and tax
    for them), refunded shipping, and any difference Shopify recorded as a refund discrepancy. Its total is what
    those come to, which is what the order's current total went down by."""
    includes_tax = _includes_tax(order, settings)
    lines = _refunded_items(refund, order, includes_tax) + _adjustments(refund, order)
    source_ref, _, created = refund_ref(refund)
    order_source_ref, order_reference, _ = order_ref(order)
    numbers = [str(r.get("id")) for r in order.get("refunds") or []]
    nth = numbers.index(source_ref) + 1 if source_ref in numbers else len(numbers) + 1
    return CreditNote(
        source_ref=source_ref,
        reference=f"{order_reference} refund {nth}",
        order_ref=order_source_ref,
        order_reference=order_reference,
        updated_at=created,
        currency=order.get("currency") or "",
        total=sum((line.gross for line in lines), ZERO),
        customer=_customer(order),
        lines=lines,
        date=(refund.get("processed_at") or refund.get("created_at") or "")[:10],
        taxes_included=includes_tax,
        country_code=_country(order),
        note=refund.get("note") or "",
    )


def _refunded_items(refund: Raw, order: Raw, includes_tax: bool) -> list[OrderLine]:
    items = {str(item.get("id")): item for item in order.get("line_items") or []}
    lines = []
    for refunded in refund.get("refund_line_items") or []:
        item = items.get(str(refunded.get("line_item_id"))) or refunded.get("line_item") or {}
        quantity = Decimal(str(refunded.get("quantity") or 0))
        if not quantity:
            continue
        line = _product_line(order, item, includes_tax, quantity)
        # Shopify's own figures for what it refunded (its subtotal holds the tax when prices do).
        tax = money(refunded.get("total_tax"))
        subtotal = money(refunded.get("subtotal"))
        line.net, line.tax = (subtotal - tax if includes_tax else subtotal), tax
        lines.append(line)
    return lines


def _adjustments(refund: Raw, order: Raw) -> list[OrderLine]:
    """Refunded shipping and refund discrepancies (what was paid back beside the items), each with its tax at the
    order's rate it was charged at."""
    lines = []
    for adjustment in refund.get("order_adjustments") or []:
        # Shopify's amounts here are negative (what the order went down by), and exclude the tax.
        amount, tax = -money(adjustment.get("amount")), -money(adjustment.get("tax_amount"))
        if not amount and not tax:
            continue
        rate = _charged_rate(order, amount, tax)
        if adjustment.get("kind") == "shipping_refund":
            lines.append(OrderLine("shipping", "Shipping refunded", Decimal(1), amount, amount, tax, rate))
        else:
            label = adjustment.get("reason") or "Refund adjustment"
            lines.append(OrderLine("adjustment", label, Decimal(1), amount, amount, tax, rate, taxable=bool(tax)))
    return lines


def _charged_rate(order: Raw, amount: Decimal, tax: Decimal) -> Decimal:
    """The rate of an amount refunded with its tax: of the rates the order was taxed at, the nearest to the two's
    ratio (which a cent of rounding moves off it: 1.00 on 3.99 is 25.06 %)."""
    if not amount or not tax:
        return ZERO
    items = [*(order.get("line_items") or []), *(order.get("shipping_lines") or [])]
    rates = {_rate(item) for item in items} - {ZERO}
    return min(
        rates, key=lambda rate: abs(rate - tax / amount), default=(tax / amount).quantize(Decimal("0.0001"))
    )


def to_products(product: Raw, settings: dict) -> list[Product]:
    """One common product per variant with a SKU (the SKU is the product number on the other side)."""
    products = []
    for variant in product.get("variants") or []:
        if not variant.get("sku"):
            continue
        title = product.get("title") or ""
        if variant.get("title") and variant["title"] != "Default Title":
            title = f"{title} - {variant['title']}"
        # Shopify keeps no VAT rate on products, only whether they are taxable: the shop's rate at home.
        rate = Decimal(str(settings["vat_rate"])) / 100 if variant.get("taxable", True) else ZERO
        price = money(variant.get("price"))
        net = price / (1 + rate) if settings["prices_include_vat"] else price
        products.append(
            Product(
                sku=variant["sku"],
                name=title,
                price_net=money(net),
                vat_rate=rate,
                source_ref=str(variant.get("id", "")),
                updated_at=parse_time(variant.get("updated_at") or product.get("updated_at")),
            )
        )
    return products
