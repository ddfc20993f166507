"""The common format to e-conomic's documents. e-conomic rejects null (leave a field out instead) and replaces
the whole document on PUT, so every payload here is complete and null-free."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from connections.common import Customer, Order, OrderLine, Product, money

EU = set(
    [
        "AT",
        "BE",
        "BG",
        "CY",
        "CZ",
        "DE",
        "DK",
        "EE",
        "ES",
        "FI",
        "FR",
        "GR",
        "HR",
        "HU",
        "IE",
        "IT",
        "LT",
        "LU",
        "LV",
        "MT",
        "NL",
        "PL",
        "PT",
        "RO",
        "SE",
        "SI",
        "SK",
    ]
)
DOMESTIC, EU_ZONE, ABROAD = 1, 2, 3


def escape_filter(value: str) -> str:
    """e-conomic filter values escape $ ( ) * , with a leading $ (requests URL-encodes the rest)."""
    for char in "$()*,":
        value = value.replace(char, "$" + char)
    return value


def document_ref(order: Order) -> str:
    """Written to references.other: finds the document again if our own record of it was lost."""
    return f"iex:{order.source_ref}"


def vat_zone(country_code: str, settings: dict) -> int:
    if not country_code or country_code == settings["home_country"]:
        return DOMESTIC
    return EU_ZONE if country_code in EU else ABROAD


def customer_key(customer: Customer, field: str) -> tuple[str, str]:
    """(e-conomic filter field, value) that identifies the customer, per the module's setting."""
    api_field = {
        "email": "email",
        "phone": "telephoneAndFaxNumber",
        "vat_number": "corporateIdentificationNumber",
    }
    return api_field[field], getattr(customer, field)


def customer_payload(customer: Customer, currency: str, settings: dict) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "name": customer.name[:255] or "Webshop customer",
        "currency": currency or settings["base_currency"],
        "customerGroup": {"customerGroupNumber": int(settings["customer_group"])},
        "paymentTerms": {"paymentTermsNumber": int(settings["payment_terms"])},
        "vatZone": {"vatZoneNumber": vat_zone(customer.address.country_code, settings)},
    }
    optional = {
        "email": customer.email,
        "telephoneAndFaxNumber": customer.phone,
        "corporateIdentificationNumber": customer.vat_number,
        "address": customer.address.street,
        "zip": customer.address.zip,
        "city": customer.address.city,
        "country": customer.address.country,
    }
    payload.update({k: v for k, v in optional.items() if v})
    return payload


def product_number(line: OrderLine, settings: dict) -> str:
    if line.kind == "product":
        return line.sku or settings["default_product"]
    return settings[
        {
            "shipping": "shipping_product",
            "fee": "fee_product",
            "discount": "discount_product",
            "rounding": "rounding_product",
        }[line.kind]
    ]


def product_payload(number: str, name: str, price: Decimal, vat_rate: Decimal, settings: dict) -> dict[str, Any]:
    group = settings["product_group"] if vat_rate else settings["product_group_no_vat"]
    return {
        "productNumber": number,
        "name": name[:300] or number,
        "productGroup": {"productGroupNumber": int(group)},
        "salesPrice": float(money(price)),
    }


def product_from_common(product: Product, settings: dict) -> dict[str, Any]:
    """A shop product as an e-conomic product (e-conomic keeps sales prices excluding VAT)."""
    return product_payload(product.sku, product.name, product.price_net, product.vat_rate, settings)


def document_payload(
    order: Order, customer_number: int, settings: dict, extra_lines: list[OrderLine] | None = None
) -> dict[str, Any]:
    zone = vat_zone(order.customer.address.country_code, settings)
    recipient: dict[str, Any] = {
        "name": order.customer.name[:250] or "Webshop customer",
        "vatZone": {"vatZoneNumber": zone},
    }
    address = order.customer.address
    recipient.update(
        {
            k: v
            for k, v in {
                "address": address.street,
                "zip": address.zip,
                "city": address.city,
                "country": address.country,
            }.items()
            if v
        }
    )
    lines = [*order.lines, *(extra_lines or [])]
    return {
        "date": order.date,
        "currency": order.currency or settings["base_currency"],
        "customer": {"customerNumber": customer_number},
        "recipient": recipient,
        "paymentTerms": {"paymentTermsNumber": int(settings["payment_terms"])},
        "layout": {"layoutNumber": int(settings["layout"])},
        "references": {"other": document_ref(order)},
        "notes": {"heading": f"Order {order.reference}"},
        "lines": [
            {
                "lineNumber": number,
                "product": {"productNumber": product_number(line, settings)},
                "description": line.description[:2500] or product_number(line, settings),
                "quantity": float(line.quantity),
                "unitNetPrice": float(line.unit_price_net),
            }
            for number, line in enumerate(lines, start=1)
        ],
    }


def total_difference(order: Order, document: dict) -> Decimal:
    """e-conomic's gross total minus the shop's total, in the order's currency."""
    return money(document.get("grossAmount")) - order.total
