"""Shopify's Order and Product resources to the common format (connections/common.py).

Money in Shopify's REST resources is a string; ids can exceed 2**53, so they are kept as strings.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from connections.common import Address, Customer, Order, OrderLine, Product, money

FOUR = Decimal("0.0001")


def parse_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def order_ref(order: dict) -> tuple[str, str, datetime | None]:
    """(source_ref, reference, updated_at) of a Shopify order."""
    return (
        str(order["id"]),
        order.get("name") or f"#{order.get('order_number', order['id'])}",
        parse_time(order.get("updated_at")),
    )


def product_ref(product: dict) -> tuple[str, str, datetime | None]:
    return str(product["id"]), product.get("title", ""), parse_time(product.get("updated_at"))


def skip_reason(order: dict, settings: dict) -> str:
    """Why this order is not transferred under the module's settings, or ""."""
    financial = order.get("financial_status") or "pending"
    if financial not in settings["financial_states"]:
        return f"Order not in allowed states (financial status: {financial.replace('_', ' ')})"
    fulfillment = order.get("fulfillment_status") or "unfulfilled"
    if settings["fulfillment_states"] and fulfillment not in settings["fulfillment_states"]:
        return f"Order not in allowed states (fulfillment status: {fulfillment})"
    return ""


def _rate(item: dict) -> Decimal:
    if item.get("taxable") is False:
        return Decimal("0")
    # Several tax lines (e.g. state + county) add up to the line's rate.
    return sum((Decimal(str(t.get("rate") or 0)) for t in item.get("tax_lines") or []), Decimal("0"))


def _net_unit(gross_or_net_total: Decimal, quantity: Decimal, rate: Decimal, includes_vat: bool) -> Decimal:
    total = gross_or_net_total / (1 + rate) if includes_vat else gross_or_net_total
    return (total / quantity).quantize(FOUR) if quantity else Decimal("0")


def to_order(order: dict, settings: dict) -> Order:
    includes_vat = order.get("taxes_included")
    if includes_vat is None:
        includes_vat = settings["prices_include_vat"]
    lines: list[OrderLine] = []
    allocated = Decimal("0")
    for item in order.get("line_items") or []:
        quantity = Decimal(str(item.get("quantity") or 0))
        discount = sum((money(a.get("amount")) for a in item.get("discount_allocations") or []), Decimal("0"))
        if not item.get("discount_allocations"):
            discount = money(item.get("total_discount"))
        allocated += discount
        rate = _rate(item)
        total = money(item.get("price")) * quantity - discount
        lines.append(
            OrderLine(
                kind="product",
                description=item.get("name") or item.get("title") or "",
                quantity=quantity,
                unit_price_net=_net_unit(total, quantity, rate, includes_vat),
                vat_rate=rate,
                sku=item.get("sku") or "",
            )
        )
    for shipping in order.get("shipping_lines") or []:
        price = money(shipping.get("discounted_price") or shipping.get("price"))
        if price:
            rate = _rate(shipping)
            lines.append(
                OrderLine(
                    kind="shipping",
                    description=shipping.get("title") or "Shipping",
                    quantity=Decimal(1),
                    unit_price_net=_net_unit(price, Decimal(1), rate, includes_vat),
                    vat_rate=rate,
                )
            )
    # Discounts Shopify did not allocate to lines (older orders) become one discount line.
    unallocated = money(order.get("total_discounts")) - allocated
    if unallocated > 0:
        rate = max((line.vat_rate for line in lines), default=Decimal("0"))
        lines.append(
            OrderLine(
                kind="discount",
                description="Discount",
                quantity=Decimal(1),
                unit_price_net=_net_unit(-unallocated, Decimal(1), rate, includes_vat),
                vat_rate=rate,
            )
        )

    customer = order.get("customer") or {}
    billing = order.get("billing_address") or order.get("shipping_address") or {}
    name = " ".join(filter(None, [billing.get("first_name"), billing.get("last_name")])) or " ".join(
        filter(None, [customer.get("first_name"), customer.get("last_name")])
    )
    source_ref, reference, updated_at = order_ref(order)
    return Order(
        source_ref=source_ref,
        reference=reference,
        updated_at=updated_at,
        currency=order.get("currency") or "",
        total=money(order.get("total_price")),
        financial_status=order.get("financial_status") or "",
        fulfillment_status=order.get("fulfillment_status") or "",
        date=(order.get("processed_at") or order.get("created_at") or "")[:10],
        customer=Customer(
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
        ),
        lines=lines,
    )


def to_products(product: dict[str, Any], settings: dict) -> list[Product]:
    """One common product per variant with a SKU (the SKU is the product number on the other side)."""
    products = []
    for variant in product.get("variants") or []:
        if not variant.get("sku"):
            continue
        title = product.get("title") or ""
        if variant.get("title") and variant["title"] != "Default Title":
            title = f"{title} - {variant['title']}"
        # Shopify keeps no VAT rate on products, only whether they are taxable.
        rate = Decimal("0.25") if variant.get("taxable", True) else Decimal("0")
        price = money(variant.get("price"))
        products.append(
            Product(
                sku=variant["sku"],
                name=title,
                price_net=_net_unit(price, Decimal(1), rate, settings["prices_include_vat"]),
                vat_rate=rate,
                source_ref=str(variant.get("id", "")),
                updated_at=parse_time(variant.get("updated_at") or product.get("updated_at")),
            )
        )
    return products
