"""e-conomic REST API (restapi.e-conomic.com), and what the flows ask of an accounting system:
`send_order`, `send_product` and `stock_levels`."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import requests

from connections.common import Order, OrderLine, Outcome, Product, StockLevel, money
from connections.systems import Record
from connections.systems.economic import transforms
from iex.lib import http

if TYPE_CHECKING:
    from connections.models import Mapping, Module

BASE_URL = "https://restapi.e-conomic.com"
DOCUMENTS = {"draft": "invoices/drafts", "booked": "invoices/drafts", "order": "orders/drafts"}
NUMBER_FIELD = {"invoices/drafts": "draftInvoiceNumber", "orders/drafts": "orderNumber"}


class EconomicClient:
    def __init__(self, module: Module) -> None:
        credentials = module.get_credentials()
        self.base = (module.base_url or BASE_URL).rstrip("/")
        self.settings = module.settings_values()
        self.headers = {
            "X-AppSecretToken": credentials["app_secret_token"],
            "X-AgreementGrantToken": credentials["agreement_grant_token"],
            "Accept": "application/json",
        }

    # --- the API -------------------------------------------------------------------------------------------

    def _call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return http.request(method, f"{self.base}/{path.lstrip('/')}", headers=self.headers, **kwargs)

    def _find(self, path: str, **equals: str) -> dict | None:
        """The first item of a collection whose fields equal the given values (`$and:` chained)."""
        condition = "$and:".join(
            f"{field}$eq:{transforms.escape_filter(value)}" for field, value in equals.items()
        )
        collection = self._call("GET", path, params={"filter": condition, "pagesize": 1}).json()["collection"]
        return collection[0] if collection else None

    def _all(self, path: str) -> Iterator[dict]:
        page = 0
        while True:
            body = self._call("GET", path, params={"pagesize": 1000, "skippages": page}).json()
            yield from body["collection"]
            if not body.get("pagination", {}).get("nextPage"):
                return
            page += 1

    def test(self) -> str:
        me = self._call("GET", "self").json()
        return f"Connected to agreement {me.get('agreementNumber')} ({me.get('company', {}).get('name', '')})"

    def product(self, number: str) -> dict | None:
        try:
            return self._call("GET", f"products/{requests.utils.quote(number, safe='')}").json()
        except http.PermanentError as exc:
            if exc.status == 404:
                return None
            raise

    # --- orders --------------------------------------------------------------------------------------------

    def send_order(self, order: Order, mapping: Mapping, record: Record) -> Outcome:
        """Create or update the order's document; idempotent through `mapping` and references.other."""
        s = self.settings
        path = DOCUMENTS[s["document_type"]]
        if mapping.target_state == "booked":
            return Outcome(
                "skipped",
                f"Invoice {mapping.target_ref} is already booked in e-conomic; "
                "changes to the order are not transferred",
            )
        # Known from our own records, or found by reference: an attempt that died after e-conomic saved the
        # document but before we recorded it. That document is this record's first: its create is ours to report.
        known = mapping.target_ref
        existing = known or self._existing_document(order, path, mapping)
        if mapping.target_state == "booked":
            return Outcome("created", "", "created", mapping.target_ref)
        if known and not s["update_drafts"]:
            return Outcome("skipped", f"Draft {existing} exists and updating drafts is off")

        customer_number = self._customer(order, record)
        if customer_number is None:
            return Outcome(
                "failed",
                f"No customer in e-conomic with {s['customer_match'].replace('_', ' ')} "
                f"{transforms.customer_key(order.customer, s['customer_match'])[1] or '(none)'}"
                " and creating customers is off",
            )
        missing = self._products(order.lines, record)
        if missing:
            return Outcome(
                "failed", f"Products not found in e-conomic and creating them is off: {', '.join(missing)}"
            )

        document = self._save(path, existing, transforms.document_payload(order, customer_number, s), record)
        number = str(document[NUMBER_FIELD[path]])
        action = "updated" if known else "created"
        mapping.target_ref, mapping.target_state = number, "order" if path == "orders/drafts" else "draft"

        difference = transforms.total_difference(order, document)
        threshold = Decimal(str(s["rounding_threshold"]))
        if abs(difference) > threshold:
            return Outcome(
                "warning",
                f"Error in totals validation: e-conomic's total {money(document.get('grossAmount'))} differs from "
                f"the shop's {order.total} {order.currency} by {difference}; the document stays a draft",
                action,
                number,
            )
        if difference and s["correction_line"]:
            correction = OrderLine("rounding", "Rounding", Decimal(1), -difference, Decimal(0))
            self._products([correction], record)
            payload = transforms.document_payload(order, customer_number, s, extra_lines=[correction])
            document = self._save(path, number, payload, record)

        if s["document_type"] == "booked":
            booked = self._call(
                "POST", "invoices/booked", json={"draftInvoice": {"draftInvoiceNumber": int(number)}}
            )
            record("answer", booked.json(), f"Booked draft {number}")
            number = str(booked.json()["bookedInvoiceNumber"])
            mapping.target_ref, mapping.target_state = number, "booked"
        return Outcome(action, "", action, number)

    def _existing_document(self, order: Order, path: str, mapping: Mapping) -> str:
        """Our mapping is lost if we crashed after e-conomic saved the document: look it up by reference."""
        ref = transforms.document_ref(order)
        found = self._find(path, **{"references.other": ref})
        if found:
            return str(found[NUMBER_FIELD[path]])
        if path == "invoices/drafts" and (booked := self._find("invoices/booked", **{"references.other": ref})):
            mapping.target_ref, mapping.target_state = str(booked["bookedInvoiceNumber"]), "booked"
        return ""

    def _save(self, path: str, number: str, payload: dict, record: Record) -> dict:
        method, url = ("PUT", f"{path}/{number}") if number else ("POST", path)
        record("sent", {"method": method, "path": url, "body": payload}, f"{method} /{url}")
        document = self._call(method, url, json=payload).json()
        record("answer", document, f"e-conomic saved {NUMBER_FIELD[path]} {document.get(NUMBER_FIELD[path])}")
        return document

    def _customer(self, order: Order, record: Record) -> int | None:
        s = self.settings
        field, value = transforms.customer_key(order.customer, s["customer_match"])
        if value:
            found = self._find("customers", **{field: value})
            if found:
                return int(found["customerNumber"])
        if not s["allow_customer_create"]:
            return None
        payload = transforms.customer_payload(order.customer, order.currency, s)
        record("sent", {"method": "POST", "path": "customers", "body": payload}, "Create the customer")
        created = self._call("POST", "customers", json=payload).json()
        record("answer", created, f"Customer {created['customerNumber']} created")
        return int(created["customerNumber"])

    def _products(self, lines: list[OrderLine], record: Record) -> list[str]:
        """Make sure every line's product exists; the numbers still missing when creating is off."""
        missing = []
        for number, line in {transforms.product_number(line, self.settings): line for line in lines}.items():
            if self.product(number) is not None:
                continue
            if not self.settings["auto_create_products"]:
                missing.append(number)
                continue
            payload = transforms.product_payload(
                number, line.description, line.unit_price_net, line.vat_rate, self.settings
            )
            record("sent", {"method": "POST", "path": "products", "body": payload}, f"Create product {number}")
            record("answer", self._call("POST", "products", json=payload).json(), f"Product {number} created")
        return missing

    # --- products and stock --------------------------------------------------------------------------------

    def send_product(self, product: Product, mapping: Mapping, record: Record) -> Outcome:
        payload = transforms.product_from_common(product, self.settings)
        existing = self.product(product.sku)
        if existing is None:
            if not self.settings["auto_create_products"]:
                return Outcome(
                    "skipped", f"Product {product.sku} is not in e-conomic and creating products is off"
                )
            record("sent", {"method": "POST", "path": "products", "body": payload}, "Create the product")
            answer = self._call("POST", "products", json=payload).json()
            action = "created"
        else:
            # PUT replaces the whole product: start from e-conomic's own document, change name and price.
            merged = {k: v for k, v in existing.items() if v is not None and k != "self"}
            merged.update(name=payload["name"], salesPrice=payload["salesPrice"])
            path = f"products/{requests.utils.quote(product.sku, safe='')}"
            record("sent", {"method": "PUT", "path": path, "body": merged}, "Update the product")
            answer = self._call("PUT", path, json=merged).json()
            action = "updated"
        record("answer", answer, f"Product {product.sku} {action}")
        mapping.target_ref, mapping.target_state = product.sku, "product"
        return Outcome(action, "", action, product.sku)

    def stock_levels(self) -> list[StockLevel]:
        return [
            StockLevel(sku=str(p["productNumber"]), available=int(p.get("inventory", {}).get("available") or 0))
            for p in self._all("products")
            if "inventory" in p
        ]
