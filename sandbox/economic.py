"""The fake e-conomic REST API: customers, products, draft and booked invoices, and orders.

Served under /economic/. A body with a null anywhere is refused. Lists are collections paged with skippages and
pagesize and filtered with `filter=field$eq:value[$and:field$eq:value...]`. Draft invoices and orders get their
totals computed: line net = round(quantity * unitNetPrice * (1 - discountPercentage / 100), 2); line VAT =
round(line net * the rate of the product's group, 2) for a domestic recipient (VAT zone 1), else 0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from functools import partial
from typing import Any
from urllib.parse import quote, urlencode

from sandbox.common import (
    BadRequest,
    Refusal,
    Request,
    Response,
    dispatch,
    json_response,
    money,
    route,
    to_decimal,
)
from sandbox.orders import CATALOGUE

ZERO = Decimal("0")
SELF = {
    "agreementNumber": 654321,
    "company": {"name": "Sandbox ApS", "vatNumber": "DK12345678"},
    "userName": "sandbox",
}
VAT_ZONES = {1: "Domestic", 2: "EU", 3: "Abroad"}
PRODUCT_GROUPS = {1: Decimal("0.25"), 2: ZERO}  # 1 = "Varer m/moms", 2 = "Varer u/moms"
SERVICE_PRODUCTS = [  # productNumber, name, net sales price; all in group 1
    ("SHIPPING", "Fragt", Decimal("39.20")),
    ("FEE", "Gebyr", ZERO),
    ("DISCOUNT", "Rabat", ZERO),
    ("MISC", "Diverse", ZERO),
]
INVALID = "E04300"  # errorCode of validation failures
NOT_FOUND = "E06000"  # errorCode of a missing (or referenced but unknown) entity
DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE = 20, 1000
FILTER_ESCAPED = "$()*,"  # written as $$, $(, $), $*, $, in filter values

# Field checks: dotted path -> (accepted types, required). Booleans never count as numbers.
Fields = dict[str, tuple[tuple[type, ...], bool]]
TEXT, WHOLE, NUMBER, LIST = (str,), (int,), (int, float), (list,)
CUSTOMER_FIELDS: Fields = {
    "name": (TEXT, True),
    "currency": (TEXT, True),
    "customerGroup.customerGroupNumber": (WHOLE, True),
    "paymentTerms.paymentTermsNumber": (WHOLE, True),
    "vatZone.vatZoneNumber": (WHOLE, True),
    **{
        name: (TEXT, False)
        for name in (
            "email",
            "address",
            "zip",
            "city",
            "country",
            "telephoneAndFaxNumber",
            "corporateIdentificationNumber",
        )
    },
}
PRODUCT_FIELDS: Fields = {
    "productNumber": (TEXT, True),
    "name": (TEXT, True),
    "productGroup.productGroupNumber": (WHOLE, True),
    "salesPrice": (NUMBER, False),
    "description": (TEXT, False),
    "unit.unitNumber": (WHOLE, False),
}
DOCUMENT_FIELDS: Fields = {
    "date": (TEXT, True),
    "currency": (TEXT, True),
    "exchangeRate": (NUMBER, False),
    "customer.customerNumber": (WHOLE, True),
    "recipient.name": (TEXT, True),
    **{f"recipient.{name}": (TEXT, False) for name in ("address", "zip", "city", "country")},
    "recipient.vatZone.vatZoneNumber": (WHOLE, True),
    "paymentTerms.paymentTermsNumber": (WHOLE, True),
    "layout.layoutNumber": (WHOLE, True),
    "references.other": (TEXT, False),
    "notes.heading": (TEXT, False),
    "notes.textLine1": (TEXT, False),
    "lines": (LIST, False),
}
LINE_FIELDS: Fields = {
    "lineNumber": (WHOLE, False),
    "product.productNumber": (TEXT, True),
    "description": (TEXT, True),
    "quantity": (NUMBER, True),
    "unitNetPrice": (NUMBER, True),
    "discountPercentage": (NUMBER, False),
    "unit.unitNumber": (WHOLE, False),
}
DOCUMENT_FILTERS = ("references.other", "customer.customerNumber")
_MISSING = object()


class _Table:
    """One kind of resource: its documents by number (as text), URL path, error label and filterable fields."""

    def __init__(self, path: str, key: str, label: str, filterable: tuple[str, ...] = (), first: int = 1) -> None:
        self.path = path
        self.key = key
        self.label = label
        self.filterable = filterable
        self.rows: dict[str, dict[str, Any]] = {}
        self.next_number = first

    def insert(self, document: dict[str, Any]) -> dict[str, Any]:
        """Store `document` under the next number."""
        row = {**document, self.key: self.next_number}
        self.rows[str(self.next_number)] = row
        self.next_number += 1
        return row

    def get(self, number: str) -> dict[str, Any]:
        """The document with that number, or a 404 refusal."""
        if number not in self.rows:
            raise Refusal(error(404, f"{self.label} not found.", NOT_FOUND))
        return self.rows[number]

    def render(self, request: Request, row: dict[str, Any]) -> dict[str, Any]:
        """The document as the API shows it, with its `self` URL."""
        return {**row, "self": f"{_base(request)}/{self.path}/{quote(str(row[self.key]), safe='')}"}


class EconomicState:
    """The agreement's books. Not locked by itself: the server holds its lock around every use."""

    def __init__(self) -> None:
        self.tables = {
            "customers": _Table(
                "customers",
                "customerNumber",
                "Customer",
                ("email", "telephoneAndFaxNumber", "corporateIdentificationNumber", "name"),
            ),
            "products": _Table("products", "productNumber", "Product"),
            "drafts": _Table("invoices/drafts", "draftInvoiceNumber", "Draft invoice", DOCUMENT_FILTERS),
            "booked": _Table(
                "invoices/booked", "bookedInvoiceNumber", "Booked invoice", ("references.other",), 10001
            ),
            "orders": _Table("orders/drafts", "orderNumber", "Order", DOCUMENT_FILTERS),
        }
        for item in CATALOGUE:
            group = 1 if item.taxable else 2
            self._add_product(item.sku, item.title, group, item.price / (1 + PRODUCT_GROUPS[group]), item.stock)
        for number, name, price in SERVICE_PRODUCTS:
            self._add_product(number, name, 1, price, 0)

    def _add_product(self, number: str, name: str, group: int, price: Decimal, stock: int) -> None:
        self.tables["products"].rows[number] = {
            "productNumber": number,
            "name": name,
            "productGroup": {"productGroupNumber": group},
            "salesPrice": float(money(price)),
            "inventory": {"available": stock, "inStock": stock},
        }

    def set_available(self, product_number: str, available: int) -> dict[str, Any] | None:
        """Set a product's stock (available and in stock alike); None when there is no such product."""
        product = self.tables["products"].rows.get(product_number)
        if product is not None:
            product["inventory"] = {"available": available, "inStock": available}
        return product

    def summary(self) -> dict[str, list[dict[str, Any]]]:
        return {name: list(table.rows.values()) for name, table in self.tables.items()}


def handle(books: EconomicState, request: Request, app_secret_token: str, agreement_grant_token: str) -> Response:
    """Answer a REST request (path under /economic/) if the two tokens are presented."""
    if (request.headers.get("x-appsecrettoken"), request.headers.get("x-agreementgranttoken")) != (
        app_secret_token,
        agreement_grant_token,
    ):
        return error(401, "Unauthorized")
    try:
        return dispatch(ROUTES, request, books) or error(404, "Not found.")
    except BadRequest as exc:
        return error(400, str(exc))


def error(status: int, message: str, code: str | None = None, errors: dict[str, Any] | None = None) -> Response:
    """An e-conomic error body; the errorCode defaults to E0{status}0 (e.g. E04010 for 401)."""
    body: dict[str, Any] = {"message": message, "errorCode": code or f"E0{status}0", "httpStatusCode": status}
    if errors:
        body["errors"] = errors
    return json_response(status, body)


def _self(books: EconomicState, request: Request) -> Response:
    return json_response(200, SELF)


def _list(name: str, books: EconomicState, request: Request) -> Response:
    table = books.tables[name]
    raw_filter = request.query.get("filter", "")
    clauses = _parse_filter(raw_filter) if raw_filter else []
    for field, _ in clauses:
        if field not in table.filterable:
            raise Refusal(error(400, f"Filtering on {field!r} is not supported."))
    rows = [row for row in table.rows.values() if all(_matches(row, field, value) for field, value in clauses)]
    size = min(max(_whole_param(request, "pagesize", DEFAULT_PAGE_SIZE), 1), MAX_PAGE_SIZE)
    skip = max(_whole_param(request, "skippages", 0), 0)
    url = f"{_base(request)}/{table.path}"

    def page(skip_pages: int) -> str:
        params: dict[str, Any] = {"skippages": skip_pages, "pagesize": size}
        if raw_filter:
            params["filter"] = raw_filter
        return f"{url}?{urlencode(params)}"

    pagination = {
        "skipPages": skip,
        "pageSize": size,
        "results": len(rows),
        "firstPage": page(0),
        "lastPage": page(max(math.ceil(len(rows) / size) - 1, 0)),
    }
    if (skip + 1) * size < len(rows):
        pagination["nextPage"] = page(skip + 1)
    return json_response(
        200,
        {
            "collection": [table.render(request, row) for row in rows[skip * size : (skip + 1) * size]],
            "pagination": pagination,
            "self": f"{url}?{request.query_string}" if request.query_string else url,
        },
    )


def _get(name: str, books: EconomicState, request: Request, number: str) -> Response:
    table = books.tables[name]
    return json_response(200, table.render(request, table.get(number)))


def _create_customer(books: EconomicState, request: Request) -> Response:
    body = _body(request)
    problems = _problems(body, CUSTOMER_FIELDS)
    _check_known(problems, body, "vatZone.vatZoneNumber", VAT_ZONES, "VAT zone")
    if problems:
        raise _invalid(problems)
    customers = books.tables["customers"]
    return json_response(201, customers.render(request, customers.insert(body)))


def _create_product(books: EconomicState, request: Request) -> Response:
    body = _body(request)
    products = books.tables["products"]
    problems = _problems(body, PRODUCT_FIELDS)
    _check_known(problems, body, "productGroup.productGroupNumber", PRODUCT_GROUPS, "Product group")
    if "productNumber" not in problems and body["productNumber"] in products.rows:
        problems["productNumber"] = (INVALID, "Product number is already in use.")
    if problems:
        raise _invalid(problems)
    product = {**body, "inventory": {"available": 0, "inStock": 0}}
    products.rows[body["productNumber"]] = product
    return json_response(201, products.render(request, product))


def _create_document(name: str, books: EconomicState, request: Request) -> Response:
    table = books.tables[name]
    return json_response(201, table.render(request, table.insert(_document(books, request))))


def _replace_document(name: str, books: EconomicState, request: Request, number: str) -> Response:
    table = books.tables[name]
    key = table.get(number)[table.key]
    row = {**_document(books, request), table.key: key}
    table.rows[number] = row
    return json_response(200, table.render(request, row))


def _delete_draft(books: EconomicState, request: Request, number: str) -> Response:
    drafts = books.tables["drafts"]
    drafts.get(number)
    del drafts.rows[number]
    return Response(204)


def _book(books: EconomicState, request: Request) -> Response:
    """Book a draft invoice: it becomes a booked invoice (numbered from 10001) and the draft is gone."""
    body = _body(request)
    problems = _problems(body, {"draftInvoice.draftInvoiceNumber": (WHOLE, True)})
    if problems:
        raise _invalid(problems)
    drafts, booked = books.tables["drafts"], books.tables["booked"]
    number = str(body["draftInvoice"]["draftInvoiceNumber"])
    draft = {key: value for key, value in drafts.get(number).items() if key != drafts.key}
    del drafts.rows[number]
    return json_response(201, booked.render(request, booked.insert({"references": {}, **draft})))


def _document(books: EconomicState, request: Request) -> dict[str, Any]:
    """The request's draft invoice or order, validated, with its lines numbered and its totals computed."""
    body = _body(request)
    problems = _problems(body, DOCUMENT_FIELDS)
    customer_numbers = {customer["customerNumber"] for customer in books.tables["customers"].rows.values()}
    _check_known(problems, body, "customer.customerNumber", customer_numbers, "Customer")
    _check_known(problems, body, "recipient.vatZone.vatZoneNumber", VAT_ZONES, "VAT zone")
    if "date" not in problems and not _is_date(body["date"]):
        problems["date"] = (INVALID, "Property must be a date (YYYY-MM-DD).")
    lines = body.get("lines", []) if "lines" not in problems else []
    products = books.tables["products"].rows
    line_problems = []
    for line in lines:
        found = _problems(line, LINE_FIELDS)
        _check_known(found, line, "product.productNumber", products, "Product")
        line_problems.append(found)
    if problems or any(line_problems):
        raise _invalid(problems, line_problems)

    domestic = body["recipient"]["vatZone"]["vatZoneNumber"] == 1
    net_total = vat_total = ZERO
    for line in lines:
        discount = to_decimal(line.get("discountPercentage", 0))
        net = money(to_decimal(line["quantity"]) * to_decimal(line["unitNetPrice"]) * (1 - discount / 100))
        group = products[line["product"]["productNumber"]]["productGroup"]["productGroupNumber"]
        net_total += net
        vat_total += money(net * PRODUCT_GROUPS[group]) if domestic else ZERO
    return {
        **body,
        "lines": [{"lineNumber": number, **line} for number, line in enumerate(lines, start=1)],
        "netAmount": float(net_total),
        "vatAmount": float(vat_total),
        "grossAmount": float(net_total + vat_total),
    }


def _body(request: Request) -> dict[str, Any]:
    """The request's JSON object, refused when it is not one or holds a null anywhere."""
    body = request.json()
    if not isinstance(body, dict):
        raise Refusal(error(400, "The body must be a JSON object."))
    null = _null_path(body, "")
    if null is not None:
        raise Refusal(error(400, f"Null values are not allowed: {null}"))
    return body


def _null_path(value: Any, path: str) -> str | None:
    """Where the first null inside `value` is, as e.g. `lines[0].description`; None when there is none."""
    if value is None:
        return path
    if isinstance(value, dict):
        children = [(f"{path}.{key}" if path else key, child) for key, child in value.items()]
    elif isinstance(value, list):
        children = [(f"{path}[{i}]", child) for i, child in enumerate(value)]
    else:
        return None
    for child_path, child in children:
        found = _null_path(child, child_path)
        if found is not None:
            return found
    return None


def _field(document: Any, path: str) -> Any:
    """The value at a dotted path, or _MISSING."""
    value = document
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return _MISSING
        value = value[part]
    return value


def _problems(document: Any, fields: Fields) -> dict[str, tuple[str, str]]:
    """Dotted path -> (errorCode, message) for each required field missing and each field of the wrong type."""
    problems = {}
    for path, (types, required) in fields.items():
        value = _field(document, path)
        if value is _MISSING:
            if required:
                problems[path] = (INVALID, "Property is required.")
        elif isinstance(value, bool) or not isinstance(value, types):
            problems[path] = (INVALID, f"Property must be of type {' or '.join(t.__name__ for t in types)}.")
    return problems


def _check_known(problems: dict[str, tuple[str, str]], document: Any, path: str, known: Any, label: str) -> None:
    """Add a not-found problem (at the path's parent) when the well-typed value at `path` is not in `known`."""
    if path not in problems and _field(document, path) not in known:
        problems[path.rsplit(".", 1)[0]] = (NOT_FOUND, f"{label} not found.")


def _invalid(
    problems: dict[str, tuple[str, str]], line_problems: Sequence[dict[str, tuple[str, str]]] = ()
) -> Refusal:
    """The 400 refusal for `problems`; those of lines go under errors.lines.items, one entry per faulty line."""
    errors = _error_tree(problems)
    faulty_lines = [_error_tree(found) for found in line_problems if found]
    if faulty_lines:
        errors["lines"] = {"items": faulty_lines}
    return Refusal(error(400, "Validation failed", INVALID, errors))


def _error_tree(problems: dict[str, tuple[str, str]]) -> dict[str, Any]:
    """{"a.b": (code, message)} as {"a": {"b": {"errors": [{"errorCode": code, "errorMessage": message}]}}}."""
    tree: dict[str, Any] = {}
    for path, (code, message) in problems.items():
        node = tree
        for part in path.split("."):
            node = node.setdefault(part, {})
        node.setdefault("errors", []).append({"errorCode": code, "errorMessage": message})
    return tree


def _parse_filter(text: str) -> list[tuple[str, str]]:
    """`field$eq:value$and:field$eq:value` as (field, value) pairs, the values unescaped."""
    clauses = []
    field: str | None = None
    chars: list[str] = []
    i = 0
    while i < len(text):
        if field is None and text.startswith("$eq:", i):
            field, chars, i = "".join(chars), [], i + 4
        elif field is not None and text.startswith("$and:", i):
            clauses.append((field, "".join(chars)))
            field, chars, i = None, [], i + 5
        elif text[i] == "$" and i + 1 < len(text) and text[i + 1] in FILTER_ESCAPED:
            chars.append(text[i + 1])
            i += 2
        elif text[i] == "$":
            raise Refusal(error(400, f"Unsupported filter: {text}"))
        else:
            chars.append(text[i])
            i += 1
    if field is None:
        raise Refusal(error(400, f"Unsupported filter: {text}"))
    clauses.append((field, "".join(chars)))
    return clauses


def _matches(row: dict[str, Any], field: str, value: str) -> bool:
    """Exact match of the field's value, ignoring case for email."""
    actual = _field(row, field)
    if actual is _MISSING:
        return False
    if field == "email":
        return str(actual).casefold() == value.casefold()
    return str(actual) == value


def _whole_param(request: Request, name: str, default: int) -> int:
    try:
        return int(request.query.get(name, default))
    except ValueError:
        raise Refusal(error(400, f"{name} must be a whole number.")) from None


def _is_date(text: str) -> bool:
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return len(text) == 10


def _base(request: Request) -> str:
    return f"{request.origin}/economic"


ROUTES = [
    route("GET", r"/economic/self", _self),
    route("GET", r"/economic/customers", partial(_list, "customers")),
    route("POST", r"/economic/customers", _create_customer),
    route("GET", r"/economic/customers/([^/]+)", partial(_get, "customers")),
    route("GET", r"/economic/products", partial(_list, "products")),
    route("POST", r"/economic/products", _create_product),
    route("GET", r"/economic/products/([^/]+)", partial(_get, "products")),
    route("GET", r"/economic/invoices/drafts", partial(_list, "drafts")),
    route("POST", r"/economic/invoices/drafts", partial(_create_document, "drafts")),
    route("GET", r"/economic/invoices/drafts/([^/]+)", partial(_get, "drafts")),
    route("PUT", r"/economic/invoices/drafts/([^/]+)", partial(_replace_document, "drafts")),
    route("DELETE", r"/economic/invoices/drafts/([^/]+)", _delete_draft),
    route("GET", r"/economic/invoices/booked", partial(_list, "booked")),
    route("POST", r"/economic/invoices/booked", _book),
    route("GET", r"/economic/invoices/booked/([^/]+)", partial(_get, "booked")),
    route("GET", r"/economic/orders/drafts", partial(_list, "orders")),
    route("POST", r"/economic/orders/drafts", partial(_create_document, "orders")),
    route("GET", r"/economic/orders/drafts/([^/]+)", partial(_get, "orders")),
    route("PUT", r"/economic/orders/drafts/([^/]+)", partial(_replace_document, "orders")),
]
