"""The fake e-conomic REST API (restapi.e-conomic.com), served under /economic/: the chart of a Danish agreement
(VAT zones, VAT accounts, accounts, product groups and their sales accounts, layouts, payment terms, customer
groups, units, currencies), its customers and products, draft and booked invoices, and order drafts.

It refuses what the real API refuses and offers what it offers, after the official documentation (the
e-conomic/slate source; the § numbers are those of the digest of it the sandbox was built from):

- Credentials (§1.1): X-AppSecretToken and X-AgreementGrantToken must be the sandbox's own (by default
  `sandbox-app-secret` and `sandbox-grant`), or the app's secret token with a grant token the agreement gave the
  app on its request access page (below), else 401. The documented demo tokens (`demo` and `demo`) read the same
  books, but "when using the demo integration, you can only use the GET http method": any other is 403.
- Granting access (e-conomic's grant flow, secure.e-conomic.com/secure/api1/requestaccess.aspx, here at
  /economic/secure/api1/requestaccess.aspx): GET with `appPublicToken` (the sandbox's app: `sandbox-app-public`,
  whose secret token is the configured one; another is refused, 400) and `redirectUrl` (optional, http(s)) shows
  "Add IEX to Sandbox ApS?" with Add app and Cancel. Add app POSTs back and is redirected to redirectUrl with
  `token=<a new agreement grant token>` added to its query (without a redirectUrl the page shows the token to
  copy). Cancel goes to the agreement's apps page (/economic/settings/extensions/apps).
- Verbs (§1.2): POST creates at a collection: 201, the resource in the body and a Location header. PUT replaces
  the whole resource. There is no PATCH: a method a path does not support is 405. A POST or PUT must be sent as
  Content-Type: application/json (a charset is fine), else 415.
- Errors (§1.7): every error has `message`, `errorCode`, `developerHint`, `logId` (a uuid4), `httpStatusCode`
  and `logTime`; a validation failure adds `errors`, which mirrors the request: each failing property becomes
  {"errors": [{errorCode, message, value, developerHint}]}, and an array a list of objects with `arrayIndex`.
- Nulls (§0 rule 3) anywhere in a body are refused (400). False booleans are left out of responses (§0 rule 4).
- Two decimals (§1.7, E04740): unitNetPrice may have at most two decimals. The docs state no other precision
  rule (§8.15); the sandbox applies the same one to quantity, discountPercentage, salesPrice, costPrice and
  recommendedPrice.
- Ids in URLs (§1.6) are self-link encoded: `_0_` for `<` ... `_13_` for `+` (`_8_` for `_`, `_9_` for a space),
  other characters percent-encoded. A path holding a raw character that should have been `_N_`-encoded (a `_`,
  or a space or `/` sent as %20 or %2F) finds nothing (404).
- Collections (§1.3): skippages and pagesize (default 20, at most 1000), a `pagination` object whose nextPage is
  there only while more pages remain. Filters (§1.4): $eq: $ne: $gt: $gte: $lt: $lte: $like: (`*` wildcards,
  else a contains match), $and: $or: and parentheses, $in:[..] and $nin:[..] (numeric properties, at most 200
  values), $null:, the escapes $$ $( $) $* $, $[ $]; strings compare case-insensitively, numbers as numbers.
  Filtering on a property the resource does not list as filterable (§2.4, §2.8, §3, §5.4, §6) is 400.
- Required properties and limits: drafts and orders §2.2 and §2.3, customers §6, products §3. References
  (§1.8) hold an id or a self link; none is E04500, one to nothing is E06000 "<property> does not exist.".
- VAT (§4): a line's VAT is its net times the rate of the VAT account of the sales account its product's group
  has for the document's recipient.vatZone (0 when that account has no VAT account), rounded per line; the net
  is round(quantity * unitNetPrice * (1 - discountPercentage / 100), 2). The totals are in the document's
  currency and, through exchangeRate (the price of 100 units in DKK, §7; absent: a fixed "daily rate"), in DKK.
- Booking (§2.7): POST /invoices/booked {"draftInvoice": {"draftInvoiceNumber": n}} turns the draft into a
  booked invoice (numbered from 10001, or bookWithNumber) whose lines carry totalNetAmount, vatRate and
  vatAmount; the draft is gone. A credit note is an invoice with negative quantities (§2.9).
"""

from __future__ import annotations

import copy
import html
import json
import re
import secrets
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from functools import partial
from typing import Any, NoReturn, cast
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

from sandbox.common import Refusal, Request, Response, html_page, money
from sandbox.orders import CATALOGUE

# --- the agreement's chart: a small, realistic Danish one --------------------------------------------------------

BASE_CURRENCY = "DKK"
SELF = {
    "agreementNumber": 654321,
    "agreementType": {"agreementTypeNumber": 1, "name": "denmark"},
    "company": {
        "name": "Sandbox ApS",
        "vatNumber": "DK12345678",
        "addressLine1": "Sandkassen 1",
        "city": "Aarhus",
    },
    "settings": {"baseCurrency": BASE_CURRENCY},
    "userName": "sandbox",
}
CURRENCIES = [  # code, name, ISO 4217 number, the sandbox's fixed "daily rate": DKK for 100 units (§7)
    ("DKK", "Danske kroner", "208", Decimal("100")),
    ("EUR", "Euro", "978", Decimal("746.00")),
    ("USD", "Amerikanske dollar", "840", Decimal("690.00")),
    ("SEK", "Svenske kroner", "752", Decimal("64.00")),
    ("NOK", "Norske kroner", "578", Decimal("63.00")),
    ("GBP", "Britiske pund", "826", Decimal("870.00")),
]
# The docs list no zones (§5.1); these are the ones commonly observed.
VAT_ZONES = [  # vatZoneNumber, name, enabledForCustomer, enabledForSupplier
    (1, "Domestic", True, True),
    (2, "EU", True, True),
    (3, "Abroad", True, True),
    (4, "Domestic exempt", True, False),
]
VAT_TYPES = [(1, "Salgsmoms"), (2, "Købsmoms")]  # vatTypeNumber, name (the docs list none, §5.3)
VAT_ACCOUNTS = [  # vatCode, name, ratePercentage, the account the VAT is posted to, vatTypeNumber
    ("U25", "Udgående moms", Decimal("25"), 7700, 1),
    ("I25", "Indgående moms", Decimal("25"), 7710, 2),
]
ACCOUNTS = [  # accountNumber, name, accountType (§5.4 enum), debitCredit, vatCode or None
    (1000, "Omsætning", "heading", "credit", None),
    (1010, "Salg af varer/ydelser m/moms", "profitAndLoss", "credit", "U25"),
    (1020, "Salg af varer/ydelser u/moms", "profitAndLoss", "credit", None),
    (1030, "Salg af varer/ydelser til EU", "profitAndLoss", "credit", None),
    (1040, "Salg af varer/ydelser til udlandet", "profitAndLoss", "credit", None),
    (1050, "Salg af ydelser til udlandet", "profitAndLoss", "credit", None),
    (1310, "Varekøb", "profitAndLoss", "debit", "I25"),
    (5600, "Debitorer", "status", "debit", None),
    (7300, "Skyldig salgsskat", "status", "credit", None),  # foreign sales tax collected for other states
    (7700, "Salgsmoms", "status", "credit", None),
    (7710, "Købsmoms", "status", "debit", None),
]
PRODUCT_GROUPS = [  # productGroupNumber, name, sales account for VAT zones 1, 2, 3 and 4
    (1, "Varer m/moms", (1010, 1030, 1040, 1020)),
    (2, "Varer u/moms", (1020, 1030, 1040, 1020)),
    (3, "Salgsskat (udenlandsk)", (7300, 7300, 7300, 7300)),
    (4, "Ydelser", (1010, 1030, 1050, 1020)),
]
LAYOUTS = [(19, "Faktura")]  # layoutNumber, name
PAYMENT_TERMS = [(1, "Netto 8 dage", "net", 8)]  # paymentTermsNumber, name, paymentTermsType, daysOfCredit
CUSTOMER_GROUPS = [(1, "Danske kunder", 5600), (2, "Udenlandske kunder", 5600)]  # number, name, debtor account
UNITS = [(1, "stk.")]  # unitNumber, name
SERVICE_PRODUCTS = [  # productNumber, name, net sales price; all in group 1 (next to the shop's catalogue)
    ("SHIPPING", "Fragt", Decimal("39.20")),
    ("FEE", "Gebyr", Decimal("0.00")),
    ("DISCOUNT", "Rabat", Decimal("0.00")),
    ("MISC", "Diverse", Decimal("0.00")),
]

# --- codes, limits and encodings ----------------------------------------------------------------------------------

DEMO_TOKENS = ("demo", "demo")
APP_PUBLIC_TOKEN = "sandbox-app-public"  # noqa: S105  (IEX's app: the sandbox's well-known demo credentials)
APP_NAME = "IEX"
ZERO, HUNDRED = Decimal("0.00"), Decimal("100")
DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE = 20, 1000
MAX_LIST_VALUES = 200  # in one $in: or $nin:
FIRST_BOOKED_NUMBER = 10001
# Documented error codes (§1.7). The docs name none for the other validation failures (a property missing, of
# the wrong type or too long, a number in use, a bad filter): the sandbox answers E04300 for them all.
NOT_FOUND, SCALE, NO_IDENTIFIER, QUANTITY_REQUIRED, INVALID = "E06000", "E04740", "E04500", "E04730", "E04300"
VALIDATION_MESSAGE = "Validation error."  # verbatim, §1.7
VALIDATION_HINT = "Inspect validation errors and correct your request."
CHECK_DATA, CHECK_FORMAT = "Please check your request data.", "Please check the format of your data."
HINTS = {
    400: CHECK_DATA,
    401: "Send your app's X-AppSecretToken and the agreement's X-AgreementGrantToken. "
    "X-AppSecretToken: demo with X-AgreementGrantToken: demo reads the demo agreement (GET only).",
    403: "The grant does not allow this request.",
    404: "You should never need to concatenate any urls. The API should provide you with the links needed.",
    405: "Not all endpoints support all http methods. There is no PATCH: PUT the full resource instead.",
    415: "We're a JSON based api: send Content-Type: application/json.",
}
SELF_LINK_CODES = {  # §1.6: replaced one character at a time, in a single pass
    "<": "_0_",
    ">": "_1_",
    "*": "_2_",
    "%": "_3_",
    ":": "_4_",
    "&": "_5_",
    "/": "_6_",
    "\\": "_7_",
    "_": "_8_",
    " ": "_9_",
    "?": "_10_",
    ".": "_11_",
    "#": "_12_",
    "+": "_13_",
}
SELF_LINK_CHARACTERS = {code: character for character, code in SELF_LINK_CODES.items()}
FILTER_OPERATORS = ("$eq:", "$ne:", "$gte:", "$gt:", "$lte:", "$lt:", "$like:", "$in:", "$nin:")
FILTER_ESCAPES = "$()*,[]"  # written $$, $(, $), $*, $,, $[, $] in filter values (§1.4)
FILTER_RESERVED = "()*,[]"  # must be escaped in a value (the `*` of $like: and the brackets of $in: aside)
_MISSING: Any = object()

# --- what each resource accepts (its schema) and what it can be filtered by --------------------------------------

TEXT, INTEGER, NUMBER, DATE, BOOLEAN = "text", "integer", "number", "date", "boolean"


@dataclass(frozen=True)
class Field:
    """A plain property: its kind and limits. `known_in` names the table a text value must be a key of."""

    kind: str
    required: bool = False
    max_length: int | None = None
    min_length: int = 0
    two_decimals: bool = False
    choices: tuple[str, ...] = ()
    minimum: int | None = None
    maximum: int | None = None
    positive: bool = False
    known_in: str | None = None


@dataclass(frozen=True)
class Ref:
    """A reference to another resource (§1.8): an object with that resource's id or its self link."""

    table: str
    required: bool = False
    max_length: int | None = None  # of a text id


Schema = dict[str, Field | Ref]  # by dotted path

CUSTOMER_SCHEMA: Schema = {  # §6; vatNumber is "only available to agreements in Sweden, UK, ...": ignored here
    "customerNumber": Field(INTEGER, minimum=1, maximum=999_999_999),
    "name": Field(TEXT, required=True, min_length=1, max_length=255),
    "currency": Field(TEXT, required=True, known_in="currencies"),
    "customerGroup": Ref("customer-groups", required=True),
    "paymentTerms": Ref("payment-terms", required=True),
    "vatZone": Ref("vat-zones", required=True),
    "layout": Ref("layouts"),
    "address": Field(TEXT, max_length=510),
    "zip": Field(TEXT, max_length=30),
    "city": Field(TEXT, max_length=50),
    "country": Field(TEXT, max_length=50),
    "email": Field(TEXT, max_length=255),
    "telephoneAndFaxNumber": Field(TEXT, max_length=255),
    "mobilePhone": Field(TEXT, max_length=50),
    "website": Field(TEXT, max_length=255),
    "corporateIdentificationNumber": Field(TEXT, max_length=40),
    "ean": Field(TEXT, max_length=40),
    "publicEntryNumber": Field(TEXT, max_length=50),
    "pNumber": Field(TEXT, min_length=10, max_length=10),
    "barred": Field(BOOLEAN),
    "creditLimit": Field(NUMBER),
}
PRODUCT_SCHEMA: Schema = {  # §3; inventory.available and inStock are read-only (kept by the sandbox)
    "productNumber": Field(TEXT, required=True, min_length=1, max_length=25),
    "name": Field(TEXT, required=True, min_length=1, max_length=300),
    "description": Field(TEXT, max_length=500),
    "salesPrice": Field(NUMBER, two_decimals=True),
    "costPrice": Field(NUMBER, two_decimals=True),
    "recommendedPrice": Field(NUMBER, two_decimals=True),
    "barCode": Field(TEXT, max_length=50),
    "barred": Field(BOOLEAN),
    "productGroup": Ref("product-groups", required=True),
    "unit": Ref("units"),
    "inventory.packageVolume": Field(NUMBER),
    "inventory.recommendedCostPrice": Field(NUMBER),
}
# §2.2, for draft invoices and orders alike. References to what the sandbox does not have (contacts, employees,
# projects, delivery locations) are left out: they are ignored, like the read-only totals a client sends back.
DOCUMENT_SCHEMA: Schema = {
    "date": Field(DATE, required=True),
    "currency": Field(TEXT, required=True, known_in="currencies"),
    "exchangeRate": Field(NUMBER, positive=True, maximum=999_999_999_999),  # positive: assumed
    "dueDate": Field(DATE),
    "customer": Ref("customers", required=True),
    "paymentTerms": Ref("payment-terms", required=True),
    "layout": Ref("layouts", required=True),
    "recipient.name": Field(TEXT, required=True, max_length=250),
    "recipient.address": Field(TEXT, max_length=250),
    "recipient.zip": Field(TEXT, max_length=50),
    "recipient.city": Field(TEXT, max_length=250),
    "recipient.country": Field(TEXT, max_length=50),
    "recipient.ean": Field(TEXT, max_length=13),
    "recipient.publicEntryNumber": Field(TEXT, max_length=40),
    "recipient.mobilePhone": Field(TEXT),
    "recipient.nemHandelType": Field(TEXT, choices=("ean", "corporateIdentificationNumber", "pNumber")),
    "recipient.vatZone": Ref("vat-zones", required=True),
    "delivery.address": Field(TEXT, max_length=255),
    "delivery.zip": Field(TEXT, max_length=30),
    "delivery.city": Field(TEXT, max_length=50),
    "delivery.country": Field(TEXT, max_length=50),
    "delivery.deliveryTerms": Field(TEXT, max_length=100),
    "delivery.deliveryDate": Field(DATE),
    "notes.heading": Field(TEXT, max_length=250),
    "notes.textLine1": Field(TEXT, max_length=1000),
    "notes.textLine2": Field(TEXT, max_length=1000),
    "references.other": Field(TEXT, max_length=250),
}
LINE_SCHEMA: Schema = {  # §2.3; product, and with it description and quantity, are required: see _lines
    "lineNumber": Field(INTEGER, minimum=1),
    "sortKey": Field(INTEGER, minimum=1),
    "product": Ref("products", max_length=25),
    "description": Field(TEXT, max_length=2500),
    "quantity": Field(NUMBER, two_decimals=True),
    "unitNetPrice": Field(NUMBER, two_decimals=True),
    "discountPercentage": Field(NUMBER, two_decimals=True, minimum=0, maximum=100),  # a percentage: assumed
    "unitCostPrice": Field(NUMBER),
    "unit": Ref("units"),
}
BOOKING_SCHEMA: Schema = {  # §2.7
    "draftInvoice": Ref("drafts", required=True),
    "bookWithNumber": Field(INTEGER, minimum=1, maximum=999_999_999),
    "sendBy": Field(TEXT, choices=("none", "ean")),
}

Filters = dict[str, str]  # filterable property -> its kind (TEXT, NUMBER or BOOLEAN; dates compare as text)


def _kinds(numbers: str = "", texts: str = "", booleans: str = "") -> Filters:
    """Filterable properties from space-separated names, by kind."""
    return {
        **dict.fromkeys(numbers.split(), NUMBER),
        **dict.fromkeys(texts.split(), TEXT),
        **dict.fromkeys(booleans.split(), BOOLEAN),
    }


CUSTOMER_FILTERS = _kinds(  # §6
    numbers="balance creditLimit customerNumber",
    texts="address city corporateIdentificationNumber country currency ean email lastUpdated name "
    "publicEntryNumber telephoneAndFaxNumber vatNumber website zip",
    booleans="barred",
)
PRODUCT_FILTERS = _kinds(  # §3
    numbers="costPrice departmentalDistribution.departmentalDistributionNumber inventory.grossWeight "
    "inventory.netWeight inventory.packageVolume inventory.recommendedCostPrice productGroup.productGroupNumber "
    "recommendedPrice salesPrice unit.unitNumber",
    texts="barCode description lastUpdated name productNumber",
    booleans="barred",
)
DOCUMENT_FILTERS = _kinds(  # §2.4, common to drafts, booked invoices and (assumed: the docs list none) orders
    numbers="customer.customerNumber deliveryLocation.deliveryLocationNumber exchangeRate "
    "paymentTerms.paymentTermsNumber references.customerContact.customer.customerNumber "
    "references.salesPerson.employeeNumber references.vendorReference.employeeNumber soap.currentInvoiceHandle.id",
    texts="currency date delivery.address delivery.city delivery.country delivery.deliveryDate "
    "delivery.deliveryTerms delivery.zip notes.heading notes.textLine1 notes.textLine2 recipient.address "
    "recipient.city recipient.country recipient.ean recipient.name recipient.publicEntryNumber recipient.zip "
    "references.other",
)
ACCOUNT_FILTERS = _kinds(  # §5.4
    numbers="accountNumber balance", texts="accountType debitCredit name", booleans="barred blockDirectEntries"
)

Links = dict[str, tuple[str, bool]]  # dotted path ("lines[]" walks a list) -> (table referred to, embedded?)


# --- self links ---------------------------------------------------------------------------------------------------


def encode_id(text: str) -> str:
    """An id as it appears in a URL (§1.6): the listed characters as `_N_`, others percent-encoded if need be."""
    return "".join(SELF_LINK_CODES.get(character) or quote(character, safe="") for character in text)


def decode_id(segment: str) -> str | None:
    """The id a URL path segment names, decoded in a single pass; None when the segment holds a character that
    should have been `_N_`-encoded (a raw `_` not part of a token, or e.g. a space or `/` sent percent-encoded)."""
    decoded = []
    for position, part in enumerate(re.split(r"(_\d+_)", segment)):
        if position % 2:  # a `_N_` token
            if part not in SELF_LINK_CHARACTERS:
                return None
            decoded.append(SELF_LINK_CHARACTERS[part])
        else:
            text = unquote(part)
            if any(character in SELF_LINK_CODES for character in text):
                return None
            decoded.append(text)
    return "".join(decoded)


# --- the books -----------------------------------------------------------------------------------------------------


class _Table:
    """One kind of resource: its rows by id (as text), URL path, id property and how it is shown."""

    def __init__(
        self,
        path: str,
        key: str,
        label: str,
        *,
        rows: list[dict[str, Any]] | None = None,
        numeric: bool = True,
        noun: str = "resources",
        filters: Filters | None = None,
        links: Links | None = None,
        uris: dict[str, str] | None = None,
        first: int = 1,
    ) -> None:
        self.path = path
        self.key = key  # the id property; dotted for the sales accounts (vatZone.vatZoneNumber)
        self.numeric = numeric  # whether ids are integers (else text: product numbers, VAT codes, currencies)
        self.label = label  # e.g. "Draft invoice", for "Draft invoice not found."
        self.noun = noun  # for "Find a list of <noun> at <url>."
        self.filters = filters if filters is not None else {key: NUMBER, "name": TEXT}
        self.links = links or {}
        self.uris = uris or {}  # property -> path below the row's self link (e.g. salesAccounts)
        self.rows: dict[str, dict[str, Any]] = {str(_field(row, key)): row for row in rows or []}
        self.next_number = first

    def url(self, base: str, ident: Any) -> str:
        return f"{base}/{self.path}/{encode_id(str(ident))}"

    def find(self, ident: str) -> dict[str, Any] | None:
        return self.rows.get(ident)

    def get(self, ident: str) -> dict[str, Any]:
        """The row, or a 404 refusal."""
        row = self.rows.get(ident)
        if row is None:
            raise Refusal(error(404, f"{self.label} not found."))
        return row

    def insert(self, document: dict[str, Any], number: int | None = None) -> dict[str, Any]:
        """Store `document` under `number`, or else the next free number, its id first."""
        if number is None:
            while str(self.next_number) in self.rows:
                self.next_number += 1
            number = self.next_number
        self.next_number = max(self.next_number, number + 1)
        row = {self.key: number, **{name: value for name, value in document.items() if name != self.key}}
        self.rows[str(number)] = row
        return row


def _chart() -> list[_Table]:
    """The agreement's read-only tables, from the data at the top of the module."""
    tables = [
        _Table(
            "currencies",
            "code",
            "Currency",
            numeric=False,
            noun="currencies",
            filters={"code": TEXT, "name": TEXT, "isoNumber": TEXT},
            rows=[{"code": code, "name": name, "isoNumber": iso} for code, name, iso, _ in CURRENCIES],
        ),
        _Table(
            "vat-zones",
            "vatZoneNumber",
            "VAT zone",
            noun="VAT zones",
            rows=[
                {
                    "vatZoneNumber": number,
                    "name": name,
                    "enabledForCustomer": customer,
                    "enabledForSupplier": supplier,
                }
                for number, name, customer, supplier in VAT_ZONES
            ],
        ),
        _Table(
            "vat-types",
            "vatTypeNumber",
            "VAT type",
            noun="VAT types",
            rows=[{"vatTypeNumber": number, "name": name} for number, name in VAT_TYPES],
        ),
        _Table(
            "vat-accounts",
            "vatCode",
            "VAT account",
            numeric=False,
            noun="VAT accounts",
            filters={"vatCode": TEXT, "name": TEXT, "ratePercentage": NUMBER, "barred": BOOLEAN},
            links={"account": ("accounts", False), "vatType": ("vat-types", True)},
            rows=[
                {
                    "vatCode": code,
                    "name": name,
                    "ratePercentage": rate,
                    "account": {"accountNumber": account},
                    "vatType": {"vatTypeNumber": vat_type},
                }
                for code, name, rate, account, vat_type in VAT_ACCOUNTS
            ],
        ),
        _Table(
            "accounts",
            "accountNumber",
            "Account",
            noun="accounts",
            filters=ACCOUNT_FILTERS,
            links={"vatAccount": ("vat-accounts", False)},
            rows=[
                {
                    "accountNumber": number,
                    "accountType": account_type,
                    "name": name,
                    "balance": ZERO,
                    "debitCredit": debit_credit,
                    **({"vatAccount": {"vatCode": vat_code}} if vat_code else {}),
                }
                for number, name, account_type, debit_credit, vat_code in ACCOUNTS
            ],
        ),
        _Table(
            "product-groups",
            "productGroupNumber",
            "Product group",
            noun="product groups",
            uris={"salesAccounts": "sales-accounts", "products": "products"},
            rows=[{"productGroupNumber": number, "name": name} for number, name, _ in PRODUCT_GROUPS],
        ),
        _Table(
            "layouts",
            "layoutNumber",
            "Layout",
            noun="layouts",
            rows=[{"layoutNumber": n, "name": name} for n, name in LAYOUTS],
        ),
        _Table(
            "payment-terms",
            "paymentTermsNumber",
            "Payment terms",
            noun="payment terms",
            rows=[
                {"paymentTermsNumber": number, "name": name, "paymentTermsType": kind, "daysOfCredit": days}
                for number, name, kind, days in PAYMENT_TERMS
            ],
        ),
        _Table(
            "customer-groups",
            "customerGroupNumber",
            "Customer group",
            noun="customer groups",
            links={"account": ("accounts", False)},
            rows=[
                {"customerGroupNumber": number, "name": name, "account": {"accountNumber": account}}
                for number, name, account in CUSTOMER_GROUPS
            ],
        ),
        _Table(
            "units",
            "unitNumber",
            "Unit",
            noun="units",
            rows=[{"unitNumber": n, "name": name} for n, name in UNITS],
        ),
    ]
    for number, _, accounts in PRODUCT_GROUPS:  # one entry per VAT zone (§4)
        tables.append(
            _Table(
                f"product-groups/{number}/sales-accounts",
                "vatZone.vatZoneNumber",
                "Sales account",
                filters={"salesAccount.accountNumber": NUMBER},
                links={"salesAccount": ("accounts", True), "vatZone": ("vat-zones", True)},
                rows=[
                    {"salesAccount": {"accountNumber": account}, "vatZone": {"vatZoneNumber": zone}}
                    for zone, account in zip((zone[0] for zone in VAT_ZONES), accounts, strict=True)
                ],
            )
        )
    return tables


def _books() -> list[_Table]:
    """The agreement's own, writable tables, empty but for the products (seeded by EconomicState)."""
    document_links: Links = {
        "customer": ("customers", False),
        "paymentTerms": ("payment-terms", True),
        "layout": ("layouts", False),
        "recipient.vatZone": ("vat-zones", True),
        "lines[].product": ("products", False),
        "lines[].unit": ("units", True),
    }
    return [
        _Table(
            "customers",
            "customerNumber",
            "Customer",
            filters=CUSTOMER_FILTERS,
            links={
                "customerGroup": ("customer-groups", False),
                "paymentTerms": ("payment-terms", False),
                "vatZone": ("vat-zones", False),
                "layout": ("layouts", False),
            },
        ),
        _Table(
            "products",
            "productNumber",
            "Product",
            numeric=False,
            filters=PRODUCT_FILTERS,
            links={"productGroup": ("product-groups", True), "unit": ("units", True)},
        ),
        _Table(
            "invoices/drafts",
            "draftInvoiceNumber",
            "Draft invoice",
            filters={**DOCUMENT_FILTERS, "draftInvoiceNumber": NUMBER},
            links=document_links,
        ),
        _Table(
            "invoices/booked",
            "bookedInvoiceNumber",
            "Booked invoice",
            filters={**DOCUMENT_FILTERS, "bookedInvoiceNumber": NUMBER, "recipient.vatZone.vatZoneNumber": NUMBER},
            links=document_links,
            first=FIRST_BOOKED_NUMBER,
        ),
        _Table(
            "orders/drafts",
            "orderNumber",
            "Order",
            filters={**DOCUMENT_FILTERS, "orderNumber": NUMBER},
            links=document_links,
        ),
    ]


TABLE_NAMES = {"invoices/drafts": "drafts", "invoices/booked": "booked", "orders/drafts": "orders"}


class EconomicState:
    """The agreement's chart and books. Not locked by itself: the server holds its lock around every use."""

    def __init__(self) -> None:
        self.tables = {TABLE_NAMES.get(table.path, table.path): table for table in [*_chart(), *_books()]}
        self.grants: set[str] = set()  # the grant tokens the agreement gave the app on its request access page
        for item in CATALOGUE:
            group = 1 if item.taxable else 2
            price = item.price / Decimal("1.25") if item.taxable else item.price
            self._add_product(item.sku, item.title, group, price, item.stock)
        for number, name, price in SERVICE_PRODUCTS:
            self._add_product(number, name, 1, price, 0)

    def _add_product(self, number: str, name: str, group: int, price: Decimal, stock: int) -> None:
        self.tables["products"].rows[number] = {
            "productNumber": number,
            "name": name,
            "salesPrice": money(price),
            "productGroup": {"productGroupNumber": group},
            "unit": {"unitNumber": 1},
            "inventory": {"available": stock, "inStock": stock},
        }

    def set_available(self, product_number: str, available: int) -> dict[str, Any] | None:
        """Set a product's stock (available and in stock alike): the product, or None when there is none."""
        product = self.tables["products"].rows.get(product_number)
        if product is None:
            return None
        product["inventory"] = {**product.get("inventory", {}), "available": available, "inStock": available}
        return _plain(product)

    def book_draft(self, number: int, base: str) -> dict[str, Any] | None:
        """Book draft `number` as the accountant would in e-conomic: the booked invoice as GET shows it (with self
        links under `base`), or None when there is no such draft. ValueError when it cannot be booked."""
        if self.tables["drafts"].find(str(number)) is None:
            return None
        problems = _booking_problems(self, str(number), None, None)
        if problems:
            raise ValueError(" ".join(problem.message for problem in problems))
        return _plain(self.render("booked", self.book(str(number), None), base))

    def book(self, draft_number: str, book_with: int | None) -> dict[str, Any]:
        """Turn a draft (checked by `_booking_problems`) into a booked invoice; the draft is gone."""
        drafts = self.tables["drafts"]
        draft = {name: value for name, value in drafts.rows.pop(draft_number).items() if name != drafts.key}
        booked = _priced(self, draft, draft["lines"], booked=True)
        booked.update(remainder=booked["grossAmount"], remainderInBaseCurrency=booked["grossAmountInBaseCurrency"])
        return self.tables["booked"].insert(booked, book_with)

    def vat_rate(self, product_number: str, vat_zone: int) -> Decimal:
        """The VAT % of a line with that product for a recipient in that zone (§4): product -> its group -> the
        group's sales account for the zone -> that account's VAT account -> its rate; 0 without a VAT account."""
        product = self.tables["products"].rows[product_number]
        group = product["productGroup"]["productGroupNumber"]
        entry = self.tables[f"product-groups/{group}/sales-accounts"].rows.get(str(vat_zone))
        if entry is None:  # no sales account for the zone: e-conomic cannot book the line
            raise Refusal(
                error(400, f"Product group {group} has no sales account for VAT zone {vat_zone}.", INVALID)
            )
        account = self.tables["accounts"].rows[str(entry["salesAccount"]["accountNumber"])]
        if "vatAccount" not in account:
            return Decimal("0")
        rate: Decimal = self.tables["vat-accounts"].rows[account["vatAccount"]["vatCode"]]["ratePercentage"]
        return rate

    def render(self, name: str, row: dict[str, Any], base: str, embed: bool = True) -> dict[str, Any]:
        """The row as the API shows it: references with their self links (chart entities embedded whole, one
        level deep), its own links and self, and no false booleans."""
        table = self.tables[name]
        shown = copy.deepcopy(row)
        for path, (target, embedded) in table.links.items():
            other = self.tables[target]
            for parent, key in _each(shown, path):
                reference = parent[key]
                ident = reference.get(other.key)
                found = other.find(str(ident))
                if embed and embedded and found is not None:
                    parent[key] = self.render(target, found, base, embed=False)
                else:
                    parent[key] = {**reference, "self": other.url(base, ident)}
        own = table.url(base, _field(row, table.key))
        shown.update({prop: f"{own}/{suffix}" for prop, suffix in table.uris.items()})
        shown["self"] = own
        return _without_false(shown)

    def summary(self) -> dict[str, list[dict[str, Any]]]:
        """The books as stored (JSON-safe), for /_sandbox/state."""
        return {
            name: _plain(list(self.tables[name].rows.values()))
            for name in ("customers", "products", *TABLE_NAMES.values())
        }


# --- requests: credentials, routing, media types ---------------------------------------------------------------------


def handle(books: EconomicState, request: Request, app_secret_token: str, agreement_grant_token: str) -> Response:
    """Answer a request under /economic/: the pages where the merchant grants the app access, or a REST request
    made with the agreement's tokens (the app's secret token with the configured grant or one the agreement gave),
    or the demo tokens (GET)."""
    for pattern, page in PAGES:
        if pattern.fullmatch(request.path):
            return page(books, request)
    tokens = (request.headers.get("x-appsecrettoken"), request.headers.get("x-agreementgranttoken"))
    granted = tokens[0] == app_secret_token and tokens[1] in books.grants
    if tokens == DEMO_TOKENS:  # the demo agreement, even were the sandbox's own tokens set to demo as well
        if request.method != "GET":
            return error(
                403,
                "The demo agreement is read-only: when using the demo integration, you can only use the GET "
                "http method (GET only).",
                hint="Use the sandbox agreement's own tokens to write.",
            )
    elif tokens != (app_secret_token, agreement_grant_token) and not granted:
        return error(401, "Unauthorized")
    try:
        return _route(books, request)
    except Refusal as refusal:
        return refusal.response


def _route(books: EconomicState, request: Request) -> Response:
    path = request.path.removeprefix("/economic")
    if len(path) > 1:
        path = path.rstrip("/")
    for pattern, views in ROUTES:
        match = pattern.fullmatch(path)
        if match is None:
            continue
        view = views.get(request.method)
        if view is None:
            allowed = ", ".join(sorted(views))
            response = error(405, f"The {request.method} method is not allowed on {path} (allowed: {allowed}).")
            response.headers["Allow"] = allowed
            return response
        if request.method in ("POST", "PUT") and not _is_json(request):
            return error(415, "Unsupported Media Type: the body must be sent as Content-Type: application/json.")
        ids = [decode_id(group) for group in match.groups()]
        if any(ident is None for ident in ids):
            return error(404, "Not found: an id in the path is not self-link encoded.")
        return view(books, request, *ids)
    return error(404, "Not found.")


def _is_json(request: Request) -> bool:
    media_type = request.headers.get("content-type", "").split(";", 1)[0]
    return media_type.strip().lower() == "application/json"


def _base(request: Request) -> str:
    return f"{request.origin}/economic"


# --- responses ---------------------------------------------------------------------------------------------------------


def error(
    status: int, message: str, code: str | None = None, errors: Any = None, hint: str | None = None
) -> Response:
    """An error in the documented shape (§1.7); the errorCode defaults to E0{status}0 (e.g. E04010 for 401)."""
    body: dict[str, Any] = {
        "message": message,
        "errorCode": code or f"E0{status}0",
        "developerHint": hint or HINTS.get(status, "Either try again, or contact our support."),
        "logId": str(uuid.uuid4()),
        "httpStatusCode": status,
    }
    if errors is not None:
        body["errors"] = errors
    body["logTime"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return _json(status, body)


def _json(status: int, payload: Any, headers: dict[str, str] | None = None) -> Response:
    body = json.dumps(payload, default=_json_number).encode()
    return Response(status, body, {"Content-Type": "application/json", **(headers or {})})


def _json_number(value: Any) -> float:
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(f"{value!r} is not JSON")


def _plain(value: Any) -> Any:
    """`value` with its Decimals as floats: what a JSON client would see."""
    return json.loads(json.dumps(value, default=_json_number))


def _without_false(value: Any) -> Any:
    """`value` without the false booleans of its objects (§0 rule 4: a false boolean is left out)."""
    if isinstance(value, dict):
        return {name: _without_false(child) for name, child in value.items() if child is not False}
    if isinstance(value, list):
        return [_without_false(child) for child in value]
    return value


def _show(books: EconomicState, request: Request, name: str, row: dict[str, Any], status: int = 200) -> Response:
    """The row as the API shows it; a 201 carries its self link as Location (§1.2)."""
    shown = books.render(name, row, _base(request))
    return _json(status, shown, {"Location": shown["self"]} if status == 201 else None)


# --- validation --------------------------------------------------------------------------------------------------------


@dataclass
class Problem:
    """One failing property, at its path in the request (a line is ("lines", its index, ...))."""

    path: tuple[str | int, ...]
    code: str
    message: str
    value: Any = _MISSING
    hint: str = CHECK_DATA

    def entry(self) -> dict[str, Any]:
        shown: dict[str, Any] = {"errorCode": self.code, "message": self.message}
        if self.value is not _MISSING:
            shown["value"] = self.value
        shown["developerHint"] = self.hint
        return shown


def _invalid(problems: list[Problem], message: str = VALIDATION_MESSAGE, hint: str = VALIDATION_HINT) -> Refusal:
    return Refusal(error(400, message, INVALID, _error_tree(problems), hint))


def _error_tree(problems: list[Problem]) -> dict[str, Any]:
    """The `errors` of §1.7: the request's shape, each failing property as {"errors": [...]}, each failing array
    item as an object with its `arrayIndex`, in a list in the array's place."""
    tree: dict[str, Any] = {}
    for problem in problems:
        node = tree
        path = problem.path
        for depth, part in enumerate(path):
            if isinstance(part, int):
                continue  # the item was chosen with its array, just before
            following = path[depth + 1] if depth + 1 < len(path) else None
            if isinstance(following, int):
                items = node.setdefault(part, [])
                found = [item for item in items if item["arrayIndex"] == following]
                if not found:
                    found = [{"arrayIndex": following}]
                    items.append(found[0])
                    items.sort(key=lambda item: item["arrayIndex"])
                node = found[0]
            else:
                node = node.setdefault(part, {})
        node.setdefault("errors", []).append(problem.entry())
    return tree


def _body(request: Request) -> dict[str, Any]:
    """The request's JSON object, its numbers with a decimal point as exact Decimals; refused (400) when it is
    not an object or holds a null anywhere."""
    if not request.body.strip():
        raise Refusal(error(400, "The body must be a JSON object; it is empty."))
    try:
        body = json.loads(request.body, parse_float=Decimal, parse_constant=_no_constant)
    except ValueError as exc:
        raise Refusal(error(400, f"The body is not valid JSON: {exc}")) from None
    if not isinstance(body, dict):
        raise Refusal(error(400, "The body must be a JSON object."))
    null = _null_path(body, ())
    if null is not None:
        problem = Problem(
            null,
            INVALID,
            f"{null[-1]} cannot be null: leave the property out instead.",
            hint="To null a property you must exclude it from your JSON on the write operation.",
        )
        raise _invalid([problem], f"Null values are not allowed: {_dotted(null)}")
    return body


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _null_path(value: Any, path: tuple[str | int, ...]) -> tuple[str | int, ...] | None:
    """Where the first null inside `value` is, e.g. ("lines", 1, "description"); None when there is none."""
    if value is None:
        return path
    children: list[tuple[str | int, Any]] = []
    if isinstance(value, dict):
        children = list(value.items())
    elif isinstance(value, list):
        children = list(enumerate(value))
    for key, child in children:
        found = _null_path(child, (*path, key))
        if found is not None:
            return found
    return None


def _dotted(path: tuple[str | int, ...]) -> str:
    """("lines", 1, "description") as lines[1].description."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else part
    return text


def _validate(
    books: EconomicState, base: str, body: dict[str, Any], schema: Schema, at: tuple[str | int, ...] = ()
) -> tuple[dict[str, Any], list[Problem]]:
    """The body's properties that the schema knows, checked (references as {id property: id}), and the problems.
    Properties the schema does not know (read-only ones sent back, say) are ignored."""
    clean: dict[str, Any] = {}
    problems: list[Problem] = []
    reported: set[tuple[str | int, ...]] = set()  # objects already found missing or not objects
    for dotted, spec in schema.items():
        *parents, name = dotted.split(".")
        node: Any = body
        for depth, parent in enumerate(parents):
            path = (*at, *parents[: depth + 1])
            child = node.get(parent, _MISSING)
            if child is _MISSING or not isinstance(child, dict):
                if path not in reported and (child is not _MISSING or spec.required):
                    reported.add(path)
                    problems.append(
                        _required(path) if child is _MISSING else _wrong_type(path, "an object", child)
                    )
                node = _MISSING
                break
            node = child
        if node is _MISSING:
            continue
        path = (*at, *parents, name)
        value = node.get(name, _MISSING)
        if value is _MISSING:
            if spec.required:
                problems.append(_required(path))
            continue
        checked = (
            _check_ref(books, base, spec, path, value)
            if isinstance(spec, Ref)
            else _check(books, base, spec, path, value)
        )
        if isinstance(checked, Problem):
            problems.append(checked)
        else:
            _put(clean, [*parents, name], checked)
    return clean, problems


def _check(books: EconomicState, base: str, field: Field, path: tuple[str | int, ...], value: Any) -> Any:
    """The value if it fits the field, else its Problem."""
    name = str(path[-1])
    if field.kind in (INTEGER, NUMBER):
        if isinstance(value, bool) or not isinstance(value, int if field.kind == INTEGER else int | Decimal):
            return _wrong_type(path, "an integer" if field.kind == INTEGER else "a number", value)
        number = Decimal(value)
        if field.two_decimals and _decimal_places(number) > 2:
            message = f"{name} scale cannot be greater then two decimal places."  # verbatim, typo included (§1.7)
            return Problem(path, SCALE, message, value, CHECK_FORMAT)
        if field.minimum is not None and number < field.minimum:
            return Problem(path, INVALID, f"{name} must be at least {field.minimum}.", value)
        if field.maximum is not None and number > field.maximum:
            return Problem(path, INVALID, f"{name} must be at most {field.maximum}.", value)
        if field.positive and number <= 0:
            return Problem(path, INVALID, f"{name} must be greater than 0.", value)
    elif field.kind == BOOLEAN:
        if not isinstance(value, bool):
            return _wrong_type(path, "a boolean", value)
    elif not isinstance(value, str):
        return _wrong_type(path, "a date (YYYY-MM-DD)" if field.kind == DATE else "a string", value)
    elif field.kind == DATE and not _is_date(value):
        return Problem(path, INVALID, f"{name} must be a date (YYYY-MM-DD).", value, CHECK_FORMAT)
    elif field.max_length is not None and len(value) > field.max_length:
        return Problem(path, INVALID, f"{name} may be at most {field.max_length} characters long.", value)
    elif len(value) < field.min_length:
        return Problem(path, INVALID, f"{name} must be at least {field.min_length} characters long.", value)
    elif field.choices and value not in field.choices:
        return Problem(path, INVALID, f"{name} must be one of: {', '.join(field.choices)}.", value)
    elif field.known_in and books.tables[field.known_in].find(value) is None:
        return _not_found(books, base, field.known_in, path, value)
    return value


def _decimal_places(number: Decimal) -> int:
    """How many decimals a number really has: 10.10 has one (trailing zeros do not count), 10.123 three."""
    exponent = number.normalize().as_tuple().exponent
    return max(-exponent, 0) if isinstance(exponent, int) else 0


def _check_ref(books: EconomicState, base: str, ref: Ref, path: tuple[str | int, ...], value: Any) -> Any:
    """{id property: id} if the reference names an existing resource by id or self link, else its Problem."""
    table = books.tables[ref.table]
    name = str(path[-1])
    if not isinstance(value, dict):
        return _wrong_type(path, "an object", value)
    ident = value.get(table.key, _MISSING)
    if ident is _MISSING:
        link = value.get("self", _MISSING)
        if link is _MISSING:
            message = f"No identifiers present on {name}. Please include either a self link or a {table.key}."
            return Problem(
                path, NO_IDENTIFIER, message, hint=f"Find a list of {table.noun} at {base}/{table.path}."
            )
        if not isinstance(link, str):
            return _wrong_type((*path, "self"), "a string", link)
        ident = _id_from_self(link, table)
        if ident is None:
            return _not_found(books, base, ref.table, path, link)
    elif isinstance(ident, bool) or not isinstance(ident, int if table.numeric else str):
        return _wrong_type((*path, table.key), "an integer" if table.numeric else "a string", ident)
    elif ref.max_length is not None and len(str(ident)) > ref.max_length:
        message = f"{table.key} may be at most {ref.max_length} characters long."
        return Problem((*path, table.key), INVALID, message, ident)
    row = table.find(str(ident))
    if row is None:
        return _not_found(books, base, ref.table, path, ident)
    return {table.key: row[table.key]}


def _id_from_self(link: str, table: _Table) -> str | None:
    """The id a self link names, when it is a link into `table` (any host: the sandbox has many addresses)."""
    prefix = f"/economic/{table.path}/"
    path = urlsplit(link).path
    if not path.startswith(prefix) or "/" in path[len(prefix) :]:
        return None
    return decode_id(path[len(prefix) :])


def _required(path: tuple[str | int, ...]) -> Problem:
    return Problem(path, INVALID, f"Property {path[-1]} is required.")


def _wrong_type(path: tuple[str | int, ...], expected: str, value: Any) -> Problem:
    return Problem(path, INVALID, f"Property {path[-1]} must be {expected}.", value, CHECK_FORMAT)


def _not_found(books: EconomicState, base: str, table: str, path: tuple[str | int, ...], value: Any) -> Problem:
    """E06000 as in the docs' example: "customer does not exist.", with where to find the existing ones."""
    noun, collection = books.tables[table].noun, books.tables[table].path
    return Problem(
        path, NOT_FOUND, f"{path[-1]} does not exist.", value, f"Find a list of {noun} at {base}/{collection}."
    )


def _put(document: dict[str, Any], parts: list[str], value: Any) -> None:
    for part in parts[:-1]:
        document = document.setdefault(part, {})
    document[parts[-1]] = value


def _field(document: Any, dotted: str) -> Any:
    """The value at a dotted path, or _MISSING."""
    value = document
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            return _MISSING
        value = value[part]
    return value


def _each(document: dict[str, Any], dotted: str) -> Iterator[tuple[dict[str, Any], str]]:
    """(object, key) for every object property a dotted path reaches; `name[]` walks the items of a list."""
    *parents, last = dotted.split(".")
    nodes = [document]
    for part in parents:
        if part.endswith("[]"):
            nodes = [item for node in nodes for item in node.get(part[:-2], []) if isinstance(item, dict)]
        else:
            nodes = [node[part] for node in nodes if isinstance(node.get(part), dict)]
    for node in nodes:
        if isinstance(node.get(last), dict):
            yield node, last


def _is_date(text: str) -> bool:
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return len(text) == 10


def _today() -> str:
    """lastUpdated: a full-date per the schemas (§3, §6)."""
    return datetime.now(UTC).date().isoformat()


# --- documents: draft invoices, orders, booking ------------------------------------------------------------------------


def _document(books: EconomicState, request: Request) -> dict[str, Any]:
    """The request's draft invoice or order, validated, its lines numbered and its totals computed."""
    base = _base(request)
    body = _body(request)
    document, problems = _validate(books, base, body, DOCUMENT_SCHEMA)
    lines, line_problems = _lines(books, base, body.get("lines", []))
    if problems or line_problems:
        raise _invalid(problems + line_problems)
    return _priced(books, document, lines)


def _lines(books: EconomicState, base: str, value: Any) -> tuple[list[dict[str, Any]], list[Problem]]:
    """The checked lines and their problems. The docs require quantity (E04730) and description when a line has a
    product; the sandbox also requires the product, without which no sales account (hence VAT) follows (§4)."""
    if not isinstance(value, list):
        return [], [_wrong_type(("lines",), "an array", value)]
    lines, problems = [], []
    for index, line in enumerate(value):
        at: tuple[str | int, ...] = ("lines", index)
        if not isinstance(line, dict):
            problems.append(Problem(at, INVALID, "A line must be an object.", line))
            continue
        clean, found = _validate(books, base, line, LINE_SCHEMA, at)
        if "product" not in line:
            found.append(_required((*at, "product")))
        else:
            if "quantity" not in line:
                message = "Property quantity must have a value when product is set."  # verbatim (§1.7)
                found.append(Problem((*at, "quantity"), QUANTITY_REQUIRED, message))
            if "description" not in line:
                found.append(
                    Problem((*at, "description"), INVALID, "Property description is required when product is set.")
                )
        problems += found
        lines.append(clean)
    return lines, problems


def _priced(
    books: EconomicState, document: dict[str, Any], lines: list[dict[str, Any]], booked: bool = False
) -> dict[str, Any]:
    """The document with its lines numbered and priced and its totals (§2.4, §4, §7). A booked invoice's lines also
    show totalNetAmount, vatRate and vatAmount (§2.8)."""
    currency = document["currency"]
    rate = document.get("exchangeRate", _daily_rate(currency))
    zone = document["recipient"]["vatZone"]["vatZoneNumber"]
    net_total = vat_total = ZERO
    priced = []
    for position, line in enumerate(lines, start=1):
        number = line["product"]["productNumber"]
        if "unitNetPrice" not in line:  # the product's sales price (in DKK) in the document's currency
            sales_price = books.tables["products"].rows[number].get("salesPrice", ZERO)
            line = {**line, "unitNetPrice": money(Decimal(sales_price) * HUNDRED / rate)}
        line_number = line.get("lineNumber", position)
        line = {"lineNumber": line_number, "sortKey": line.get("sortKey", line_number), **line}
        net, vat_rate, vat = _line_amounts(books, line, zone)
        net_total, vat_total = net_total + net, vat_total + vat
        priced.append({**line, "totalNetAmount": net, "vatRate": vat_rate, "vatAmount": vat} if booked else line)
    gross = net_total + vat_total
    result = {
        **document,
        "exchangeRate": rate,
        "lines": priced,
        "netAmount": net_total,
        "vatAmount": vat_total,
        "grossAmount": gross,
        "roundingAmount": ZERO,
        "netAmountInBaseCurrency": money(net_total * rate / HUNDRED),
        "grossAmountInBaseCurrency": money(gross * rate / HUNDRED),
    }
    terms = books.tables["payment-terms"].rows[str(document["paymentTerms"]["paymentTermsNumber"])]
    if "dueDate" not in result and terms["paymentTermsType"] == "net":
        result["dueDate"] = (
            date.fromisoformat(document["date"]) + timedelta(days=terms["daysOfCredit"])
        ).isoformat()
    return result


def _line_amounts(books: EconomicState, line: dict[str, Any], vat_zone: int) -> tuple[Decimal, Decimal, Decimal]:
    """(net, VAT rate in %, VAT) of a line, each amount rounded to the cent; negative for a credit note."""
    discount = Decimal(line.get("discountPercentage", 0))
    net = money(Decimal(line["quantity"]) * Decimal(line["unitNetPrice"]) * (1 - discount / HUNDRED))
    rate = books.vat_rate(line["product"]["productNumber"], vat_zone)
    return net, rate, money(net * rate / HUNDRED)


def _daily_rate(currency: str) -> Decimal:
    """The price of 100 units in DKK when the document gives none (§7): 100 for DKK, else a fixed "daily rate"."""
    return next(rate for code, _, _, rate in CURRENCIES if code == currency)


def _booking_problems(
    books: EconomicState, draft_number: str, book_with: int | None, send_by: str | None
) -> list[Problem]:
    """Why the draft cannot be booked (the docs say "trying to book an invoice with [a barred] product will not be
    possible", §3; a number is booked once; the sandbox cannot send EAN invoices: that needs a paying company)."""
    problems = []
    if book_with is not None and books.tables["booked"].find(str(book_with)) is not None:
        problems.append(
            Problem(("bookWithNumber",), INVALID, f"Invoice number {book_with} is already booked.", book_with)
        )
    draft = books.tables["drafts"].rows[draft_number]
    if not draft["lines"]:
        problems.append(Problem(("draftInvoice",), INVALID, f"Draft invoice {draft_number} has no lines to book."))
    products = books.tables["products"].rows
    for line in draft["lines"]:
        number = line["product"]["productNumber"]
        if products[number].get("barred"):
            problems.append(
                Problem(("draftInvoice",), INVALID, f"Product {number} is barred: it can no longer be sold.")
            )
    if send_by == "ean":
        problems.append(Problem(("sendBy",), INVALID, "The sandbox agreement cannot send EAN invoices.", send_by))
    return problems


# --- views ---------------------------------------------------------------------------------------------------------------

View = Callable[..., Response]


def _self(books: EconomicState, request: Request) -> Response:
    return _json(200, {**SELF, "self": f"{_base(request)}/self"})


def _list(name: str, books: EconomicState, request: Request) -> Response:
    table = books.tables[name]
    return _collection(books, request, name, list(table.rows.values()), f"{_base(request)}/{table.path}")


def _get(name: str, books: EconomicState, request: Request, ident: str) -> Response:
    return _show(books, request, name, books.tables[name].get(ident))


def _sales_accounts(books: EconomicState, request: Request, group: str) -> Response:
    books.tables["product-groups"].get(group)
    return _list(f"product-groups/{group}/sales-accounts", books, request)


def _sales_account(books: EconomicState, request: Request, group: str, zone: str) -> Response:
    books.tables["product-groups"].get(group)
    return _get(f"product-groups/{group}/sales-accounts", books, request, zone)


def _group_products(books: EconomicState, request: Request, group: str) -> Response:
    number = books.tables["product-groups"].get(group)["productGroupNumber"]
    rows = [
        row
        for row in books.tables["products"].rows.values()
        if row["productGroup"]["productGroupNumber"] == number
    ]
    return _collection(books, request, "products", rows, f"{_base(request)}/product-groups/{group}/products")


def _create_customer(books: EconomicState, request: Request) -> Response:
    customers = books.tables["customers"]
    customer, problems = _validate(books, _base(request), _body(request), CUSTOMER_SCHEMA)
    number = customer.get("customerNumber")
    if number is not None and customers.find(str(number)) is not None:
        problems.append(
            Problem(("customerNumber",), INVALID, f"Customer number {number} is already in use.", number)
        )
    if problems:
        raise _invalid(problems)
    row = customers.insert({**customer, "lastUpdated": _today()}, number)
    return _show(books, request, "customers", row, 201)


def _replace_customer(books: EconomicState, request: Request, ident: str) -> Response:
    """PUT overwrites the whole customer (§1.2); its number is the URL's."""
    customers = books.tables["customers"]
    number = customers.get(ident)["customerNumber"]
    customer, problems = _validate(books, _base(request), _body(request), CUSTOMER_SCHEMA)
    if customer.get("customerNumber", number) != number:
        problems.append(
            Problem(
                ("customerNumber",),
                INVALID,
                "customerNumber must be the one in the URL.",
                customer["customerNumber"],
            )
        )
    if problems:
        raise _invalid(problems)
    customers.rows[ident] = row = {**customer, "customerNumber": number, "lastUpdated": _today()}
    return _show(books, request, "customers", row)


def _delete_customer(books: EconomicState, request: Request, ident: str) -> Response:
    number = books.tables["customers"].get(ident)["customerNumber"]
    if any(row["customer"]["customerNumber"] == number for row in _documents(books)):
        raise Refusal(error(400, f"Customer {number} has invoices or orders and cannot be deleted.", INVALID))
    del books.tables["customers"].rows[ident]
    return Response(204)


def _create_product(books: EconomicState, request: Request) -> Response:
    products = books.tables["products"]
    product, problems = _validate(books, _base(request), _body(request), PRODUCT_SCHEMA)
    number = product.get("productNumber")
    if number is not None and products.find(number) is not None:
        problems.append(
            Problem(("productNumber",), INVALID, f"Product number {number} is already in use.", number)
        )
    if problems:
        raise _invalid(problems)
    inventory = {**product.get("inventory", {}), "available": 0, "inStock": 0}
    products.rows[product["productNumber"]] = row = {**product, "inventory": inventory, "lastUpdated": _today()}
    return _show(books, request, "products", row, 201)


def _replace_product(books: EconomicState, request: Request, ident: str) -> Response:
    """PUT overwrites the whole product (§1.2) but its stock, which is read-only (§3)."""
    products = books.tables["products"]
    current = products.get(ident)
    product, problems = _validate(books, _base(request), _body(request), PRODUCT_SCHEMA)
    if product.get("productNumber", ident) != ident:
        problems.append(
            Problem(
                ("productNumber",), INVALID, "productNumber must be the one in the URL.", product["productNumber"]
            )
        )
    if problems:
        raise _invalid(problems)
    stock = {name: current["inventory"][name] for name in ("available", "inStock")}
    products.rows[ident] = row = {
        **product,
        "inventory": {**product.get("inventory", {}), **stock},
        "lastUpdated": _today(),
    }
    return _show(books, request, "products", row)


def _delete_product(books: EconomicState, request: Request, ident: str) -> Response:
    """204; "you can't delete a product that is in use" (§3)."""
    books.tables["products"].get(ident)
    if any(line["product"]["productNumber"] == ident for row in _documents(books) for line in row["lines"]):
        raise Refusal(error(400, f"Product {ident} is in use and cannot be deleted.", INVALID))
    del books.tables["products"].rows[ident]
    return Response(204)


def _documents(books: EconomicState) -> Iterator[dict[str, Any]]:
    for name in TABLE_NAMES.values():
        yield from books.tables[name].rows.values()


def _create_document(name: str, books: EconomicState, request: Request) -> Response:
    return _show(books, request, name, books.tables[name].insert(_document(books, request)), 201)


def _replace_document(name: str, books: EconomicState, request: Request, ident: str) -> Response:
    """PUT overwrites the whole draft or order (§2.5): lines left out are dropped."""
    table = books.tables[name]
    number = table.get(ident)[table.key]
    table.rows[ident] = row = {table.key: number, **_document(books, request)}
    return _show(books, request, name, row)


def _delete_draft(books: EconomicState, request: Request, ident: str) -> Response:
    """200 with the documented body (§2.6)."""
    books.tables["drafts"].get(ident)
    return _deleted(books, request, [ident])


def _delete_drafts(books: EconomicState, request: Request) -> Response:
    """DELETE /invoices/drafts deletes every draft, or every one the filter finds (§2.6)."""
    drafts = books.tables["drafts"]
    matches = _filter(request, drafts)
    return _deleted(books, request, [ident for ident, row in drafts.rows.items() if matches(row)])


def _deleted(books: EconomicState, request: Request, idents: list[str]) -> Response:
    drafts = books.tables["drafts"]
    items = [{"draftInvoiceNumber": drafts.rows.pop(ident)["draftInvoiceNumber"]} for ident in idents]
    for item in items:
        item["self"] = drafts.url(_base(request), item["draftInvoiceNumber"])
    message = "Deleted invoice." if len(items) == 1 else f"Deleted {len(items)} invoices."
    return _json(200, {"message": message, "deletedCount": len(items), "deletedItems": items})


def _delete_order(books: EconomicState, request: Request, ident: str) -> Response:
    """204; a second DELETE is 404 (§9)."""
    books.tables["orders"].get(ident)
    del books.tables["orders"].rows[ident]
    return Response(204)


def _book(books: EconomicState, request: Request, ident: str | None = None) -> Response:
    """Book a draft (§2.7): POST /invoices/booked, or PUT /invoices/booked/{bookWithNumber}."""
    body = _body(request)
    booking, problems = _validate(books, _base(request), body, BOOKING_SCHEMA)
    book_with = booking.get("bookWithNumber")
    if ident is not None:
        if not ident.isdigit():
            raise Refusal(error(404, "Booked invoice not found."))
        if book_with not in (None, int(ident)):
            problems.append(
                Problem(("bookWithNumber",), INVALID, "bookWithNumber must be the number in the URL.", book_with)
            )
        book_with = int(ident)
    if problems:
        raise _invalid(problems)
    draft_number = str(booking["draftInvoice"]["draftInvoiceNumber"])
    problems = _booking_problems(books, draft_number, book_with, booking.get("sendBy"))
    if problems:
        raise _invalid(problems)
    return _show(books, request, "booked", books.book(draft_number, book_with), 201)


# --- collections: pages and filters ---------------------------------------------------------------------------------------


def _collection(
    books: EconomicState, request: Request, name: str, rows: list[dict[str, Any]], url: str
) -> Response:
    """A page of `rows` (§1.3), filtered (§1.4), each shown by table `name`."""
    table = books.tables[name]
    matches = _filter(request, table)
    found = [row for row in rows if matches(row)]
    size = _whole_param(request, "pagesize", DEFAULT_PAGE_SIZE)
    skip = _whole_param(request, "skippages", 0)
    if not 1 <= size <= MAX_PAGE_SIZE:  # the docs give the maximum; a bigger page is refused, not cut down
        raise Refusal(error(400, f"pagesize must be between 1 and {MAX_PAGE_SIZE}.", INVALID))
    if skip < 0:
        raise Refusal(error(400, "skippages must not be negative.", INVALID))
    raw_filter = request.query.get("filter")

    def page(number: int) -> str:
        params: dict[str, Any] = {"skippages": number, "pagesize": size}
        if raw_filter:
            params["filter"] = raw_filter
        return f"{url}?{urlencode(params)}"

    pagination: dict[str, Any] = {
        "maxPageSizeAllowed": MAX_PAGE_SIZE,
        "skipPages": skip,
        "pageSize": size,
        "results": len(found),
        "resultsWithoutFilter": len(rows),
        "firstPage": page(0),
    }
    if (skip + 1) * size < len(found):
        pagination["nextPage"] = page(skip + 1)
    pagination["lastPage"] = page(max((len(found) - 1) // size, 0))
    base = _base(request)
    return _json(
        200,
        {
            "collection": [books.render(name, row, base) for row in found[skip * size : (skip + 1) * size]],
            "pagination": pagination,
            "self": f"{url}?{request.query_string}" if request.query_string else url,
        },
    )


def _whole_param(request: Request, name: str, default: int) -> int:
    try:
        return int(request.query.get(name, default))
    except ValueError:
        raise Refusal(error(400, f"{name} must be a whole number.", INVALID)) from None


Matcher = Callable[[dict[str, Any]], bool]


def _filter(request: Request, table: _Table) -> Matcher:
    """The request's ?filter= as a test of a row; every row passes when there is none."""
    text = request.query.get("filter", "")
    return _FilterParser(text, table.filters).parse() if text else lambda row: True


@dataclass(frozen=True)
class _Token:
    """One character of a filter value: `escaped` when written $x; `character` is "" for $null:."""

    character: str
    escaped: bool = False

    @property
    def null(self) -> bool:
        return self.character == ""


class _FilterParser:
    """The filter grammar of §1.4, parsed by recursive descent. $and: binds tighter than $or: (the docs only say
    that parentheses control affinity); a property's kind decides how its values compare.

        any := all ("$or:" all)*        all := term ("$and:" term)*        term := "(" any ")" | predicate
        predicate := property operator value
    """

    def __init__(self, text: str, filterable: Filters) -> None:
        self.text = text
        self.at = 0
        self.filterable = filterable

    def parse(self) -> Matcher:
        matcher = self._any()
        if self.at < len(self.text):
            self._fail(f"unexpected {self.text[self.at]!r} at position {self.at}")
        return matcher

    def _take(self, word: str) -> bool:
        if self.text.startswith(word, self.at):
            self.at += len(word)
            return True
        return False

    def _fail(self, reason: str) -> NoReturn:
        hint = "Escape $ ( ) * , [ ] in values as $$ $( $) $* $, $[ $], then URL-encode the filter."
        raise Refusal(error(400, f"Invalid filter: {reason}.", INVALID, hint=hint))

    def _any(self) -> Matcher:
        options = [self._all()]
        while self._take("$or:"):
            options.append(self._all())
        return options[0] if len(options) == 1 else lambda row: any(option(row) for option in options)

    def _all(self) -> Matcher:
        parts = [self._term()]
        while self._take("$and:"):
            parts.append(self._term())
        return parts[0] if len(parts) == 1 else lambda row: all(part(row) for part in parts)

    def _term(self) -> Matcher:
        if self._take("("):
            matcher = self._any()
            if not self._take(")"):
                self._fail("a ( is not closed")
            return matcher
        return self._predicate()

    def _predicate(self) -> Matcher:
        match = re.compile(r"[A-Za-z][A-Za-z0-9.]*").match(self.text, self.at)
        if match is None:
            self._fail(f"expected a property at position {self.at}")
        name = match.group()
        self.at = match.end()
        operator = next((each for each in FILTER_OPERATORS if self._take(each)), None)
        if operator is None:
            self._fail(f"expected an operator ($eq:, $like:, ...) after {name}")
        kind = self.filterable.get(name)
        if kind is None:
            hint = f"Filterable properties here: {', '.join(sorted(self.filterable))}."
            raise Refusal(
                error(400, f"Filtering on {name} is not allowed: it is not filterable.", INVALID, hint=hint)
            )
        tokens = self._value()
        if operator in ("$in:", "$nin:"):
            return self._membership(name, kind, operator, tokens)
        if operator == "$like:":
            return self._like(name, tokens)
        return self._comparison(name, kind, operator, tokens)

    def _value(self) -> list[_Token]:
        """The value's characters, up to the next unescaped $and:, $or: or ) (or the end)."""
        tokens = []
        while self.at < len(self.text) and not self.text.startswith(("$and:", "$or:", ")"), self.at):
            if self._take("$null:"):
                tokens.append(_Token(""))
            elif self.text[self.at] == "$":
                escaped = self.text[self.at + 1 : self.at + 2]
                if not escaped or escaped not in FILTER_ESCAPES:
                    self._fail(f"a $ at position {self.at} must be written $$")
                tokens.append(_Token(escaped, escaped=True))
                self.at += 2
            else:
                tokens.append(_Token(self.text[self.at]))
                self.at += 1
        return tokens

    def _text(self, tokens: list[_Token], allowed: str = "") -> str:
        """The tokens as text; an unescaped reserved character (other than `allowed`) is refused."""
        for token in tokens:
            if token.null:
                self._fail("$null: must be the whole value")
            if not token.escaped and token.character in FILTER_RESERVED and token.character not in allowed:
                self._fail(f"{token.character!r} must be escaped as ${token.character}")
        return "".join(token.character for token in tokens)

    def _operand(self, kind: str, text: str) -> Any:
        """A value as its property's kind compares it."""
        if kind == NUMBER:
            try:
                number = Decimal(text)
            except ArithmeticError:
                number = Decimal("NaN")
            if not number.is_finite():
                self._fail(f"{text!r} is not a number")
            return number
        if kind == BOOLEAN:
            if text.lower() not in ("true", "false"):
                self._fail(f"{text!r} is not true or false")
            return text.lower() == "true"
        return text.casefold()

    def _comparison(self, name: str, kind: str, operator: str, tokens: list[_Token]) -> Matcher:
        if len(tokens) == 1 and tokens[0].null:
            if operator not in ("$eq:", "$ne:"):
                self._fail(f"$null: goes with $eq: or $ne:, not {operator}")
            return lambda row: (_field(row, name) is _MISSING) == (operator == "$eq:")
        operand = self._operand(kind, self._text(tokens))
        test: Callable[[Any, Any], bool] = {
            "$eq:": lambda a, b: a == b,
            "$ne:": lambda a, b: a != b,
            "$gt:": lambda a, b: a > b,
            "$gte:": lambda a, b: a >= b,
            "$lt:": lambda a, b: a < b,
            "$lte:": lambda a, b: a <= b,
        }[operator]

        def matches(row: dict[str, Any]) -> bool:
            actual = _comparable(kind, _field(row, name))
            if actual is _MISSING:
                return operator == "$ne:"  # a missing value equals nothing and is not ordered
            return test(actual, operand)

        return matches

    def _like(self, name: str, tokens: list[_Token]) -> Matcher:
        """`*` is a wildcard (written $* it is a star); without one, a contains match."""
        self._text(tokens, allowed="*")
        wildcard = any(token.character == "*" and not token.escaped for token in tokens)
        pattern = "".join(
            ".*" if token.character == "*" and not token.escaped else re.escape(token.character)
            for token in tokens
        )
        regex = re.compile(pattern if wildcard else f".*{pattern}.*", re.IGNORECASE | re.DOTALL)

        def matches(row: dict[str, Any]) -> bool:
            actual = _field(row, name)
            return actual is not _MISSING and regex.fullmatch(str(actual)) is not None

        return matches

    def _membership(self, name: str, kind: str, operator: str, tokens: list[_Token]) -> Matcher:
        """$in:[a,b,...] and $nin:[...]: numeric properties only, at most 200 values, $null: allowed."""
        if kind != NUMBER:
            self._fail(f"{operator} works on numeric properties only, and {name} is not one")
        if len(tokens) < 2 or tokens[0] != _Token("[") or tokens[-1] != _Token("]"):
            self._fail(f"{operator} takes a list: [1,2,3]")
        items: list[list[_Token]] = [[]]
        for token in tokens[1:-1]:
            if token == _Token(","):
                items.append([])
            else:
                items[-1].append(token)
        if len(items) > MAX_LIST_VALUES:
            self._fail(f"{operator} takes at most {MAX_LIST_VALUES} values")
        values = {None if item == [_Token("")] else self._operand(kind, self._text(item)) for item in items}

        def matches(row: dict[str, Any]) -> bool:
            actual = _comparable(kind, _field(row, name))
            found = (None if actual is _MISSING else actual) in values
            return found == (operator == "$in:")

        return matches


def _comparable(kind: str, value: Any) -> Any:
    """A stored value as a filter compares it: a Decimal, a bool (a missing boolean is false) or folded text."""
    if kind == BOOLEAN:
        return value is True
    if value is _MISSING:
        return _MISSING
    if kind == NUMBER and isinstance(value, int | Decimal) and not isinstance(value, bool):
        return Decimal(value)
    return str(value).casefold()


# --- routes ----------------------------------------------------------------------------------------------------------

ID = "([^/]+)"  # an id, self-link encoded (decoded by _route)
CHART = (
    "currencies",
    "vat-zones",
    "vat-types",
    "vat-accounts",
    "accounts",
    "product-groups",
    "layouts",
    "payment-terms",
    "customer-groups",
    "units",
)
_PATHS: dict[str, dict[str, View]] = {
    "/self": {"GET": _self},
    **{f"/{name}": {"GET": partial(_list, name)} for name in CHART},
    **{f"/{name}/{ID}": {"GET": partial(_get, name)} for name in CHART},
    f"/product-groups/{ID}/sales-accounts": {"GET": _sales_accounts},
    f"/product-groups/{ID}/sales-accounts/{ID}": {"GET": _sales_account},
    f"/product-groups/{ID}/products": {"GET": _group_products},
    "/customers": {"GET": partial(_list, "customers"), "POST": _create_customer},
    f"/customers/{ID}": {"GET": partial(_get, "customers"), "PUT": _replace_customer, "DELETE": _delete_customer},
    "/products": {"GET": partial(_list, "products"), "POST": _create_product},
    f"/products/{ID}": {"GET": partial(_get, "products"), "PUT": _replace_product, "DELETE": _delete_product},
    "/invoices/drafts": {
        "GET": partial(_list, "drafts"),
        "POST": partial(_create_document, "drafts"),
        "DELETE": _delete_drafts,
    },
    f"/invoices/drafts/{ID}": {
        "GET": partial(_get, "drafts"),
        "PUT": partial(_replace_document, "drafts"),
        "DELETE": _delete_draft,
    },
    "/invoices/booked": {"GET": partial(_list, "booked"), "POST": _book},
    f"/invoices/booked/{ID}": {"GET": partial(_get, "booked"), "PUT": _book},
    "/orders/drafts": {"GET": partial(_list, "orders"), "POST": partial(_create_document, "orders")},
    f"/orders/drafts/{ID}": {
        "GET": partial(_get, "orders"),
        "PUT": partial(_replace_document, "orders"),
        "DELETE": _delete_order,
    },
}
ROUTES = [(re.compile(path), views) for path, views in _PATHS.items()]  # path under /economic -> method -> view


# --- granting the app access: the merchant's pages -------------------------------------------------------------------


def _access_problem(asked: dict[str, str]) -> str:
    """What is wrong with a request for access ("" when nothing)."""
    if asked.get("appPublicToken") != APP_PUBLIC_TOKEN:
        return "The app could not be found: check the appPublicToken."
    if asked.get("redirectUrl") and urlsplit(asked["redirectUrl"]).scheme not in ("http", "https"):
        return "The redirectUrl must be an http(s) address."
    return ""


def _request_access(books: EconomicState, request: Request) -> Response:
    """GET shows what the app asks for, with Add app (a POST back here) and Cancel; the POST grants the access."""
    if request.method not in ("GET", "POST"):
        return html_page(405, "e-conomic", "<h1>Method not allowed</h1>")
    asked = request.query if request.method == "GET" else dict(parse_qsl(request.body.decode("utf-8", "replace")))
    asked = {name: asked.get(name, "") for name in ("appPublicToken", "redirectUrl", "locale")}
    if problem := _access_problem(asked):
        return html_page(400, "e-conomic", f"<h1>{html.escape(problem)}</h1>")
    company = html.escape(cast(dict[str, str], SELF["company"])["name"])
    if request.method == "GET":
        hidden = "".join(
            f'<input type="hidden" name="{name}" value="{html.escape(value)}">' for name, value in asked.items()
        )
        return html_page(
            200,
            f"Add {APP_NAME}",
            f"""<h1>Add {APP_NAME} to {company}?</h1>
<p>{APP_NAME} asks for access to invoices, orders, customers, products and inventory of agreement
{SELF["agreementNumber"]}.</p>
<form method="POST" action="/economic{REQUEST_ACCESS}">{hidden}<button type="submit">Add app</button></form>
<a href="/economic{APPS}">Cancel</a>""",
        )
    grant = secrets.token_urlsafe(32)
    books.grants.add(grant)
    if not asked["redirectUrl"]:  # nowhere to send it: shown to copy
        return html_page(
            200, "Agreement grant token", f"<h1>Agreement grant token</h1><p><code>{grant}</code></p>"
        )
    glue = "&" if urlsplit(asked["redirectUrl"]).query else "?"
    return Response(302, b"", {"Location": f"{asked['redirectUrl']}{glue}{urlencode({'token': grant})}"})


def _apps(books: EconomicState, request: Request) -> Response:
    """The agreement's apps, where Cancel on the request access page leads."""
    added = f"{APP_NAME} has access." if books.grants else f"{APP_NAME} has not been added."
    return html_page(200, "Apps", f"<h1>Apps</h1><p>{added}</p>")


REQUEST_ACCESS = "/secure/api1/requestaccess.aspx"
APPS = "/settings/extensions/apps"
PAGES: list[tuple[re.Pattern[str], Callable[[EconomicState, Request], Response]]] = [
    (re.compile(re.escape(f"/economic{REQUEST_ACCESS}")), _request_access),
    (re.compile(re.escape(f"/economic{APPS}")), _apps),
]
