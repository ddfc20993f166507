"""The system catalogue, and the contract every connector is written against.

How to add a system
-------------------
1. Copy the nearest connector: `shopify/` for a webshop, `economic/` for an accounting system. Every connector has
   the same shape:
   - `client.py`: the system's API. One class, made from a Module (`Client(module)`), with the methods of
     `WebshopClient` or `AccountingClient` below. Every request goes through `iex.lib.http` (timeouts, retry
     classification, redaction); the base URL comes from `module.base_url`, so tests and the sandbox can point it
     at a local server.
   - `transforms.py`: the system's records to and from IEX's common format (`connections/common.py`). A webshop's
     module offers the functions of `WebshopTransforms`; an accounting system's are used by its own client.
   - `webhooks.py` (systems that post webhooks): the functions of `WebhookReader`.
   - `oauth.py` (systems with a page of their own where the merchant lets IEX in): the parts of `OAuth`.
   - `forms.py`: `CredentialsForm`, `SettingsForm` and `DEFAULT_SETTINGS`.
   - `__init__.py`: `SYSTEM = Webshop(...)` or `SYSTEM = Accounting(...)`, naming the parts above.
2. Add it to SYSTEMS at the bottom of this file, its monthly price to billing's seed (billing/migrations), and its
   API's shapes to the sandbox (`sandbox/`), as strict as the real system.
3. `make typecheck`: mypy checks the connector against the Protocols below. Then the shared tests: a connector
   imports nothing from another connector, nor any page (views) module.

A connector never imports another connector: a webshop and an accounting system meet only in the common format,
so each new shop works with every accounting system, and the other way round.
"""

from __future__ import annotations

from collections import abc
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol

from django import forms

from connections.common import CreditNote, Order, Outcome, Product, StockLevel
from iex.lib import http
from iex.lib.secrets import DecryptionError

if TYPE_CHECKING:
    from connections.models import Mapping, Module

# A value as the systems' JSON APIs give it, and a record: a JSON object.
JSON = dict[str, "JSON"] | list["JSON"] | str | int | float | bool | None
Raw = dict[str, JSON]
# A module's settings: its system's DEFAULT_SETTINGS overlaid with what the merchant saved.
Settings = dict[str, JSON]
# (source_ref, reference, updated_at): the source system's stable id of a record, what people call it ("#1042"),
# and the version's time (two transfers of one version are one).
SourceRef = tuple[str, str, datetime | None]
# Notes a state of the transfer with its data, for the Log: ("sent" | "answer" | ..., data, note).
Record = Callable[[str, JSON, str], None]
# Claims a key of the receiving system for this transfer (a customer it may create): the claim's Mapping, to note
# what it made on (target_ref), kept until the transfer ends. Raises Busy while another transfer holds it.
Claim = Callable[[str], "Mapping"]


# Marks a record a webhook only announced (a refund an order lists, a trashed order's id): the flow reads it whole
# from its system (WebshopClient.whole) before sending it.
PARTIAL = "_partial"


class Busy(Exception):
    """Another transfer holds what this one needs (the claim on a customer it is creating, the invoice a refund
    credits): try again shortly, without counting it as an attempt. The message says what it waits for."""

    delay: float | None = None  # when to try again, if the waiting knows (else the pipeline's own)


class Wait(Busy):
    """The system's account cannot take a call now (its rate budget is spent, or it has stopped answering): the
    transfer waits `delay` seconds without counting it as an attempt (connections/gate.py)."""

    def __init__(self, message: str, delay: float) -> None:
        super().__init__(message)
        self.delay = delay


# What reading a connected system's own lists for a settings form may raise (it does not answer, refuses, answers
# something else, or the credentials cannot be read): the form offers what it can instead.
UNREADABLE: tuple[type[Exception], ...] = (
    http.HTTPError,
    Busy,
    DecryptionError,
    KeyError,
    TypeError,
    ValueError,
)


@dataclass(frozen=True)
class Budget:
    """How many calls a system takes from one account in a window (its documented rate limit, with a margin)."""

    calls: int
    seconds: float


class WebshopClient(Protocol):
    """What the flows ask of a webshop's API."""

    def test(self) -> str:
        """A request that proves the credentials work; what to tell the merchant ("Connected to ...")."""
        ...

    def account(self) -> str:
        """Which account of the system the credentials reach, as it names it (the shop's domain or address, the
        agreement's or organisation's number): a system removed and added again finds what IEX made there by it."""
        ...

    def orders_since(self, since: datetime) -> Iterable[Raw]:
        """Every order created or changed since `since`, as the shop gives it."""
        ...

    def order(self, order_ref: str) -> Raw:
        """One order as it is now (a credit note needs its order)."""
        ...

    def refunds_since(self, since: datetime) -> Iterable[Raw]:
        """Every refund made since `since`, as the shop gives it."""
        ...

    def products_since(self, since: datetime) -> Iterable[Raw]:
        """Every product created or changed since `since`, as the shop gives it."""
        ...

    def whole(self, entity: str, record: Raw) -> Raw:
        """The whole record a webhook only announced (marked PARTIAL), read from the shop."""
        ...

    def set_stock(self, levels: list[StockLevel]) -> list[Raw]:
        """Set the available quantity of each SKU; one answer per level, `{"skipped": reason}` for an unknown SKU."""
        ...


class AccountingClient(Protocol):
    """What the flows ask of an accounting system's API. A send is idempotent through the record's `mapping`: a
    document the mapping knows (or the system finds by IEX's reference) is updated, never created twice."""

    def test(self) -> str:
        """A request that proves the credentials work; what to tell the merchant ("Connected to ...")."""
        ...

    def account(self) -> str:
        """Which account of the system the credentials reach, as it names it (the shop's domain or address, the
        agreement's or organisation's number): a system removed and added again finds what IEX made there by it."""
        ...

    def send_order(self, order: Order, mapping: Mapping, record: Record, claim: Claim) -> Outcome:
        """Create or update the order's document (a cancelled order: withdraw or credit it); the Outcome's action
        says what the system confirmed, its status "held" when the document cannot be booked as the shop charged it
        (a tax rate nothing books)."""
        ...

    def send_credit_note(
        self, credit: CreditNote, invoice: Mapping, mapping: Mapping, record: Record, claim: Claim
    ) -> Outcome:
        """A credit note for a refund of the order whose document `invoice` is the mapping of."""
        ...

    def send_product(self, product: Product, mapping: Mapping, record: Record) -> Outcome:
        """Create or update the product by its number (the shop's SKU)."""
        ...

    def stock_levels(self) -> list[StockLevel]:
        """The available quantity of every product that has one."""
        ...


class WebshopTransforms(Protocol):
    """A webshop's records to IEX's common format (the module `<kind>/transforms.py`)."""

    def order_ref(self, order: Raw) -> SourceRef: ...

    def refund_ref(self, refund: Raw) -> SourceRef: ...

    def product_ref(self, product: Raw) -> SourceRef: ...

    def skip_reason(self, order: Raw, settings: Settings) -> str:
        """Why this order is not transferred under the module's settings (not in an allowed state), or ""."""
        ...

    def to_order(self, order: Raw, settings: Settings) -> Order: ...

    def search_terms(self, order: Raw) -> tuple[list[str], str]:
        """What the Log's search finds the order by besides its numbers: its customer's names (the person's, the
        company's), and email."""
        ...

    def to_credit_note(self, refund: Raw, order: Raw, settings: Settings) -> CreditNote:
        """A refund of `order` as what to credit."""
        ...

    def to_products(self, product: Raw, settings: Settings) -> list[Product]:
        """One common product per variant that has a product number (SKU)."""
        ...


class WebhookReader(Protocol):
    """How a system's webhooks are verified and read (the module `<kind>/webhooks.py`)."""

    @property
    def TOPICS(self) -> abc.Mapping[str, str]:  # a module constant
        """The topics IEX handles, each to the entity its body is a record of ("" for events about the app)."""
        ...

    @property
    def KEPT_HEADERS(self) -> abc.Sequence[str]:  # a module constant
        """The headers stored with a delivery, for the Log and for support."""
        ...

    def verify(self, secrets: abc.Sequence[str], body: bytes, headers: abc.Mapping[str, str]) -> bool:
        """Whether the raw body is signed with one of the module's webhook secrets (compared in constant time): its
        secret, and for a while after a change the one it replaced (see Module.set_credentials)."""
        ...

    def topic(self, headers: abc.Mapping[str, str]) -> str: ...

    def event_id(self, headers: abc.Mapping[str, str]) -> str:
        """The id the system gives the event, the same on every retry of it: the key deliveries are stored once by
        ("" when the system gives none that stays the same)."""
        ...

    def ping(self, body: bytes, headers: abc.Mapping[str, str]) -> str:
        """The id a system's check of the address gives ("" for anything else): a ping is answered 200 and kept,
        without a signature to check (WooCommerce signs none)."""
        ...

    def records(self, topic: str, record: Raw) -> list[tuple[str, Raw]]:
        """(entity, record) of each record a delivery's body is or announces: its own, and records it only names
        (a refund an order lists), marked PARTIAL for the flow to read them whole from the system."""
        ...

    def record_ref(self, entity: str, record: Raw) -> SourceRef:
        """The reference of a record a delivery carries (raises KeyError, TypeError or ValueError when the body is
        not the record its topic promised)."""
        ...


class SettingsForm(Protocol):
    """A module's settings form. It may read what there is to choose from (product groups, locations) from the system
    through the module; without a module, or one not connected, it offers what it can."""

    def __call__(
        self,
        data: abc.Mapping[str, JSON] | None = None,
        *,
        initial: Settings | None = None,
        module: Module | None = None,
    ) -> forms.Form: ...


@dataclass(frozen=True)
class Authorize:
    """A system's own page where the merchant lets IEX in, after which the system posts IEX the credentials
    (WooCommerce's key generation): connecting without copying keys by hand."""

    # (the system's address, IEX's signed state, where the browser comes back, where the system posts) -> the page
    url: Callable[[str, str, str, str], str]
    # The system's post to IEX -> (the state IEX gave, the credentials); ValueError when it is not one.
    keys: Callable[[bytes], tuple[str, dict[str, Any]]]


@dataclass(frozen=True)
class OAuth:
    """A system's OAuth 2.0 authorization-code flow, or one shaped like it: the merchant approves IEX on the system's
    own page, which sends the browser back to IEX's return address with a code (and IEX's state); IEX turns the code
    into the credentials it keeps (a token, encrypted like every credential)."""

    # (the module, IEX's signed state, IEX's return address, what the merchant entered first: `asks`) -> the
    # system's page where the merchant approves IEX
    url: Callable[[Module, str, str, abc.Mapping[str, str]], str]
    # (the module, the code, IEX's return address, what the merchant entered first) -> the credentials to keep;
    # raises http.HTTPError when refused
    exchange: Callable[[Module, str, str, abc.Mapping[str, str]], dict[str, Any]]
    # Whether this installation is registered with the system as an app (its client id is set)
    available: Callable[[], bool]
    # The merchant's words on the button that sends them to the system's page ("": "Connect with <label>")
    button: str = ""
    # What the merchant enters before going, when the system's page lives at their own address (a Shopify shop's):
    # its cleaned data goes along in IEX's state.
    asks: type[forms.Form] | None = None
    # The answer's parameter that carries the code (e-conomic's grant flow gives its token as "token")
    code: str = "code"
    # (the answer's parameters, what the merchant entered first) -> why it is not the system's own answer to what
    # IEX asked ("" when it is): a system that signs its answer (Shopify's hmac)
    verify: Callable[[abc.Mapping[str, str], abc.Mapping[str, str]], str] | None = None
    # The credential only this flow gives: how the module's page tells a module connected through it
    marks: str = "refresh_token"
    # Systems where the flow installs IEX's app (Shopify's): the app's webhooks are signed with the app's secret, not
    # one the merchant enters, and the app subscribes to them itself through the system's API.
    # () -> the secret the system signs an installed app's webhooks with (IEX's client secret)
    webhook_secret: Callable[[], str] | None = None
    # (the module, the topics, an address of the module's it had before) -> IEX's subscriptions to the module's
    # webhook address are those topics, and none is left at the address before; raises http.HTTPError or Busy
    subscribe: Callable[[Module, abc.Collection[str], str], None] | None = None


@dataclass(frozen=True, kw_only=True)
class _System:
    kind: str
    label: str
    credentials_form: type[forms.Form]
    settings_form: SettingsForm
    default_settings: Settings
    about: str  # what it does in IEX and how it is connected, for the Systems page
    # Systems that post webhooks to /hooks/<token>/: how they are verified and read, and how the merchant sets
    # them up in the system (shown beside the address).
    webhooks: WebhookReader | None = None
    webhook_setup: str = ""
    authorize: Authorize | None = None
    oauth: OAuth | None = None
    # Calls one account of the system takes in a window; every worker keeps to it (connections/gate.py).
    budget: Budget | None = None
    # Flows the system cannot take part in, each with why (Dinero keeps no stock): not offered, and said so.
    not_offered: abc.Mapping[str, str] = field(default_factory=dict)

    @property
    def posts_webhooks(self) -> bool:
        return self.webhooks is not None


@dataclass(frozen=True, kw_only=True)
class Webshop(_System):
    category: ClassVar[Literal["webshop"]] = "webshop"
    client: Callable[[Module], WebshopClient]
    transforms: WebshopTransforms


@dataclass(frozen=True, kw_only=True)
class Accounting(_System):
    category: ClassVar[Literal["accounting"]] = "accounting"
    client: Callable[[Module], AccountingClient]


System = Webshop | Accounting


def webshop(kind: str) -> Webshop:
    """The webshop of this kind (a flow's source or target that must be one)."""
    system = SYSTEMS[kind]
    if not isinstance(system, Webshop):
        raise TypeError(f"{system.label} is not a webshop")
    return system


def accounting(kind: str) -> Accounting:
    """The accounting system of this kind."""
    system = SYSTEMS[kind]
    if not isinstance(system, Accounting):
        raise TypeError(f"{system.label} is not an accounting system")
    return system


# The kinds import the classes above from this module, so they are imported after them.
from connections.systems import dinero, economic, shopify, woocommerce  # noqa: E402

SYSTEMS: dict[str, System] = {
    system.kind: system for system in (shopify.SYSTEM, woocommerce.SYSTEM, economic.SYSTEM, dinero.SYSTEM)
}
