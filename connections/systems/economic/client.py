"""e-conomic REST API (restapi.e-conomic.com), and what the flows ask of an accounting system: `send_order`,
`send_credit_note`, `send_product` and `stock_levels`.

Following e-conomic's documentation: every request says Content-Type: application/json; ids in URLs use its self-link
encoding (transforms.url_id); filter values are escaped; lists are read by following `pagination.nextPage`; nothing
is sent with a null or a unit price of more than two decimals; a draft booked by the accountant is found by its
reference, and a booked invoice is corrected by a credit note (a document with negative quantities), never changed.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable, Iterator
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import requests
from django.conf import settings as django_settings
from django.core.cache import cache

from connections.common import (
    ZERO,
    CreditNote,
    Customer,
    Document,
    DocumentLine,
    Order,
    OrderLine,
    Outcome,
    Product,
    StockLevel,
    money,
    note_document,
    two_decimal_net,
)
from connections.systems import Claim, Record
from connections.systems.economic import transforms
from connections.systems.economic.transforms import Chart, Line, Plan
from iex.lib import http

if TYPE_CHECKING:
    from connections.models import Mapping, Module

BASE_URL = "https://restapi.e-conomic.com"
DOCUMENTS = {"draft": "invoices/drafts", "booked": "invoices/drafts", "order": "orders/drafts"}
NUMBER_FIELD = {"invoices/drafts": "draftInvoiceNumber", "orders/drafts": "orderNumber"}
STATE = {"invoices/drafts": "draft", "orders/drafts": "order"}  # the mapping's target_state of a document there
# The agreement's VAT chart is read once an hour per module (it changes when the accountant sets up a product group,
# and saving the module's settings reads it again): no order waits for it.
CHART_SECONDS = 3600
CHART_IN_PROCESS_SECONDS = 60
_CHARTS: dict[str, tuple[float, Chart]] = {}  # chart key -> (when read, the chart), in this process
SETTINGS_LINK = "Systems > e-conomic > Settings, VAT"
# e-conomic's web app, where the merchant opens what IEX made. Its pages name a document by an id of their own, which
# the API does not give (not the draft's or the invoice's number): the link opens the list the document is in, and
# the Log says its number. (The sandbox serves no such pages, so the real address is given in development too.)
WEB_APP = "https://secure.e-conomic.com"
WEB_LISTS = {"draft": "sales/invoicing/invoices", "booked": "sales/invoicing/archive", "order": "sales/orders"}


def document_url(state: str) -> str:
    """Where the merchant finds a document IEX made in e-conomic's web app: the list of its kind (`state`: the
    mapping's "draft", "booked" or "order")."""
    return f"{WEB_APP}/{WEB_LISTS.get(state, WEB_LISTS['draft'])}"


def document_title(path: str, sign: int, number: object = "") -> str:
    """What the merchant calls a document e-conomic keeps at `path` (a credit note is a draft invoice with negative
    quantities, `sign` -1)."""
    kind = {"invoices/drafts": "Invoice draft", "invoices/booked": "Booked invoice", "orders/drafts": "Order"}[
        path
    ]
    if sign < 0:
        kind = kind.replace("invoice", "credit note").replace("Invoice", "Credit note")
    return f"{kind} {number}".strip()


def read_document(document: dict[str, Any], path: str, rates: dict[str, Decimal]) -> Document:
    """e-conomic's answer (a draft, booked invoice or order) in the Log's words. A draft's lines carry no VAT
    (e-conomic works it out for the document), so each line's is its product's rate in the document's VAT zone
    (`rates`, by product number); a booked invoice's lines say theirs."""
    sign = -1 if money(document.get("grossAmount")) < 0 else 1
    lines = []
    for line in document.get("lines", []):
        product = str((line.get("product") or {}).get("productNumber", ""))
        quantity, unit = Decimal(str(line.get("quantity", 0))), money(line.get("unitNetPrice"))
        discount = Decimal(str(line.get("discountPercentage", 0)))
        net = (
            money(line["totalNetAmount"])
            if "totalNetAmount" in line
            else two_decimal_net(quantity, unit, discount)
        )
        rate = Decimal(str(line["vatRate"])) / 100 if "vatRate" in line else rates.get(product)
        vat = money(line["vatAmount"]) if "vatAmount" in line else None if rate is None else money(net * rate)
        vat = None if vat is None else sign * vat
        lines.append(
            DocumentLine(line.get("description", product), sign * quantity, unit, discount, sign * net, rate, vat)
        )
    number = document.get(NUMBER_FIELD.get(path, "bookedInvoiceNumber"), "")
    customer = (document.get("recipient") or {}).get("name", "")
    customer_number = (document.get("customer") or {}).get("customerNumber")
    return Document(
        system="e-conomic",
        title=document_title(path, sign, number),
        url=document_url("booked" if path == "invoices/booked" else STATE.get(path, "draft")),
        currency=str(document.get("currency", "")),
        customer=f"{customer} (customer {customer_number})" if customer_number else customer,
        lines=lines,
        net=sign * money(document.get("netAmount")),
        vat=sign * money(document.get("vatAmount")),
        total=sign * money(document.get("grossAmount")),
    )


def app_secret_token(credentials: dict[str, Any]) -> str:
    """The app the agreement's grant was given to: a private app of the merchant's own (its token entered with the
    grant), else IEX's app (oauth.py). KeyError when neither is there."""
    token = credentials.get("app_secret_token") or django_settings.ECONOMIC_APP_SECRET_TOKEN
    if not token:
        raise KeyError("app_secret_token")
    return str(token)


class EconomicClient:
    def __init__(self, module: Module) -> None:
        credentials = module.get_credentials()
        self.gate = module.gate  # the account's rate budget and circuit, shared by every worker
        self.module_id = module.pk
        self.base = (module.base_url or BASE_URL).rstrip("/")
        self.settings = module.settings_values()
        self.headers = {
            "X-AppSecretToken": app_secret_token(credentials),
            "X-AgreementGrantToken": credentials["agreement_grant_token"],
            "Accept": "application/json",
            "Content-Type": "application/json",
        }
        # Saved settings are part of the key: saving them reads the agreement again (the merchant may just have set
        # up in e-conomic what a held order needs).
        agreement = (
            f"{module.pk}:{self.base}:{credentials['agreement_grant_token']}:{sorted(module.settings.items())}"
        )
        self._chart_key = "economic-chart:" + hashlib.sha256(agreement.encode()).hexdigest()

    # --- the API -------------------------------------------------------------------------------------------

    def _call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        url = path if path.startswith(("http://", "https://")) else f"{self.base}/{path.lstrip('/')}"
        return http.request(method, url, headers=self.headers, gate=self.gate, **kwargs)

    def _find(self, path: str, **equals: str) -> dict | None:
        """The first item of a collection whose fields equal the given values (`$and:` chained)."""
        condition = "$and:".join(
            f"{field}$eq:{transforms.escape_filter(value)}" for field, value in equals.items()
        )
        collection = self._call("GET", path, params={"filter": condition, "pagesize": 1}).json()["collection"]
        return collection[0] if collection else None

    def _all(self, path: str) -> Iterator[dict]:
        """Every item of a collection, following the `nextPage` link e-conomic gives (never building page URLs)."""
        url: str | None = path
        params: dict[str, Any] | None = {"pagesize": 1000}
        while url:
            body = self._call("GET", url, params=params).json()
            yield from body["collection"]
            url, params = body.get("pagination", {}).get("nextPage"), None

    def test(self) -> str:
        me = self._call("GET", "self").json()
        _CHARTS.pop(self._chart_key, None)
        cache.delete_many(
            [self._chart_key, f"{self._chart_key}:lists"]
        )  # the agreement's VAT and lists are read again
        return f"Connected to agreement {me.get('agreementNumber')} ({me.get('company', {}).get('name', '')})"

    def account(self) -> str:
        return str(self._call("GET", "self").json()["agreementNumber"])

    def product(self, number: str) -> dict | None:
        try:
            return self._call("GET", f"products/{transforms.url_id(number)}").json()
        except http.PermanentError as exc:
            if exc.status == 404:
                return None
            raise

    def lists(self, wanted: Iterable[tuple[str, str]]) -> dict[str, list[tuple[int, str]]]:
        """(number, name) of the agreement's layouts, payment terms, customer groups, …, by (list, number field):
        for the settings form (kept an hour, as the chart)."""
        key = f"{self._chart_key}:lists"
        if (found := cache.get(key)) is None:
            found = {
                path: [
                    (int(item[field]), f"{item.get('name', item[field])} (no. {item[field]})")
                    for item in self._all(path)
                ]
                for path, field in wanted
            }
            cache.set(key, found, CHART_SECONDS)
        return found

    # --- the VAT chart -------------------------------------------------------------------------------------

    def chart(self) -> Chart:
        """Each product group's VAT rate in each VAT zone, as the agreement books it: kept an hour in the shared
        cache, and a minute in each process (every order needs it)."""
        kept = _CHARTS.get(self._chart_key)
        if kept and time.monotonic() - kept[0] < CHART_IN_PROCESS_SECONDS:
            return kept[1]
        if data := cache.get(self._chart_key):
            chart = Chart.from_data(data)
        else:
            chart = self.read_chart()
            cache.set(self._chart_key, chart.to_data(), CHART_SECONDS)
        if len(_CHARTS) > 1000:
            _CHARTS.clear()  # keys of settings saved since: let them go
        _CHARTS[self._chart_key] = (time.monotonic(), chart)
        return chart

    def read_chart(self) -> Chart:
        """product group -> its sales account for each VAT zone -> that account's VAT code -> its rate."""
        zones = {int(zone["vatZoneNumber"]): str(zone["name"]) for zone in self._all("vat-zones")}
        codes = {
            str(vat["vatCode"]): Decimal(str(vat.get("ratePercentage") or 0)) / 100
            for vat in self._all("vat-accounts")
        }
        groups: dict[int, str] = {}
        rates: dict[int, dict[int, Decimal]] = {}
        accounts: dict[int, dict[int, str]] = {}
        for group in self._all("product-groups"):
            number = int(group["productGroupNumber"])
            groups[number] = str(group.get("name", number))
            for entry in self._all(f"product-groups/{number}/sales-accounts"):
                account, zone = entry["salesAccount"], int(entry["vatZone"]["vatZoneNumber"])
                code = (account.get("vatAccount") or {}).get("vatCode")
                if code and str(code) not in codes:
                    continue  # a VAT code IEX cannot read the rate of books nothing IEX can check
                rates.setdefault(number, {})[zone] = codes[str(code)] if code else ZERO
                accounts.setdefault(number, {})[zone] = (
                    f"{account['accountNumber']} {account.get('name', '')}".strip()
                )
        return Chart(zones, groups, rates, accounts)

    # --- orders --------------------------------------------------------------------------------------------

    def send_order(self, order: Order, mapping: Mapping, record: Record, claim: Claim) -> Outcome:
        """Create or update the order's document; idempotent through `mapping` and references.other. A booked
        invoice is never changed; a cancelled order's draft is deleted, its booked invoice credited."""
        path = DOCUMENTS[self.settings["document_type"]]
        known = mapping.target_ref
        if not known and (found := self._locate(transforms.document_ref(order.source_ref), path)):
            # An attempt that died after e-conomic saved the document but before IEX recorded it: that document is
            # this record's first, so its create is ours.
            mapping.target_ref, mapping.target_state = found
        if order.cancelled:
            return self._cancel(order, mapping, path, record, claim)
        if mapping.target_state == "booked":
            if not known:
                return Outcome("created", "", "created", mapping.target_ref)
            return Outcome("skipped", _booked(mapping.target_ref))
        if mapping.target_state in ("deleted", "credited"):
            # A sale again (restored from the trash, its cancellation undone): on a document of its own; the one it
            # had was withdrawn or credited.
            mapping.target_ref = mapping.target_state = ""
            return self._save_order(order, mapping, path, "created", record, claim)
        if known and not self.settings["update_drafts"]:
            return Outcome("skipped", f"Draft {known} exists and updating drafts is off")
        return self._save_order(order, mapping, path, "updated" if known else "created", record, claim)

    def _save_order(
        self, order: Order, mapping: Mapping, path: str, action: str, record: Record, claim: Claim
    ) -> Outcome:
        prepared = self._prepare(order, record, claim)
        if isinstance(prepared, Outcome):
            return prepared
        planned, customer = prepared
        payload = transforms.order_document(order, customer, planned, self.settings)
        try:
            document = self._save(path, mapping.target_ref, payload, record, planned)
        except http.PermanentError as exc:
            if exc.status != 404 or not mapping.target_ref or path != "invoices/drafts":
                raise
            return self._booked_meanwhile(order, mapping)
        number = str(document[NUMBER_FIELD[path]])
        mapping.target_ref, mapping.target_state = number, STATE[path]
        if problem := self._check_totals(path, number, document, order.total, planned, payload, record, claim):
            return Outcome("warning", problem, action, number)
        if self.settings["document_type"] == "booked":
            mapping.target_ref, mapping.target_state = self._book(number, record), "booked"
        return Outcome(action, "", action, mapping.target_ref)

    def _prepare(
        self, document: Order | CreditNote, record: Record, claim: Claim, sign: int = 1
    ) -> tuple[Plan, int] | Outcome:
        """What a document needs before it is sent: its lines planned, its customer and its products (made if need
        be); an Outcome when it cannot be sent."""
        planned = self._plan(document.lines, document.country_code, sign)
        if isinstance(planned, Outcome):
            return planned
        customer = self._customer(document.customer, document.currency, planned.zone, record, claim)
        if isinstance(customer, Outcome):
            return customer
        if missing := self._make_products(planned.lines, planned.groups, record, claim):
            return missing
        return planned, customer

    def _locate(self, reference: str, path: str = "invoices/drafts") -> tuple[str, str] | None:
        """A document IEX made, found by its references.other: (its number, "draft" or "order") while it is not
        booked; (the booked invoice's number, "booked") once the accountant booked it."""
        if found := self._find(path, **{"references.other": reference}):
            return str(found[NUMBER_FIELD[path]]), STATE[path]
        if path == "invoices/drafts" and (
            booked := self._find("invoices/booked", **{"references.other": reference})
        ):
            return str(booked["bookedInvoiceNumber"]), "booked"
        return None

    def _booked_meanwhile(self, order: Order, mapping: Mapping) -> Outcome:
        """The draft is gone (PUT answered 404): the accountant booked it, or deleted it."""
        draft = mapping.target_ref
        found = self._locate(transforms.document_ref(order.source_ref))
        if found is None or found[1] != "booked":
            raise http.PermanentError(
                f"Draft {draft} no longer exists in e-conomic and no booked invoice refers to order {order.reference}:"
                " it was deleted there, so IEX does not make it again"
            )
        mapping.target_ref, mapping.target_state = found
        return Outcome("skipped", _booked(mapping.target_ref))

    def _plan(self, lines: list[OrderLine], country: str, sign: int = 1) -> Plan | Outcome:
        """The document's lines checked against the agreement's VAT; an Outcome when it cannot be sent (held: a rate
        nothing books; failed: what e-conomic would refuse)."""
        s = self.settings
        numbers = {transforms.product_number(line, s) for line in lines}
        if s["discounts"] == "lines":
            numbers |= {s["discount_product"], s["discount_product_no_vat"]}
        if s.get("sales_tax_group") and any(line.tax for line in lines):
            numbers.add(s["sales_tax_product"])
        planned = transforms.plan(lines, country, self.chart(), s, self._groups(numbers), sign)
        if planned.refused:
            return Outcome("failed", "; ".join(planned.refused))
        if planned.problems:
            return Outcome("held", "; ".join(planned.problems) + f". Then save the settings ({SETTINGS_LINK})")
        return planned

    def _groups(self, numbers: Iterable[str]) -> dict[str, int]:
        """The product group of each of these products that exists in e-conomic: one request for them all."""
        wanted = sorted(n for n in numbers if n and len(n) <= transforms.PRODUCT_NUMBER_MAX)
        if not wanted:
            return {}
        condition = "$or:".join(f"productNumber$eq:{transforms.escape_filter(n)}" for n in wanted)
        params = {"filter": condition, "pagesize": 1000}
        found = self._call("GET", "products", params=params).json()["collection"]
        return {str(p["productNumber"]): int(p["productGroup"]["productGroupNumber"]) for p in found}

    def _cancel(self, order: Order, mapping: Mapping, path: str, record: Record, claim: Claim) -> Outcome:
        """A cancelled order: its draft deleted (with the credit notes of its refunds while drafts); once booked,
        what its refunds have not credited yet is credited."""
        if not mapping.target_ref:
            return Outcome("skipped", "Cancelled in the shop before it was transferred")
        if mapping.target_state in ("deleted", "credited"):
            return Outcome("skipped", "Cancelled in the shop; its document was handled then")
        if mapping.target_state in ("draft", "order") and (deleted := self._delete(order, mapping, path, record)):
            return deleted
        if order.deleted:
            # Deleted in the shop, not cancelled: a booked sale stays booked (a shop tidying its old orders).
            return Outcome(
                "skipped",
                f"Deleted in the shop; booked invoice {mapping.target_ref} in e-conomic is left as it is (credit it "
                "there if the sale did not happen)",
            )
        return self._credit_the_rest(order, mapping, record, claim)

    def _delete(self, order: Order, mapping: Mapping, path: str, record: Record) -> Outcome | None:
        """Delete the order's draft; None when the accountant booked it meanwhile (it is credited instead)."""
        number = mapping.target_ref
        try:
            self._remove(path, number, record)
        except http.PermanentError as exc:
            if exc.status != 404 or path != "invoices/drafts":
                raise
            if (found := self._locate(transforms.document_ref(order.source_ref))) and found[1] == "booked":
                mapping.target_ref, mapping.target_state = found
                return None
            mapping.target_state = "deleted"
            return Outcome("updated", f"Cancelled in the shop; draft {number} was gone already")
        mapping.target_state = "deleted"
        done = f"Cancelled in the shop: draft {number} deleted in e-conomic"
        for refund in order.refunds:  # their credit notes credit nothing now
            found = self._locate(transforms.credit_note_ref(refund))
            if found and found[1] == "draft":
                self._remove("invoices/drafts", found[0], record)
                done += f", and the draft credit note {found[0]} of its refund"
        return Outcome("updated", done, "updated", number)

    def _remove(self, path: str, number: str, record: Record) -> None:
        title = document_title(path, 1, number)
        record("sent", {"method": "DELETE", "path": f"{path}/{number}"}, f"{title} sent to be deleted")
        answer = self._call("DELETE", f"{path}/{number}")  # drafts: 200 with a body; orders: 204
        record("answer", answer.json() if answer.content else None, f"e-conomic's answer: {title} deleted")

    def _credit_the_rest(self, order: Order, mapping: Mapping, record: Record, claim: Claim) -> Outcome:
        """The booked invoice of a cancelled order: a credit note for what is left of the order (its refunds credit
        the rest). The refunds made until now are noted: their own credit notes are still to be made, later ones not."""
        invoice = mapping.target_ref
        mapping.data = {**(mapping.data or {}), "refunds": order.refunds}
        remaining = [line for line in order.current_lines if line.gross]
        if not remaining and order.left > 0:
            return Outcome(
                "failed",
                f"Cancelled in the shop after refunds: {order.left} {order.currency} of booked invoice {invoice} is "
                "not credited, and the shop does not say which of its lines that is: credit it in e-conomic",
            )
        if not remaining:
            mapping.target_state = "credited"
            return Outcome("skipped", f"Cancelled in the shop; {_booked(invoice)}, and refunds credited it all")
        source_ref = f"cancel:{order.source_ref}"
        found = self._locate(transforms.credit_note_ref(source_ref))
        if found:
            outcome = Outcome("created", "", "created", found[0])  # made by an attempt that died after
        else:
            credit = order.cancellation(remaining)
            outcome = self._credit(credit, invoice, True, record, claim)
        if outcome.status not in ("created", "warning"):
            return outcome
        mapping.target_state = "credited"
        mapping.data["credit_note"] = outcome.target_ref
        done = f"Cancelled in the shop: credit note {outcome.target_ref} for invoice {invoice}"
        if outcome.status == "warning":
            return Outcome("warning", f"{done}. {outcome.reason}", "updated", invoice)
        return Outcome("updated", done, "updated", invoice)

    def _save(self, path: str, number: str, payload: dict, record: Record, planned: Plan, sign: int = 1) -> dict:
        """Create the document, or replace the draft `number`; e-conomic's answer, the document as it made it (also
        noted in the Log's words, with each line's VAT as the agreement books it)."""
        method, url = ("PUT", f"{path}/{number}") if number else ("POST", path)
        sent = (
            f"{document_title(path, sign, number)} sent again, changed"
            if number
            else f"{document_title(path, sign)} sent"
        )
        rates = self._rates(planned)  # read before sending: after it, nothing may fail the document made
        record("sent", {"method": method, "path": url, "body": payload}, sent)
        document = self._call(method, url, json=payload).json()
        made = document_title(path, sign, document.get(NUMBER_FIELD[path], ""))
        record("answer", document, f"e-conomic's answer: {made} saved")
        note_document(record, read_document, document, path, rates, how="as e-conomic made it")
        return document

    def _rates(self, planned: Plan) -> dict[str, Decimal]:
        """The VAT rate of each planned line's product in the document's VAT zone, by product number."""
        chart = self.chart()
        rates = {line.product: chart.rate(line.group, planned.zone) for line in planned.lines}
        return {product: rate for product, rate in rates.items() if rate is not None}

    def _check_totals(
        self,
        path: str,
        number: str,
        document: dict,
        expected: Decimal,
        planned: Plan,
        payload: dict,
        record: Record,
        claim: Claim,
    ) -> str | None:
        """Compare e-conomic's gross and VAT with the shop's (`expected`; a credit note's are negative). Within the
        rounding threshold a correction line (on the rounding product, which must book no VAT) makes the gross
        equal; above it the document stays a draft and the Log says "Error in totals validation". Returns that
        message, or None when the totals agree."""
        s = self.settings
        sign = -1 if expected < 0 else 1  # a credit note's lines all have negative quantities
        gross, vat = money(document.get("grossAmount")), money(document.get("vatAmount"))
        difference = gross - expected
        mismatch = (
            f"Error in totals validation: e-conomic's total {gross} (VAT {vat}) differs from the shop's {expected} "
            f"(tax {sign * planned.vat}) by {difference}; the document stays a draft"
        )
        threshold = Decimal(str(s["rounding_threshold"]))
        if abs(difference) > threshold or abs(vat - sign * planned.vat) > threshold:
            return mismatch
        if not difference or not s["correction_line"]:
            return None
        product = s["rounding_product"]
        group = self._groups([product]).get(product)
        if group is None:
            if not s["auto_create_products"]:
                return f"{mismatch}: a rounding line needs product {product}, and creating products is off"
            group = int(s["product_group_no_vat"])
            self._make_products([Line(product, "Rounding", Decimal(1), ZERO, group=group)], {}, record, claim)
        if not self.chart().books(group, planned.zone, ZERO):
            return f"{mismatch}: the rounding product {product} is in a product group with VAT in this VAT zone"
        correction = Line(product, "Rounding", Decimal(sign), -difference * sign)
        payload = {**payload, "lines": [*payload["lines"], correction.payload(len(payload["lines"]) + 1)]}
        corrected = money(self._save(path, number, payload, record, planned, sign).get("grossAmount"))
        return (
            None if corrected == expected else f"{mismatch} (still {corrected - expected} after a rounding line)"
        )

    def _book(self, number: str, record: Record) -> str:
        answer = self._call(
            "POST", "invoices/booked", json={"draftInvoice": {"draftInvoiceNumber": int(number)}}
        ).json()
        booked = str(answer["bookedInvoiceNumber"])
        record("answer", answer, f"e-conomic's answer: draft {number} booked as invoice {booked}")
        # A booked invoice's lines say their VAT.
        note_document(record, read_document, answer, "invoices/booked", {}, how="as e-conomic booked it")
        return booked

    def _customer(
        self, customer: Customer, currency: str, zone: int, record: Record, claim: Claim
    ) -> int | Outcome:
        """The customer's number: found by the module's key, else made (when allowed). Two orders of one new customer
        at once make it once: the second waits for the first's claim on the key, then finds what it made."""
        s = self.settings
        field, value = transforms.customer_key(customer, s["customer_match"])
        if value:
            found = self._find("customers", **{field: value})
            number = found["customerNumber"] if found else None
            said = f"customer {number}" if found else "not in e-conomic yet"
            by = s["customer_match"].replace("_", " ")
            record(
                "looked up",
                {"field": field, "value": value, "customerNumber": number},
                f"Customer looked up by {by}: {said}",
            )
            if found:
                return int(found["customerNumber"])
        if not s["allow_customer_create"]:
            return Outcome(
                "failed",
                f"No customer in e-conomic with {s['customer_match'].replace('_', ' ')} {value or '(none)'}"
                " and creating customers is off",
            )
        if value:
            claim(f"customer {field} {value.strip().lower()}")  # Busy while another transfer holds it
            if found := self._find("customers", **{field: value}):
                return int(found["customerNumber"])  # made by the transfer that held the claim
        payload = transforms.customer_payload(customer, currency, zone, s)
        record("sent", {"method": "POST", "path": "customers", "body": payload}, "New customer sent")
        created = self._call("POST", "customers", json=payload).json()
        record("answer", created, f"Customer created in e-conomic: customer {created['customerNumber']}")
        return int(created["customerNumber"])

    def _make_products(
        self, lines: Iterable[Line], known: dict[str, int], record: Record, claim: Claim
    ) -> Outcome | None:
        """Make every line's product that does not exist (list price, the group of its VAT); an Outcome when
        making them is off. Two orders with one new product at once make it once: each claims the product numbers it
        makes (in order, so two never wait for each other), and makes only what is still missing then."""
        missing = {line.product: line for line in lines if line.product not in known}
        if not missing:
            return None
        if not self.settings["auto_create_products"]:
            return Outcome(
                "failed", f"Products not found in e-conomic and creating them is off: {', '.join(sorted(missing))}"
            )
        for number in sorted(missing):
            claim(f"product {number}")  # Busy while another transfer holds it
        made_meanwhile = self._groups(missing)
        for number, line in sorted(missing.items()):
            if number not in made_meanwhile:
                self._create_product(line, record)
        return None

    def _create_product(self, line: Line, record: Record) -> None:
        payload = transforms.product_payload(line.product, line.name or line.description, line.price, line.group)
        record("sent", {"method": "POST", "path": "products", "body": payload}, f"New product {line.product} sent")
        answer = self._call("POST", "products", json=payload).json()
        record("answer", answer, f"Product {line.product} created in e-conomic")

    # --- credit notes --------------------------------------------------------------------------------------

    def send_credit_note(
        self, credit: CreditNote, invoice: Mapping, mapping: Mapping, record: Record, claim: Claim
    ) -> Outcome:
        """A refund of an order whose invoice exists: a document with negative quantities for what was refunded,
        referring to the invoice (e-conomic links them by nothing else). Booked only after its invoice is."""
        if mapping.target_ref:
            return Outcome("skipped", f"Credit note {mapping.target_ref} was made before")
        if skipped := _not_credited(credit, invoice):
            return Outcome("skipped", skipped)
        if found := self._locate(transforms.credit_note_ref(credit.source_ref)):
            mapping.target_ref, mapping.target_state = found  # made by an attempt that died after
            return Outcome("created", "", "created", mapping.target_ref)
        booked = invoice.target_state in ("booked", "credited")
        outcome = self._credit(credit, invoice.target_ref, booked, record, claim)
        if outcome.target_ref:
            mapping.target_ref = outcome.target_ref
            mapping.target_state = "booked" if booked and self.settings["document_type"] == "booked" else "draft"
        return outcome

    def _credit(self, credit: CreditNote, invoice: str, book: bool, record: Record, claim: Claim) -> Outcome:
        """Make the credit note (booked when the module books and `book`: its invoice is booked)."""
        prepared = self._prepare(credit, record, claim, sign=-1)
        if isinstance(prepared, Outcome):
            return prepared
        planned, customer = prepared
        payload = transforms.credit_note_document(credit, invoice, customer, planned, self.settings)
        document = self._save("invoices/drafts", "", payload, record, planned, -1)
        number = str(document["draftInvoiceNumber"])
        if problem := self._check_totals(
            "invoices/drafts", number, document, -credit.total, planned, payload, record, claim
        ):
            return Outcome("warning", problem, "created", number)
        if book and self.settings["document_type"] == "booked":
            number = self._book(number, record)
        return Outcome("created", f"Credit note for invoice {invoice}", "created", number)

    # --- products and stock --------------------------------------------------------------------------------

    def send_product(self, product: Product, mapping: Mapping, record: Record) -> Outcome:
        if len(product.sku) > transforms.PRODUCT_NUMBER_MAX:
            return Outcome(
                "failed",
                f"Product number {product.sku!r} is longer than e-conomic's {transforms.PRODUCT_NUMBER_MAX} "
                "characters: give the variant a shorter SKU in the shop",
            )
        payload = transforms.product_from_common(product, self.chart(), self.settings)
        existing = self.product(product.sku)
        path = f"products/{transforms.url_id(product.sku)}"
        if existing is None:
            if not self.settings["auto_create_products"]:
                return Outcome(
                    "skipped", f"Product {product.sku} is not in e-conomic and creating products is off"
                )
            record(
                "sent", {"method": "POST", "path": "products", "body": payload}, f"New product {product.sku} sent"
            )
            answer = self._call("POST", "products", json=payload).json()
            action = "created"
        else:
            # PUT replaces the whole product: start from e-conomic's own document, change name and price.
            merged = {k: v for k, v in existing.items() if v is not None and k != "self"}
            merged.update(name=payload["name"], salesPrice=payload["salesPrice"])
            record("sent", {"method": "PUT", "path": path, "body": merged}, f"Product {product.sku} sent, changed")
            answer = self._call("PUT", path, json=merged).json()
            action = "updated"
        record("answer", answer, f"Product {product.sku} {action} in e-conomic")
        mapping.target_ref, mapping.target_state = product.sku, "product"
        return Outcome(action, "", action, product.sku)

    def stock_levels(self) -> list[StockLevel]:
        return [
            StockLevel(sku=str(p["productNumber"]), available=int(p.get("inventory", {}).get("available") or 0))
            for p in self._all("products")
            if "inventory" in p
        ]


def _not_credited(credit: CreditNote, invoice: Mapping) -> str:
    """Why a refund makes no credit note, whatever it refunds: its order's document is one that is not credited."""
    if invoice.target_state == "order":
        return "Orders in e-conomic are not credited: IEX transfers orders as orders here"
    if invoice.target_state == "deleted":
        return f"The order was cancelled before it was booked: its draft {invoice.target_ref} was deleted, so nothing is credited"
    data = invoice.data if isinstance(invoice.data, dict) else {}
    if invoice.target_state == "credited" and credit.source_ref not in data.get("refunds", []):
        made = f" (credit note {data['credit_note']})" if data.get("credit_note") else ""
        return f"The order's cancellation credited what was left of invoice {invoice.target_ref}{made}"
    return ""


def _booked(number: str) -> str:
    return f"Booked in e-conomic as invoice {number}: changes to the order are no longer sent (refunds become credit notes)"
