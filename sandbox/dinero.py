"""The fake Dinero API v1 (api.dinero.dk) and its Visma Connect token host, served under /dinero/: two
organisations, a Danish chart of accounts and VAT types, contacts, products, and draft and booked invoices and
credit notes.

It is as strict as Dinero where Dinero's documentation says how, and where it does not, as the contract IEX's
connector is written against says (the notes marked "sandbox" are choices of this fake):

- Tokens (POST /dinero/connect/token, form-encoded): the client authenticates with HTTP Basic (or the client_id
  and client_secret fields), else 401 {"error": "invalid_client"}. The password grant takes a merchant's API key
  as both username and password and gives an access token only; the authorization_code grant (codes from the
  form_post page GET /dinero/connect/authorize) and the refresh_token grant give a refresh token too, rotated on
  every use: a used one is invalid_grant. An access token lives `expires_in` seconds of the sandbox's clock.
- Every /v1 call needs `Authorization: Bearer <access token>` (401 otherwise), for an organisation the token
  grants (403 errorCode 403), with Dinero Pro (403 errorCode 48). Errors are {"errorCode", "errorMessage",
  "validationErrors", "languageSpecificMessages"}; a validation failure is errorCode 400 (sandbox: Dinero names
  none) with one message per failing property, e.g. "ProductLines[0].Unit".
- Rate limit: 100 calls per rolling 60 s per (organisation, client) over /v1/{org} and /v1.2/{org} calls; then
  429 text/plain with Retry-After, the seconds until the oldest call leaves the window. Only admitted calls fill
  the window (sandbox: so Retry-After is true); every call with a valid token is counted per organisation for
  `most_calls_in_a_minute`, refused ones too. Calls without a valid token are refused before they are counted.
- Bodies are JSON (else 415); unknown properties and nulls are ignored, as ASP.NET's model binding does, so
  `name` for `Name` means Name is missing. Numbers must be JSON numbers, booleans JSON booleans.
- Lists are {"Collection", "Pagination"} with `page` (from 0), `pageSize` (1..1000, default 100) and `fields`
  (names as documented, exactly; an unknown one is 400). `queryFilter` takes `Field eq 'value'` clauses joined by
  ` and ` (binding tighter) and ` or `, '' for a quote in a value; values compare case-insensitively (sandbox).
- A product line needs Description, Quantity, BaseAmountValue (two decimals at most), AccountNumber (a sales
  account: VAT code U... or none, not a balance account) and Unit (from UNITS); a Text line only a Description
  and no amount (sandbox: an amount on it would be lost, so it is refused). Credit notes credit: their quantities
  are not negative (sandbox).

Money, per Product line, Q its Quantity, B its BaseAmountValue, D its Discount (%) and r the VAT rate of its
account's VatCode:

- ShowLinesInclVat false: TotalAmount (excl. VAT) = round(Q x B x (1 - D/100), 2, half up), its VAT =
  round(TotalAmount x r, 2), TotalAmountInclVat = TotalAmount + VAT;
- ShowLinesInclVat true (B includes VAT): TotalAmountInclVat = round(Q x B x (1 - D/100), 2), its VAT =
  round(TotalAmountInclVat x r / (1 + r), 2), TotalAmount = TotalAmountInclVat - VAT;
- the document's TotalExclVat, TotalVat and TotalInclVat are the sums over its lines (Text lines are 0).

Updating (PUT /v1.2/...) and booking need the document's current TimeStamp (a stale one: errorCode 58), and only
drafts change (errorCode 52). Booking numbers invoices and credit notes from 1 upward per organisation, apart.
"""

from __future__ import annotations

import base64
import html
import itertools
import json
import math
import re
import secrets
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from functools import partial
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, unquote

from sandbox.common import Refusal, Request, Response, html_page, money, now_iso

PREFIX = "/dinero"

# --- the app, the merchants' keys and their organisations ----------------------------------------------------------

# IEX's app at Visma Connect, and the merchants' own API keys: the sandbox's well-known demo credentials.
CLIENT_ID = "iex-sandbox"
CLIENT_SECRET = "iex-sandbox-secret"  # noqa: S105
API_KEYS = {"dinero-sandbox-key": 123456, "dinero-free-key": 654321}  # key -> the organisation it opens
ORGANISATIONS = {  # id -> name, has Dinero Pro
    123456: ("Sandbox Dinero ApS", True),
    654321: ("Gratis ApS", False),
}
AUTHORIZED_ORGANISATION = 123456  # the one a merchant picks on the authorize page
OAUTH_SCOPE = "dineropublicapi:read dineropublicapi:write offline_access"
REQUIRED_SCOPE = "dineropublicapi:read"

# --- the chart ------------------------------------------------------------------------------------------------------

VAT_TYPES = [  # VatCode, Name, VatRate
    ("U25", "Salgsmoms 25%", Decimal("0.25")),
    ("I25", "Købsmoms 25%", Decimal("0.25")),
    ("none", "Ingen moms", Decimal("0")),
    ("UEUV", "Salg af varer til EU (momsfri)", Decimal("0")),
    ("UEUY", "Salg af ydelser til EU (momsfri)", Decimal("0")),
    ("UVY", "Salg af varer/ydelser uden for EU (momsfri)", Decimal("0")),
]
VAT_RATES = {code: rate for code, _, rate in VAT_TYPES}
ACCOUNTS = [  # AccountNumber, Name, VatCode, a balance (status) account?
    (1000, "Salg af varer/ydelser m/moms", "U25", False),
    (1100, "Salg af varer/ydelser u/moms", "none", False),
    (1200, "Salg af varer til EU", "UEUV", False),
    (1210, "Salg af ydelser til EU", "UEUY", False),
    (1250, "Salg af varer/ydelser uden for EU", "UVY", False),
    (1300, "Fragt m/moms", "U25", False),
    (2000, "Vareforbrug", "I25", False),
    (55000, "Bank", "none", True),
    (58000, "Debitorer", "none", True),
]
SALES_ACCOUNTS = {
    number: code
    for number, _, code, balance in ACCOUNTS
    if (code.startswith("U") or code == "none") and not balance
}
UNITS = (
    "hours",
    "parts",
    "km",
    "day",
    "week",
    "month",
    "kilogram",
    "cubicMetre",
    "set",
    "litre",
    "box",
    "case",
    "carton",
    "metre",
    "package",
    "shipment",
    "squareMetre",
    "session",
    "tonne",
)
LANGUAGES = ("da-DK", "en-GB")
PAYMENT_CONDITIONS = ("Netto", "NettoCash", "CurrentMonthOut", "Paid")
WITH_DAYS = ("Netto", "CurrentMonthOut")  # the types that need PaymentConditionNumberOfDays
STATUSES = ("Draft", "Booked", "Paid", "OverPaid", "Overdue")  # statusFilter's values; the sandbox never pays

# --- codes, messages and limits -------------------------------------------------------------------------------------

MAX_PAGE_SIZE, DEFAULT_PAGE_SIZE = 1000, 100
MAX_EXTERNAL_REFERENCE = 128
MAX_AMOUNT = Decimal("1e12")  # any number in a body is below this (sandbox: Dinero's own bound is undocumented)
NO_PRO, NOT_DRAFT, STALE = 48, 52, 58
DENIED = "Authorization has been denied for this request."
NO_ACCESS = "You do not have access to this organization"
NO_PRO_MESSAGE = "The organization does not have a Dinero Pro subscription, which is needed to use the API"
STALE_MESSAGE = "The entity has been updated since you last read it. Get the entity again and retry."
BAD_CREDENTIALS = "The user name or password is incorrect."
RATE_LIMITED = "API calls quota exceeded! maximum admitted {limit} per {window}."
DANISH = {
    400: "Forespørgslen er ugyldig.",
    403: "Du har ikke adgang til denne organisation.",
    404: "Det efterspurgte blev ikke fundet.",
    405: "Metoden er ikke tilladt her.",
    415: "Indholdstypen understøttes ikke: send JSON.",
    NO_PRO: "Organisationen har ikke et Dinero Pro-abonnement, som kræves for at bruge API'et.",
    NOT_DRAFT: "Kun kladder kan ændres.",
    STALE: "Bilaget er blevet ændret, siden du sidst hentede det. Hent det igen, og prøv igen.",
}
VALIDATION_FAILED = "Validation failed: see validationErrors."

# What a list may show (`fields`), and shows without it.
CONTACT_FIELDS = (
    "ContactGuid",
    "Name",
    "CountryKey",
    "IsPerson",
    "Email",
    "Street",
    "ZipCode",
    "City",
    "Phone",
    "VatNumber",
    "EanNumber",
    "ExternalReference",
    "PaymentConditionType",
    "PaymentConditionNumberOfDays",
    "CreatedAt",
    "UpdatedAt",
)
PRODUCT_FIELDS = (
    "ProductGuid",
    "ProductNumber",
    "Name",
    "BaseAmountValue",
    "BaseAmountValueInclVat",
    "Quantity",
    "AccountNumber",
    "Unit",
    "ExternalReference",
    "CreatedAt",
    "UpdatedAt",
)
CONTACT_TEXTS = ("Email", "Street", "ZipCode", "City", "Phone", "VatNumber", "EanNumber", "ExternalReference")
DOCUMENT_FIELDS = (
    "Guid",
    "Number",
    "Status",
    "TimeStamp",
    "ContactGuid",
    "ContactName",
    "ExternalReference",
    "Currency",
    "Language",
    "Date",
    "PaymentConditionType",
    "PaymentConditionNumberOfDays",
    "ShowLinesInclVat",
    "Description",
    "Comment",
    "TotalExclVat",
    "TotalVat",
    "TotalInclVat",
    "CreatedAt",
    "UpdatedAt",
)
CREDIT_NOTE_FIELDS = (*DOCUMENT_FIELDS, "CreditNoteFor")
DEFAULT_FIELDS = {
    "contacts": ("ContactGuid", "Name"),
    "products": ("ProductGuid", "Name"),
    "invoices": ("Guid", "ContactName", "Date", "Description"),
    "creditnotes": ("Guid", "ContactName", "Date", "Description"),
}
FILTERABLE = {
    "contacts": ("Email", "Name", "VatNumber", "ExternalReference"),
    "products": ("ProductNumber", "Name", "ExternalReference"),
}
KINDS = {"invoices": "invoice", "creditnotes": "credit note"}  # a document kind -> its noun
_MISSING: Any = object()


class Settings(NamedTuple):
    """The knobs of the server's config that Dinero reads."""

    token_seconds: int = 3600
    rate_limit: int = 100
    rate_window: float = 60


@dataclass
class Grant:
    """What a token or an authorization code gives: a client's access to organisations. An access token has an
    `expires_at` on the state's clock; a code remembers the redirect_uri it was issued for."""

    client_id: str
    organisations: tuple[int, ...]
    expires_at: float | None = None
    redirect_uri: str = ""


@dataclass
class Books:
    """One organisation's contacts, products, invoices and credit notes, by guid, in the order they were made."""

    id: int
    name: str
    is_pro: bool
    contacts: dict[str, dict[str, Any]] = field(default_factory=dict)
    products: dict[str, dict[str, Any]] = field(default_factory=dict)
    invoices: dict[str, dict[str, Any]] = field(default_factory=dict)
    creditnotes: dict[str, dict[str, Any]] = field(default_factory=dict)

    def documents(self, kind: str) -> dict[str, dict[str, Any]]:
        return self.invoices if kind == "invoices" else self.creditnotes

    def next_number(self, kind: str) -> int:
        """The number booking gives next: one above the highest booked so far (from 1)."""
        return max((row["Number"] or 0 for row in self.documents(kind).values()), default=0) + 1


class DineroState:
    """The organisations, the tokens and the call counts. Not locked by itself: the server holds its lock around
    every use. `clock` is the sandbox's time in seconds (monotonic); tests may set it."""

    def __init__(self) -> None:
        self.clock: Callable[[], float] = time.monotonic
        self.organisations = {ident: Books(ident, name, pro) for ident, (name, pro) in ORGANISATIONS.items()}
        self.access_tokens: dict[str, Grant] = {}
        self.refresh_tokens: dict[str, Grant] = {}
        self.codes: dict[str, Grant] = {}
        self.windows: dict[tuple[int, str], deque[float]] = {}  # admitted calls in the rate window
        self.last_minute: dict[int, deque[float]] = {}  # every counted call of the last 60 s, per organisation
        self.calls: dict[int, int] = {}
        self.most_calls_in_a_minute: dict[int, int] = {}
        self.refused_429 = 0
        self._stamps = itertools.count(1)

    def stamp(self) -> str:
        """A new TimeStamp: opaque to clients (a row version, as Dinero's look)."""
        return f"{next(self._stamps):016X}"

    def grant(self, request: Request) -> Grant | None:
        """The access token's grant, if the request bears a live one."""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        found = self.access_tokens.get(token.strip()) if scheme.lower() == "bearer" else None
        if found is None or found.expires_at is None or self.clock() >= found.expires_at:
            return None
        return found

    def issue(self, grant: Grant, settings: Settings, refresh: bool) -> dict[str, Any]:
        """A new access token for the grant (and a refresh token if `refresh`), as the token endpoint answers."""
        access = secrets.token_urlsafe(32)
        lifetime = settings.token_seconds
        self.access_tokens[access] = Grant(grant.client_id, grant.organisations, self.clock() + lifetime)
        answer: dict[str, Any] = {"access_token": access, "token_type": "Bearer", "expires_in": lifetime}
        if refresh:
            token = secrets.token_urlsafe(32)
            self.refresh_tokens[token] = Grant(grant.client_id, grant.organisations)
            answer.update(refresh_token=token, scope=OAUTH_SCOPE)
        return answer

    def revoke_tokens(self, refresh_tokens: bool = False) -> int:
        """Revoke every access token (and the refresh tokens too, if told: the merchant disconnected the app);
        how many tokens were revoked."""
        revoked = len(self.access_tokens) + (len(self.refresh_tokens) if refresh_tokens else 0)
        self.access_tokens.clear()
        if refresh_tokens:
            self.refresh_tokens.clear()
        return revoked

    def count_call(self, organisation: int, client_id: str, settings: Settings) -> Response | None:
        """Count a call to an organisation by a client; the 429 if the client's window for it is full."""
        now = self.clock()
        minute = self.last_minute.setdefault(organisation, deque())
        minute.append(now)
        while minute[0] <= now - 60:
            minute.popleft()
        self.calls[organisation] = self.calls.get(organisation, 0) + 1
        self.most_calls_in_a_minute[organisation] = max(
            self.most_calls_in_a_minute.get(organisation, 0), len(minute)
        )
        window = self.windows.setdefault((organisation, client_id), deque())
        while window and window[0] <= now - settings.rate_window:
            window.popleft()
        if len(window) >= settings.rate_limit:
            self.refused_429 += 1
            retry_after = max(1, math.ceil(window[0] + settings.rate_window - now))
            text = RATE_LIMITED.format(limit=settings.rate_limit, window=_duration(settings.rate_window))
            return Response(
                429, text.encode(), {"Content-Type": "text/plain; charset=utf-8", "Retry-After": str(retry_after)}
            )
        window.append(now)
        return None

    def find(self, guid: str) -> tuple[Books, str, dict[str, Any]] | None:
        """The organisation, kind and document of an invoice or credit note guid."""
        for books in self.organisations.values():
            for kind in KINDS:
                document = books.documents(kind).get(guid.lower())
                if document is not None:
                    return books, kind, document
        return None

    def book(self, guid: str) -> dict[str, Any] | None:
        """Book a draft as the accountant would in Dinero's UI (its TimeStamp changes): the document, None if there
        is no such one; ValueError when it cannot be booked (booked already, no contact)."""
        found = self.find(guid)
        if found is None:
            return None
        books, kind, document = found
        if document["Status"] != "Draft":
            raise ValueError(f"The {KINDS[kind]} is booked already")
        if not document["ContactGuid"]:
            raise ValueError(f"A contact is required to book an {KINDS[kind]}")
        _book(self, books, kind, document, None)
        return _plain(document)

    def touch(self, guid: str) -> dict[str, Any] | None:
        """The accountant edits and saves a draft: only its TimeStamp (and UpdatedAt) change. The document, None if
        there is no such one; ValueError for a booked one."""
        found = self.find(guid)
        if found is None:
            return None
        _, kind, document = found
        if document["Status"] != "Draft":
            raise ValueError(f"Only a draft {KINDS[kind]} can be edited")
        document.update(TimeStamp=self.stamp(), UpdatedAt=now_iso())
        return _plain(document)

    def summary(self) -> dict[str, Any]:
        """The books as stored (JSON-safe, organisations by their id as text) and the call counts."""
        return {
            "organizations": {
                str(ident): {
                    "name": books.name,
                    "contacts": _plain(list(books.contacts.values())),
                    "products": _plain(list(books.products.values())),
                    "invoices": _plain(list(books.invoices.values())),
                    "creditnotes": _plain(list(books.creditnotes.values())),
                }
                for ident, books in self.organisations.items()
            },
            "calls": {str(ident): n for ident, n in self.calls.items()},
            "most_calls_in_a_minute": {str(ident): n for ident, n in self.most_calls_in_a_minute.items()},
            "refused_429": self.refused_429,
            "access_tokens": len(self.access_tokens),
        }


def _duration(seconds: float) -> str:
    """A rate window as Dinero words it: 1m for 60 seconds, else seconds (1s)."""
    return f"{seconds / 60:g}m" if seconds % 60 == 0 else f"{seconds:g}s"


# --- requests: admission, routing ----------------------------------------------------------------------------------

ORGANISATION_PATH = re.compile(rf"{PREFIX}/v1(?:\.2)?/(\d+)(?:/.*)?")


def admit(state: DineroState, request: Request, settings: Settings) -> Response | dict[str, str]:
    """Before faults and latency: for a call to an organisation, 401 without a live token, and the rate limit."""
    match = ORGANISATION_PATH.fullmatch(request.path.rstrip("/"))
    if match is None:
        return {}
    grant = state.grant(request)
    if grant is None:
        return _denied()
    return state.count_call(int(match.group(1)), grant.client_id, settings) or {}


def handle(state: DineroState, request: Request, settings: Settings) -> Response:
    """Answer a request under /dinero/: the token host, the authorize page or the API."""
    path = request.path.removeprefix(PREFIX).rstrip("/") or "/"
    try:
        for pattern, views in ROUTES:
            match = pattern.fullmatch(path)
            if match is None:
                continue
            view = views.get(request.method)
            if view is None:
                allowed = ", ".join(sorted(views))
                response = error(405, f"The requested resource does not support http method '{request.method}'.")
                response.headers["Allow"] = allowed
                return response
            return view(state, request, settings, *(unquote(group) for group in match.groups()))
        return error(404, f"No HTTP resource was found that matches the request URI '{request.path}'.")
    except Refusal as refusal:
        return refusal.response


def _api(view: Callable[..., Response]) -> Callable[..., Response]:
    """A view of an organisation's API: the token, its access to the organisation and Dinero Pro come first; the
    view gets (state, books, request, *path groups)."""

    def checked(
        state: DineroState, request: Request, settings: Settings, organisation: str, *rest: str
    ) -> Response:
        grant = state.grant(request)
        if grant is None:
            return _denied()
        books = state.organisations.get(int(organisation))
        if books is None or books.id not in grant.organisations:
            return error(403, NO_ACCESS, 403)
        if not books.is_pro:
            return error(403, NO_PRO_MESSAGE, NO_PRO)
        return view(state, books, request, *rest)

    return checked


# --- responses -------------------------------------------------------------------------------------------------------


def error(status: int, message: str, code: int | None = None, problems: dict[str, str] | None = None) -> Response:
    """An error in Dinero's shape; errorCode defaults to the status."""
    code = status if code is None else code
    danish = DANISH.get(code, DANISH.get(status, "Der opstod en fejl."))
    return _json(
        status,
        {
            "errorCode": code,
            "errorMessage": message,
            "validationErrors": problems or {},
            "languageSpecificMessages": [{"property": "", "message": danish}],
        },
    )


def _invalid(problems: dict[str, str]) -> Refusal:
    return Refusal(error(400, VALIDATION_FAILED, 400, problems))


def _denied() -> Response:
    return _json(401, {"errorCode": 401, "errorMessage": DENIED}, {"WWW-Authenticate": "Bearer"})


def _oauth_error(status: int, code: str, description: str | None = None) -> Response:
    body = {"error": code, **({"error_description": description} if description else {})}
    headers = {"Cache-Control": "no-store", **({"WWW-Authenticate": "Basic"} if status == 401 else {})}
    return _json(status, body, headers)


def _json(status: int, payload: Any, headers: dict[str, str] | None = None) -> Response:
    body = json.dumps(payload, default=_json_number).encode()
    return Response(status, body, {"Content-Type": "application/json; charset=utf-8", **(headers or {})})


def _json_number(value: Any) -> float:
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(f"{value!r} is not JSON")


def _plain(value: Any) -> Any:
    """`value` with its Decimals as floats: what a JSON client would see."""
    return json.loads(json.dumps(value, default=_json_number))


# --- tokens and the authorize page -----------------------------------------------------------------------------------


def _token(state: DineroState, request: Request, settings: Settings) -> Response:
    """POST /connect/token: the client first, then the grant."""
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type != "application/x-www-form-urlencoded":
        return _oauth_error(400, "invalid_request", "The body must be application/x-www-form-urlencoded.")
    form = dict(parse_qsl(request.body.decode("utf-8", "replace"), keep_blank_values=True))
    client = _client(request, form)
    if client != (CLIENT_ID, CLIENT_SECRET):
        return _oauth_error(401, "invalid_client")
    grant_type = form.get("grant_type", "")
    if grant_type == "password":
        organisation = API_KEYS.get(form.get("username", ""))
        if organisation is None or form.get("password") != form.get("username"):
            return _oauth_error(400, "invalid_grant", BAD_CREDENTIALS)
        return _json(200, state.issue(Grant(CLIENT_ID, (organisation,)), settings, refresh=False), _NO_STORE)
    if grant_type == "authorization_code":
        code = state.codes.get(form.get("code", ""))
        if code is None or code.client_id != client[0] or code.redirect_uri != form.get("redirect_uri"):
            return _oauth_error(400, "invalid_grant")
        del state.codes[form["code"]]  # a code works once
        return _json(200, state.issue(code, settings, refresh=True), _NO_STORE)
    if grant_type == "refresh_token":
        refresh = state.refresh_tokens.get(form.get("refresh_token", ""))
        if refresh is None or refresh.client_id != client[0]:
            return _oauth_error(400, "invalid_grant")
        del state.refresh_tokens[form["refresh_token"]]  # rotation: the used one stops working
        return _json(200, state.issue(refresh, settings, refresh=True), _NO_STORE)
    return _oauth_error(400, "unsupported_grant_type")


_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def _client(request: Request, form: dict[str, str]) -> tuple[str, str] | None:
    """(client_id, client_secret) from HTTP Basic (each form-urlencoded, RFC 6749 §2.3.1), else the form."""
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "basic":
        try:
            client_id, _, secret = base64.b64decode(credentials.strip(), validate=True).decode().partition(":")
        except ValueError:
            return None
        return unquote(client_id.replace("+", " ")), unquote(secret.replace("+", " "))
    if "client_id" in form:
        return form["client_id"], form.get("client_secret", "")
    return None


def _authorize(state: DineroState, request: Request, settings: Settings) -> Response:
    """GET /connect/authorize: the merchant's consent page, a form that POSTs the code and state to redirect_uri
    (response_mode form_post, the only one the sandbox speaks)."""
    query = request.query
    redirect_uri = query.get("redirect_uri", "")
    problem = None
    if query.get("client_id") != CLIENT_ID:
        problem = "Unknown client_id."
    elif query.get("response_type") != "code":
        problem = "response_type must be code."
    elif REQUIRED_SCOPE not in query.get("scope", "").split():
        problem = f"scope must include {REQUIRED_SCOPE}."
    elif not redirect_uri.startswith(("http://", "https://")):
        problem = "redirect_uri must be an http(s) URL."
    elif query.get("response_mode", "form_post") != "form_post":
        problem = "response_mode must be form_post."
    if problem:
        return Response(400, f"invalid_request: {problem}".encode(), {"Content-Type": "text/plain; charset=utf-8"})
    code = secrets.token_urlsafe(24)
    state.codes[code] = Grant(CLIENT_ID, (AUTHORIZED_ORGANISATION,), redirect_uri=redirect_uri)
    name = ORGANISATIONS[AUTHORIZED_ORGANISATION][0]
    body = f"""<h1>Giv IEX adgang til {html.escape(name)}</h1>
<p>IEX beder om at læse og skrive i organisationen {html.escape(name)} ({AUTHORIZED_ORGANISATION}).</p>
<form method="POST" action="{html.escape(redirect_uri)}">
<input type="hidden" name="code" value="{html.escape(code)}">
<input type="hidden" name="state" value="{html.escape(query.get("state", ""))}">
<button type="submit">Allow</button>
</form>
<form method="POST" action="{html.escape(redirect_uri)}">
<input type="hidden" name="error" value="access_denied">
<input type="hidden" name="state" value="{html.escape(query.get("state", ""))}">
<button type="submit">Deny</button>
</form>
"""
    return html_page(200, "Dinero: giv adgang", body, lang="da")


def _organizations(state: DineroState, request: Request, settings: Settings) -> Response:
    grant = state.grant(request)
    if grant is None:
        return _denied()
    rows = [
        {"Id": ident, "Name": books.name, "IsPro": books.is_pro, "IsPayingPro": books.is_pro}
        for ident, books in state.organisations.items()
        if ident in grant.organisations
    ]
    names = _fields(
        _params(request), ("Id", "Name", "IsPro", "IsPayingPro"), ("Id", "Name", "IsPro", "IsPayingPro")
    )
    return _json(200, [{name: row[name] for name in names} for row in rows])


# --- reading bodies ----------------------------------------------------------------------------------------------------


def _body(request: Request) -> dict[str, Any]:
    """The request's JSON object, numbers with a decimal point as exact Decimals; nulls dropped (as absent)."""
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type != "application/json":
        raise Refusal(error(415, "The request entity's media type is not supported: send application/json."))
    try:
        body = json.loads(request.body or b"{}", parse_float=Decimal)
    except ValueError as exc:
        raise Refusal(error(400, f"The request body is not valid JSON: {exc}")) from None
    if not isinstance(body, dict):
        raise Refusal(error(400, "The request body must be a JSON object."))
    return body


class _Form:
    """A JSON object's properties read one by one; what is wrong goes into `problems` under `at` + the name."""

    def __init__(self, body: dict[str, Any], problems: dict[str, str], at: str = "") -> None:
        self.body = body
        self.problems = problems
        self.at = at

    def fail(self, name: str, message: str) -> None:
        self.problems.setdefault(f"{self.at}{name}", message)

    def value(self, name: str, required: bool) -> Any:
        value = self.body.get(name)
        if value is None:
            if required:
                self.fail(name, f"The {name} field is required.")
            return _MISSING
        return value

    def text(self, name: str, required: bool = False, max_length: int | None = None) -> str | None:
        value = self.value(name, required)
        if value is _MISSING:
            return None
        if not isinstance(value, str):
            self.fail(name, f"{name} must be a string.")
            return None
        if required and not value.strip():
            self.fail(name, f"The {name} field is required.")
            return None
        if max_length is not None and len(value) > max_length:
            self.fail(name, f"{name} may be at most {max_length} characters long.")
            return None
        return value

    def choice(self, name: str, choices: tuple[str, ...], default: str) -> str:
        value = self.text(name)
        if value is None:
            return default
        if value not in choices:
            self.fail(name, f"{name} must be one of: {', '.join(choices)}.")
        return value

    def number(self, name: str, required: bool = False, two_decimals: bool = False) -> Decimal | None:
        value = self.value(name, required)
        if value is _MISSING:
            return None
        if isinstance(value, bool) or not isinstance(value, int | Decimal):
            self.fail(name, f"{name} must be a number.")
            return None
        number = Decimal(value)
        if abs(number) >= MAX_AMOUNT:
            self.fail(name, f"{name} is too large.")
            return None
        exponent = number.normalize().as_tuple().exponent
        if two_decimals and isinstance(exponent, int) and exponent < -2:  # 10.10 has one decimal, 10.005 three
            self.fail(name, f"{name} may have at most two decimals.")
            return None
        return number

    def integer(self, name: str, required: bool = False) -> int | None:
        value = self.value(name, required)
        if value is _MISSING:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(name, f"{name} must be a whole number.")
            return None
        return value

    def boolean(self, name: str, required: bool = False, default: bool = False) -> bool:
        value = self.value(name, required)
        if value is _MISSING:
            return default
        if not isinstance(value, bool):
            self.fail(name, f"{name} must be true or false.")
            return default
        return value

    def date(self, name: str, required: bool = False) -> str | None:
        value = self.text(name, required)
        if value is not None and not _is_date(value):
            self.fail(name, f"{name} must be a date (YYYY-MM-DD).")
            return None
        return value


def _is_date(text: str) -> bool:
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return len(text) == 10


# --- lists: pages, fields and filters -----------------------------------------------------------------------------


def _params(request: Request) -> dict[str, str]:
    """The query parameters by lower-cased name: ASP.NET binds them case-insensitively."""
    return {name.lower(): value for name, value in request.query.items()}


def _fields(params: dict[str, str], allowed: tuple[str, ...], default: tuple[str, ...]) -> tuple[str, ...]:
    text = params.get("fields", "")
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [name for name in names if name not in allowed]
    if unknown:
        raise Refusal(error(400, f"Unknown field(s): {', '.join(unknown)}. Allowed: {', '.join(allowed)}."))
    return names or default


def _whole(params: dict[str, str], name: str, default: int) -> int:
    text = params.get(name.lower())
    if text is None:
        return default
    if not re.fullmatch(r"\d+", text.strip()):
        raise Refusal(error(400, f"{name} must be a whole number, not {text!r}."))
    return int(text)


def _collection(
    params: dict[str, str],
    rows: list[dict[str, Any]],
    found: list[dict[str, Any]],
    allowed: tuple[str, ...],
    default: tuple[str, ...],
) -> Response:
    """A page of the rows `found` among all `rows`, each showing the asked-for fields."""
    names = _fields(params, allowed, default)
    size = _whole(params, "pageSize", DEFAULT_PAGE_SIZE)
    page = _whole(params, "page", 0)
    if not 1 <= size <= MAX_PAGE_SIZE:
        raise Refusal(error(400, f"pageSize must be between 1 and {MAX_PAGE_SIZE}."))
    shown = [{name: row.get(name) for name in names} for row in found[page * size : (page + 1) * size]]
    pagination = {
        "MaxPageSizeAllowed": MAX_PAGE_SIZE,
        "PageSize": size,
        "Result": len(found),
        "ResultWithoutFilter": len(rows),
        "Page": page,
    }
    return _json(200, {"Collection": shown, "Pagination": pagination})


_CLAUSE = re.compile(r"\s*([A-Za-z]+)\s+eq\s+'((?:[^']|'')*)'\s*")
_JOIN = re.compile(r"(and|or)\s+")

Matcher = Callable[[dict[str, Any]], bool]


def _query_filter(text: str, filterable: tuple[str, ...]) -> Matcher:
    """`Field eq 'value'` clauses joined by `and` (binding tighter) and `or`; anything else is 400."""
    groups: list[list[tuple[str, str]]] = [[]]
    at = 0
    while True:
        clause = _CLAUSE.match(text, at)
        if clause is None or clause.group(1) not in filterable:
            raise Refusal(error(400, "Invalid query filter"))
        groups[-1].append((clause.group(1), clause.group(2).replace("''", "'").casefold()))
        at = clause.end()
        if at == len(text):
            break
        join = _JOIN.match(text, at)
        if join is None or text[at - 1] not in " \t":
            raise Refusal(error(400, "Invalid query filter"))
        if join.group(1) == "or":
            groups.append([])
        at = join.end()

    def matches(row: dict[str, Any]) -> bool:
        return any(all(str(row.get(name) or "").casefold() == value for name, value in group) for group in groups)

    return matches


def _filtered(kind: str, params: dict[str, str], rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    text = params.get("queryfilter", "").strip()
    if not text:
        return rows
    matches = _query_filter(text, FILTERABLE[kind])
    return [row for row in rows if matches(row)]


# --- the chart -------------------------------------------------------------------------------------------------------


def _accounts(state: DineroState, books: Books, request: Request) -> Response:
    rows = [
        {"AccountNumber": number, "Name": name, "VatCode": code, "IsHidden": False}
        for number, name, code, _ in ACCOUNTS
    ]
    return _json(200, rows)


def _vat_types(state: DineroState, books: Books, request: Request) -> Response:
    return _json(200, [{"VatCode": code, "Name": name, "VatRate": rate} for code, name, rate in VAT_TYPES])


def _sales_account(form: _Form, name: str = "AccountNumber") -> int | None:
    number = form.integer(name, required=True)
    if number is not None and number not in SALES_ACCOUNTS:
        form.fail(name, f"Account {number} is not a sales account of the organization.")
        return None
    return number


def _unit(form: _Form) -> str | None:
    unit = form.text("Unit", required=True)
    if unit is not None and unit not in UNITS:
        form.fail("Unit", f"Unit must be one of: {', '.join(UNITS)}.")
        return None
    return unit


# --- contacts --------------------------------------------------------------------------------------------------------


def _contact(body: dict[str, Any]) -> dict[str, Any]:
    problems: dict[str, str] = {}
    form = _Form(body, problems)
    contact: dict[str, Any] = {
        "Name": form.text("Name", required=True, max_length=255),
        "CountryKey": form.text("CountryKey", required=True),
        "IsPerson": form.boolean("IsPerson", required=True),
        **{name: form.text(name) for name in CONTACT_TEXTS},
        "PaymentConditionType": form.text("PaymentConditionType"),
        "PaymentConditionNumberOfDays": form.integer("PaymentConditionNumberOfDays"),
    }
    country = contact["CountryKey"]
    if country is not None and not re.fullmatch(r"[A-Z]{2}", country):
        form.fail("CountryKey", "CountryKey must be an ISO 3166-1 alpha-2 code, e.g. DK.")
    if contact["PaymentConditionType"] not in (None, *PAYMENT_CONDITIONS):
        form.fail("PaymentConditionType", f"PaymentConditionType must be one of: {', '.join(PAYMENT_CONDITIONS)}.")
    if (contact["PaymentConditionNumberOfDays"] or 0) < 0:
        form.fail("PaymentConditionNumberOfDays", "PaymentConditionNumberOfDays must not be negative.")
    if problems:
        raise _invalid(problems)
    return contact


def _list_contacts(state: DineroState, books: Books, request: Request) -> Response:
    params = _params(request)
    rows = list(books.contacts.values())
    found = _filtered("contacts", params, rows)
    return _collection(params, rows, found, CONTACT_FIELDS, DEFAULT_FIELDS["contacts"])


def _create_contact(state: DineroState, books: Books, request: Request) -> Response:
    contact = _contact(_body(request))
    guid = str(uuid.uuid4())
    now = now_iso()
    books.contacts[guid] = {"ContactGuid": guid, **contact, "CreatedAt": now, "UpdatedAt": now}
    return _json(201, {"ContactGuid": guid})


def _get_contact(state: DineroState, books: Books, request: Request, guid: str) -> Response:
    return _json(200, _found(books.contacts, guid, "contact"))


def _replace_contact(state: DineroState, books: Books, request: Request, guid: str) -> Response:
    current = _found(books.contacts, guid, "contact")
    current.update(_contact(_body(request)), UpdatedAt=now_iso())
    return _json(200, {})


def _found(rows: dict[str, dict[str, Any]], guid: str, noun: str) -> dict[str, Any]:
    row = rows.get(guid.lower())
    if row is None:
        raise Refusal(error(404, f"The {noun} {guid} was not found."))
    return row


# --- products ---------------------------------------------------------------------------------------------------------


def _product(books: Books, body: dict[str, Any], guid: str | None) -> dict[str, Any]:
    problems: dict[str, str] = {}
    form = _Form(body, problems)
    product: dict[str, Any] = {
        "ProductNumber": form.text("ProductNumber", max_length=50),
        "Name": form.text("Name", required=True, max_length=255),
        "BaseAmountValue": form.number("BaseAmountValue", required=True, two_decimals=True),
        "Quantity": form.number("Quantity", required=True),
        "AccountNumber": _sales_account(form),
        "Unit": _unit(form),
        "ExternalReference": form.text("ExternalReference", max_length=MAX_EXTERNAL_REFERENCE),
    }
    number = product["ProductNumber"]
    if number and any(row["ProductNumber"] == number and key != guid for key, row in books.products.items()):
        form.fail("ProductNumber", f"The product number {number} is already in use.")
    if problems:
        raise _invalid(problems)
    rate = VAT_RATES[SALES_ACCOUNTS[product["AccountNumber"]]]
    product["BaseAmountValueInclVat"] = money(product["BaseAmountValue"] * (1 + rate))
    return product


def _list_products(state: DineroState, books: Books, request: Request) -> Response:
    params = _params(request)
    rows = list(books.products.values())
    found = _filtered("products", params, rows)
    return _collection(params, rows, found, PRODUCT_FIELDS, DEFAULT_FIELDS["products"])


def _create_product(state: DineroState, books: Books, request: Request) -> Response:
    product = _product(books, _body(request), None)
    guid = str(uuid.uuid4())
    now = now_iso()
    books.products[guid] = {"ProductGuid": guid, **product, "CreatedAt": now, "UpdatedAt": now}
    return _json(201, {"ProductGuid": guid})


def _get_product(state: DineroState, books: Books, request: Request, guid: str) -> Response:
    return _json(200, _found(books.products, guid, "product"))


def _replace_product(state: DineroState, books: Books, request: Request, guid: str) -> Response:
    """PUT replaces the product (what is left out is gone), checked as a new one."""
    current = _found(books.products, guid, "product")
    current.update(_product(books, _body(request), current["ProductGuid"]), UpdatedAt=now_iso())
    return _json(200, {})


# --- invoices and credit notes --------------------------------------------------------------------------------------


def _document(books: Books, body: dict[str, Any], kind: str) -> dict[str, Any]:
    """The body's invoice or credit note, checked and priced (see the module docstring); 400 with every problem."""
    problems: dict[str, str] = {}
    form = _Form(body, problems)
    contact_guid = form.text("ContactGuid")
    contact = books.contacts.get(contact_guid.lower()) if contact_guid else None
    if contact_guid and contact is None:
        form.fail("ContactGuid", f"The contact {contact_guid} was not found.")
    currency = form.text("Currency") or "DKK"
    if not re.fullmatch(r"[A-Z]{3}", currency):
        form.fail("Currency", "Currency must be an ISO 4217 code of three capital letters, e.g. DKK.")
    condition = form.choice("PaymentConditionType", PAYMENT_CONDITIONS, "Netto")
    days = form.integer("PaymentConditionNumberOfDays", required=condition in WITH_DAYS)
    if condition in WITH_DAYS and days is not None and days < 0:
        form.fail("PaymentConditionNumberOfDays", "PaymentConditionNumberOfDays must not be negative.")
    if condition in PAYMENT_CONDITIONS and condition not in WITH_DAYS and days:
        form.fail(
            "PaymentConditionNumberOfDays", f"PaymentConditionNumberOfDays must be left out for {condition}."
        )
    incl_vat = form.boolean("ShowLinesInclVat")
    document: dict[str, Any] = {
        "ContactGuid": contact["ContactGuid"] if contact else None,
        "ContactName": contact["Name"] if contact else None,
        "ExternalReference": form.text("ExternalReference", max_length=MAX_EXTERNAL_REFERENCE),
        "Currency": currency,
        "Language": form.choice("Language", LANGUAGES, "da-DK"),
        "Date": form.date("Date", required=True),
        "PaymentConditionType": condition,
        "PaymentConditionNumberOfDays": days if condition in WITH_DAYS else None,
        "ShowLinesInclVat": incl_vat,
        "Description": form.text("Description"),
        "Comment": form.text("Comment"),
        "ProductLines": _lines(form, books, body.get("ProductLines"), incl_vat, kind),
    }
    if kind == "creditnotes":
        credited = form.text("CreditNoteFor")
        if credited and credited.lower() not in books.invoices:
            form.fail("CreditNoteFor", f"The invoice {credited} to credit was not found.")
        document["CreditNoteFor"] = credited.lower() if credited else None
    if problems:
        raise _invalid(problems)
    lines = document["ProductLines"]
    document["TotalExclVat"] = sum((line["TotalAmount"] for line in lines), Decimal("0.00"))
    document["TotalInclVat"] = sum((line["TotalAmountInclVat"] for line in lines), Decimal("0.00"))
    document["TotalVat"] = document["TotalInclVat"] - document["TotalExclVat"]
    document["TotalLines"] = [{"Type": "VatTotal", "Label": "Moms", "TotalAmount": document["TotalVat"]}]
    return document


def _lines(form: _Form, books: Books, value: Any, incl_vat: bool, kind: str) -> list[dict[str, Any]]:
    if value is None or (isinstance(value, list) and not value):
        form.fail("ProductLines", "At least one product line is required.")
        return []
    if not isinstance(value, list):
        form.fail("ProductLines", "ProductLines must be an array.")
        return []
    lines = []
    for index, line in enumerate(value):
        at = f"ProductLines[{index}]"
        if not isinstance(line, dict):
            form.fail(at, "A product line must be an object.")
            continue
        lines.append(_line(_Form(line, form.problems, f"{at}."), books, incl_vat, kind))
    return lines


def _line(form: _Form, books: Books, incl_vat: bool, kind: str) -> dict[str, Any]:
    """One line, priced; a Text line shows only its Description (and zero amounts)."""
    line_type = form.choice("LineType", ("Product", "Text"), "Product")
    description = form.text("Description", required=True)
    if line_type == "Text":
        if form.number("BaseAmountValue"):
            form.fail("BaseAmountValue", "A text line carries no amount: make it a Product line.")
        zero = Decimal("0.00")
        return {"LineType": "Text", "Description": description, "TotalAmount": zero, "TotalAmountInclVat": zero}
    guid = form.text("ProductGuid")
    line: dict[str, Any] = {
        "ProductGuid": guid.lower() if guid else None,
        "Description": description,
        "Comments": form.text("Comments"),
        "Quantity": form.number("Quantity", required=True),
        "AccountNumber": _sales_account(form),
        "Unit": _unit(form),
        "Discount": form.number("Discount") or Decimal(0),
        "LineType": "Product",
        "BaseAmountValue": form.number("BaseAmountValue", required=True, two_decimals=True),
    }
    if guid and line["ProductGuid"] not in books.products:
        form.fail("ProductGuid", f"The product {guid} was not found.")
    if not 0 <= line["Discount"] <= 100:
        form.fail("Discount", "Discount is a percentage: from 0 to 100.")
    if kind == "creditnotes" and (line["Quantity"] or 0) < 0:
        form.fail("Quantity", "A credit note credits: its quantities are not negative.")
    if any(line[name] is None for name in ("Quantity", "AccountNumber", "Unit", "BaseAmountValue")):
        return line
    rate = VAT_RATES[SALES_ACCOUNTS[line["AccountNumber"]]]
    charged = money(line["Quantity"] * line["BaseAmountValue"] * (1 - line["Discount"] / 100))
    if incl_vat:
        vat = money(charged * rate / (1 + rate))
        line.update(TotalAmount=charged - vat, TotalAmountInclVat=charged)
    else:
        line.update(TotalAmount=charged, TotalAmountInclVat=charged + money(charged * rate))
    return line


def _list_documents(kind: str, state: DineroState, books: Books, request: Request) -> Response:
    """The invoices (or credit notes) whose ExternalReference, ContactName, Description or Number holds the
    freeTextSearch text (case-insensitively), in the statusFilter's statuses and from startDate to endDate."""
    params = _params(request)
    rows = list(books.documents(kind).values())
    text = params.get("freetextsearch", "").casefold()
    statuses = [name.strip() for name in params.get("statusfilter", "").split(",") if name.strip()]
    unknown = [name for name in statuses if name not in STATUSES]
    if unknown:
        raise Refusal(error(400, f"Unknown status(es) {', '.join(unknown)}: use {', '.join(STATUSES)}."))
    bounds = [params.get(name) for name in ("startdate", "enddate")]
    if any(bound is not None and not _is_date(bound) for bound in bounds):
        raise Refusal(error(400, "startDate and endDate must be dates (YYYY-MM-DD)."))
    start, end = bounds

    def matches(row: dict[str, Any]) -> bool:
        searched = (row["ExternalReference"], row["ContactName"], row["Description"], row["Number"])
        return (
            (not text or any(text in str(value).casefold() for value in searched if value is not None))
            and (not statuses or row["Status"] in statuses)
            and (start is None or row["Date"] >= start)
            and (end is None or row["Date"] <= end)
        )

    allowed = CREDIT_NOTE_FIELDS if kind == "creditnotes" else DOCUMENT_FIELDS
    return _collection(params, rows, [row for row in rows if matches(row)], allowed, DEFAULT_FIELDS[kind])


def _create_document(kind: str, state: DineroState, books: Books, request: Request) -> Response:
    document = _document(books, _body(request), kind)
    guid = str(uuid.uuid4())
    now = now_iso()
    stamp = state.stamp()
    books.documents(kind)[guid] = {
        "Guid": guid,
        "Number": None,
        "Status": "Draft",
        "TimeStamp": stamp,
        **document,
        "CreatedAt": now,
        "UpdatedAt": now,
    }
    return _json(201, {"Guid": guid, "TimeStamp": stamp})


def _get_document(kind: str, state: DineroState, books: Books, request: Request, guid: str) -> Response:
    return _json(200, _found(books.documents(kind), guid, KINDS[kind]))


def _current(
    kind: str, books: Books, request: Request, guid: str, verb: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The draft a write names and the request's body: 404 for none, 400 without a Timestamp, errorCode 52 when
    it is not a draft, 58 when the Timestamp is not its current one (the status goes first: a retried booking
    learns that it is booked)."""
    document = _found(books.documents(kind), guid, KINDS[kind])
    body = _body(request)
    problems: dict[str, str] = {}
    stamp = _Form(body, problems).text("Timestamp", required=True)
    if problems:
        raise _invalid(problems)
    if document["Status"] != "Draft":
        noun = "invoices" if kind == "invoices" else "credit notes"
        raise Refusal(error(400, f"Only draft {noun} can be {verb}", NOT_DRAFT))
    if stamp != document["TimeStamp"]:
        raise Refusal(error(400, STALE_MESSAGE, STALE))
    return document, body


def _update_document(kind: str, state: DineroState, books: Books, request: Request, guid: str) -> Response:
    """PUT /v1.2/...: the whole draft again, with the Timestamp it was read with."""
    document, body = _current(kind, books, request, guid, "updated")
    document.update(_document(books, body, kind), TimeStamp=state.stamp(), UpdatedAt=now_iso())
    return _json(200, {"Guid": document["Guid"], "TimeStamp": document["TimeStamp"]})


def _book_document(kind: str, state: DineroState, books: Books, request: Request, guid: str) -> Response:
    document, body = _current(kind, books, request, guid, "booked")
    problems: dict[str, str] = {}
    number = _Form(body, problems).integer("Number")
    if not document["ContactGuid"]:
        problems["ContactGuid"] = f"A contact is required to book an {KINDS[kind]}"
    if number is not None and number < 1:
        problems["Number"] = "Number must be 1 or more."
    elif number is not None and any(row["Number"] == number for row in books.documents(kind).values()):
        problems["Number"] = f"The number {number} is already used by another {KINDS[kind]}."
    if problems:
        raise _invalid(problems)
    _book(state, books, kind, document, number)
    return _json(200, {"Guid": document["Guid"], "Number": document["Number"], "TimeStamp": document["TimeStamp"]})


def _book(state: DineroState, books: Books, kind: str, document: dict[str, Any], number: int | None) -> None:
    document.update(
        Number=books.next_number(kind) if number is None else number,
        Status="Booked",
        TimeStamp=state.stamp(),
        UpdatedAt=now_iso(),
    )


def _delete_document(kind: str, state: DineroState, books: Books, request: Request, guid: str) -> Response:
    document, _ = _current(kind, books, request, guid, "deleted")
    del books.documents(kind)[document["Guid"]]
    return Response(204)


# --- routes ----------------------------------------------------------------------------------------------------------

View = Callable[..., Response]
ORG, GUID = r"(\d+)", r"([^/]+)"


def _documents(kind: str, path: str) -> dict[str, dict[str, View]]:
    """The routes of invoices (path "invoices") or credit notes ("sales/creditnotes")."""
    return {
        f"/v1/{ORG}/{path}": {
            "GET": _api(partial(_list_documents, kind)),
            "POST": _api(partial(_create_document, kind)),
        },
        f"/v1/{ORG}/{path}/{GUID}": {
            "GET": _api(partial(_get_document, kind)),
            "DELETE": _api(partial(_delete_document, kind)),
        },
        f"/v1.2/{ORG}/{path}/{GUID}": {"PUT": _api(partial(_update_document, kind))},
        f"/v1/{ORG}/{path}/{GUID}/book": {"POST": _api(partial(_book_document, kind))},
    }


_PATHS: dict[str, dict[str, View]] = {
    "/connect/token": {"POST": _token},
    "/connect/authorize": {"GET": _authorize},
    "/v1/organizations": {"GET": _organizations},
    f"/v1/{ORG}/accounts/entry": {"GET": _api(_accounts)},
    f"/v1/{ORG}/vatTypes": {"GET": _api(_vat_types)},
    f"/v1/{ORG}/contacts": {"GET": _api(_list_contacts), "POST": _api(_create_contact)},
    f"/v1/{ORG}/contacts/{GUID}": {"GET": _api(_get_contact), "PUT": _api(_replace_contact)},
    f"/v1/{ORG}/products": {"GET": _api(_list_products), "POST": _api(_create_product)},
    f"/v1/{ORG}/products/{GUID}": {"GET": _api(_get_product), "PUT": _api(_replace_product)},
    **_documents("invoices", "invoices"),
    **_documents("creditnotes", "sales/creditnotes"),
}
ROUTES = [(re.compile(path), views) for path, views in _PATHS.items()]  # path under /dinero -> method -> view
