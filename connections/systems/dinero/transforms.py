"""The common format to Dinero's documents, as an accountant books them.

Dinero works a line's VAT out from its account (the account's VAT code) and takes prices of two decimals excluding
VAT, with a discount in percent. So each line goes on the sales account that books the rate the shop charged: the
module's account with VAT when it books that rate, else another sales account of the organisation that does (one the
merchant set up for it); lines without VAT on the account for where the goods go (at home, EU businesses, outside the
EU). A line whose rate no account books is not sent: the transfer is held, saying which rate and where to set it up.
Bodies are PascalCase; Dinero ignores properties it does not know, so a misspelt one is a field left out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

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

UNITS = (
    "parts", "hours", "km", "day", "week", "month", "kilogram", "cubicMetre", "set", "litre", "box", "case",
    "carton", "metre", "package", "shipment", "squareMetre", "session", "tonne",
)  # fmt: skip
REFERENCE_MAX = 128  # ExternalReference
# The VAT codes of a Danish organisation, for when its VAT types cannot be read: sales (U...) and none.
KNOWN_RATES = {"U25": Decimal("0.25"), "none": ZERO, "UEUV": ZERO, "UEUY": ZERO, "UVY": ZERO}
ZERO_ACCOUNT = {"domestic": "account_no_vat", "eu": "account_eu", "abroad": "account_abroad"}


@dataclass
class Chart:
    """The organisation's entry accounts (number -> (name, VAT code)) and the rate of each VAT code."""

    accounts: dict[int, tuple[str, str]]
    rates: dict[str, Decimal]

    def rate(self, account: int) -> Decimal | None:
        """The VAT the account books; None when it is no sales account IEX can read the rate of."""
        if account not in self.accounts:
            return None
        return self.rates.get(self.accounts[account][1])

    def sales_accounts(self) -> list[int]:
        """Accounts a sale may go on: output VAT (U...) or none."""
        return sorted(n for n, (_, code) in self.accounts.items() if code.startswith("U") or code == "none")

    def label(self, account: int) -> str:
        name, _ = self.accounts.get(account, (str(account), ""))
        rate = self.rate(account)
        return f"{account} {name} ({percent(rate) if rate is not None else 'VAT unknown'})"

    def to_data(self) -> dict[str, Any]:
        return {
            "accounts": {str(n): list(v) for n, v in self.accounts.items()},
            "rates": {k: str(v) for k, v in self.rates.items()},
        }

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> Chart:
        return cls(
            {int(n): (str(v[0]), str(v[1])) for n, v in data["accounts"].items()},
            {k: Decimal(v) for k, v in data["rates"].items()},
        )


@dataclass
class Line:
    """One product line of a Dinero document: a unit price excluding VAT and a discount, both of two decimals."""

    description: str
    quantity: Decimal
    unit_price: Decimal
    account: int
    discount: Decimal = ZERO
    comments: str = ""

    def payload(self, unit: str) -> dict[str, Any]:
        line: dict[str, Any] = {
            "Description": self.description[:250] or "Item",
            "Quantity": float(self.quantity),
            "Unit": unit,
            "AccountNumber": self.account,
            "BaseAmountValue": float(self.unit_price),  # two decimals: exact as a float, and as JSON
            "Discount": float(self.discount),
            "LineType": "Product",
        }
        if self.comments:
            line["Comments"] = self.comments[:250]
        return line


@dataclass
class Plan:
    """A document planned from an order or a credit note: its lines, or why it cannot be sent."""

    lines: list[Line] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # why the transfer is held (rates no account books)
    vat: Decimal = ZERO  # the shop's tax on the document, which Dinero books as VAT


def account_for(line: OrderLine, where: Region, chart: Chart, settings: dict) -> tuple[int, str]:
    """(the account the line goes on, "") or (0, why no account books the line's tax)."""
    if line.vat_rate:
        preferred = int(settings["account_vat"])
        if chart.rate(preferred) == line.vat_rate:
            return preferred, ""
        others = [n for n in chart.sales_accounts() if chart.rate(n) == line.vat_rate]
        if others:
            return others[0], ""
        return 0, (
            f"no sales account in Dinero books {percent(line.vat_rate)}; set one up (with a VAT code of that rate) "
            f"and save the settings, or change the shop's tax"
        )
    account = int(settings[ZERO_ACCOUNT[where]])
    booked = chart.rate(account)
    if booked == ZERO:
        return account, ""
    if booked is None:
        return 0, f"account {account} is no sales account in Dinero; choose another for sales without VAT"
    return 0, f"account {chart.label(account)} books VAT; choose one without VAT for these sales"


def plan(lines: list[OrderLine], country_code: str, chart: Chart, settings: dict) -> Plan:
    """The document's lines (positive quantities: a credit note credits them), each on the account that books the
    shop's tax; the cent a line's VAT would be off goes onto a rounding line without VAT."""
    where = region(country_code, settings)
    result = Plan()
    held: dict[tuple[Decimal, str], list[str]] = {}
    rounding = ZERO
    rounding_account = int(settings["account_no_vat"])
    can_round = chart.rate(rounding_account) == ZERO
    for line in lines:
        account, problem = account_for(line, where, chart, settings)
        if problem:
            what = line.sku or line.description if line.kind == "product" else f"{line.kind} ({line.description})"
            held.setdefault((line.vat_rate, problem), []).append(what)
            continue
        vat = chart.rate(account) if can_round else None
        unit, discount, moved = priced(line, vat)
        rounding += moved
        text = line.description + (f" ({', '.join(line.discount_codes)})" if line.discount_codes else "")
        comments = f"SKU {line.sku}" if line.sku else ""
        result.lines.append(Line(text, line.quantity, unit, account, discount, comments))
        result.vat += line.tax
    if rounding:
        result.lines.append(rounding_line(rounding, settings))
    result.problems = held_sentences(held, country_code)
    return result


def rounding_line(amount: Decimal, settings: dict) -> Line:
    return Line("Rounding", Decimal(1), money(amount), int(settings["account_no_vat"]))


def contact_filter(customer: Customer, match: str) -> str:
    """Dinero's queryFilter for the contact, per the module's setting ("" when the order has no such value)."""
    field_name, value = ("VatNumber", customer.vat_number) if match == "vat_number" else ("Email", customer.email)
    value = value.strip()
    return f"{field_name} eq '{value.replace(chr(39), chr(39) * 2)}'" if value else ""


def contact_payload(customer: Customer, settings: dict) -> dict[str, Any]:
    address = customer.address
    payload: dict[str, Any] = {
        "Name": (address.company or customer.name)[:250] or "Webshop customer",
        "CountryKey": address.country_code or settings["home_country"],
        "IsPerson": not (address.company or customer.vat_number),
        "Email": customer.email[:250],
        "Street": address.street[:250],
        "ZipCode": address.zip[:20],
        "City": address.city[:250],
        "Phone": customer.phone[:50],
        "VatNumber": customer.vat_number[:50],
    }
    return {k: v for k, v in payload.items() if v not in ("", None)}


def product_payload(product: Product, chart: Chart, settings: dict) -> dict[str, Any] | str:
    """The product on the sales account that books its VAT at home; why not, when none does."""
    line = OrderLine(
        "product", product.name, Decimal(1), product.price_net, product.price_net, ZERO, product.vat_rate
    )
    account, problem = account_for(line, "domestic", chart, settings)
    if problem:
        return problem
    return {
        "ProductNumber": product.sku,
        "Name": product.name[:250] or product.sku,
        "BaseAmountValue": float(money(product.price_net)),
        "Quantity": 1.0,
        "AccountNumber": account,
        "Unit": settings["unit"],
    }


def key(source_ref: str, kind: str = "") -> str:
    """The end of a document's ExternalReference that is IEX's own: the shop's id of the record it was made for
    (order numbers need not be unique: two shops may send "#1001" to one organisation)."""
    return f"iex:{kind + ':' if kind else ''}{source_ref}"


def made_for(external_reference: str, key: str) -> bool:
    return external_reference == key or external_reference.endswith(f" {key}")


def _reference(shown: str, key: str) -> str:
    """ "#1001 iex:450789469": the shop's reference first, as people search for it, then IEX's key, kept whole."""
    return f"{shown[: REFERENCE_MAX - len(key) - 1]} {key}" if shown else key


def document_payload(
    *, reference: str, description: str, date: str, currency: str, contact: str, planned: Plan, settings: dict
) -> dict[str, Any]:
    """An invoice or a credit note, in the shop's currency (Dinero takes the day's rate to DKK)."""
    condition = settings["payment_condition"]
    payload: dict[str, Any] = {
        "ContactGuid": contact,
        "ExternalReference": reference[:REFERENCE_MAX],
        "Currency": currency or "DKK",
        "Language": settings["language"],
        "Date": date,
        "PaymentConditionType": condition,
        "ShowLinesInclVat": False,
        "Description": description[:250],
        "ProductLines": [line.payload(settings["unit"]) for line in planned.lines],
    }
    if condition in ("Netto", "CurrentMonthOut"):
        payload["PaymentConditionNumberOfDays"] = int(settings["payment_days"])
    return payload


def order_document(order: Order, contact: str, planned: Plan, settings: dict) -> dict[str, Any]:
    return document_payload(
        reference=_reference(order.reference, key(order.source_ref)),
        description=f"Order {order.reference}",
        date=order.date,
        currency=order.currency,
        contact=contact,
        planned=planned,
        settings=settings,
    )


def credit_note_document(
    credit: CreditNote, invoice: str, contact: str, planned: Plan, settings: dict
) -> dict[str, Any]:
    payload = document_payload(
        reference=_reference(credit.reference, key(credit.source_ref, "refund")),
        description=f"Credit note for order {credit.order_reference}"
        + (f": {credit.note}" if credit.note else ""),
        date=credit.date,
        currency=credit.currency,
        contact=contact,
        planned=planned,
        settings=settings,
    )
    payload["CreditNoteFor"] = invoice
    return payload
