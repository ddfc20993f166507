"""The sandbox's HTTP server: routing to the fake APIs, latency and fault injection, webhooks, the order timer
and the control API.

`make_server(host, port, **config)` builds a `Sandbox`; `.start()` serves in daemon threads, `.stop()` ends it.
The control API needs no credentials and lives under /_sandbox/:

- POST /_sandbox/shopify/orders            body: overrides (optional) -> 201 the new order (webhook orders/create)
- POST /_sandbox/shopify/orders/{id}       body: partial change -> 200 the order (orders/updated, orders/paid)
- POST /_sandbox/shopify/orders/{id}/refunds  body: {"refund_line_items": [{"line_item_id" or "sku", "quantity"}],
       "shipping": {"full_refund": true} or {"amount"}, "note"} -> 201 the refund (refunds/create, orders/updated);
       422 {"errors": ...} for what Shopify refuses (e.g. more units than are left)
- POST /_sandbox/shopify/orders/{id}/cancel   body: {"reason": "customer", "refund": false} -> 200 the order
       (refunds/create if it refunded, orders/cancelled, orders/updated)
- POST /_sandbox/shopify/webhooks/{topic}  body: a payload, whole -> 202, posted as Shopify would under {topic}
       (e.g. orders/create with Shopify's documented example order; the shop keeps orders and refunds posted so)
- POST /_sandbox/shopify/products          body: overrides -> 201 the new product (products/create)
- POST /_sandbox/woocommerce/orders        body: overrides (optional: status, prices_include_tax, line_items [{"sku",
       "quantity"}], coupon {"code", "discount_type", "amount"}, fees [{"name", "total", "taxable"}], shipping
       true/false/{"total"}, meta_data) -> 201 the new order (webhook order.created); 400 for bad overrides
- POST /_sandbox/woocommerce/orders/{id}   body: {"status", "customer_note", "billing", ...} -> 200 the order
       (order.updated)
- POST /_sandbox/woocommerce/orders/{id}/refunds  body: {"line_items": [{"id" or "sku", "quantity"}], "amount"?,
       "reason"?, "shipping": true?} or only {"amount", "reason"?} -> 201 the refund (order.updated); 422 in
       WooCommerce's error shape for what it refuses (more than is left)
- POST /_sandbox/woocommerce/orders/{id}/trash    -> 200 the order (order.deleted, body {"id"})
- POST /_sandbox/woocommerce/orders/{id}/restore  -> 200 the order (order.restored)
- POST /_sandbox/woocommerce/products      body: overrides (name, sku, regular_price, manage_stock, stock_quantity,
       tax_class, variations [{"sku", "option", ...}]) -> 201 the new product (product.created, each variation too)
- POST /_sandbox/woocommerce/webhooks/{topic}  body: a payload, whole -> 202, posted as WooCommerce would under
       {topic} (e.g. order.created with the documented order 727; the store keeps an order posted so)
- POST /_sandbox/woocommerce/ping          body: {"webhook_id"} (optional) -> 202, the ping a new webhook gets
- POST /_sandbox/economic/products/{n}     body: {"available": n} -> 200 the e-conomic product
- POST /_sandbox/economic/drafts/{n}/book  -> 201 the booked invoice (draft n booked as the accountant would)
- POST /_sandbox/dinero/invoices/{guid}/book     -> 200 the invoice (the accountant books the draft in Dinero: its
       TimeStamp changes; the same for /_sandbox/dinero/creditnotes/{guid}/book); 400 when it cannot be booked
- POST /_sandbox/dinero/invoices/{guid}/touch    -> 200 the draft, saved by the accountant: only its TimeStamp changes
       (so a client's Timestamp is stale; also for creditnotes)
- POST /_sandbox/dinero/revoke-tokens      body: {"refresh_tokens": false} -> 200 {"revoked": n}: every access token
       (and refresh token, if told) stops working
- POST /_sandbox/config                    body: settings to change -> 200 all settings
- GET  /_sandbox/state                     -> 200 counts, the e-conomic books and the Dinero organisations
- POST /_sandbox/reset                     -> 200 the state, back to the start (settings are kept)
"""

from __future__ import annotations

import copy
import json
import logging
import queue
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import NoneType
from typing import Any, cast
from urllib.parse import parse_qsl, urlsplit

from sandbox import dinero, economic, shopify, woocommerce
from sandbox.common import BadRequest, Refusal, Request, Response, dispatch, json_response, route
from sandbox.dinero import DineroState
from sandbox.economic import EconomicState
from sandbox.orders import Refused
from sandbox.shopify import ShopifyState
from sandbox.woocommerce import WooCommerceState, WooError

logger = logging.getLogger("sandbox")
WEBHOOK_TIMEOUT = 5  # seconds


@dataclass
class Fault:
    """The next `times` API requests whose path contains `path_contains` get `status` (and Retry-After if set),
    with `body` as is, or else the API's own error body."""

    path_contains: str
    status: int
    times: int = 1
    retry_after: int | None = None
    body: str | None = None

    @classmethod
    def parse(cls, value: Any) -> Fault:
        """A fault from its JSON form; ValueError if it is not a valid one."""
        if not isinstance(value, dict):
            raise ValueError("faults must be objects")
        unknown = set(value) - {each.name for each in fields(cls)}
        if unknown:
            raise ValueError(f"unknown fault fields: {', '.join(sorted(unknown))}")
        fault = cls(
            path_contains=_checked("path_contains", value.get("path_contains"), str),
            status=_checked("status", value.get("status"), int),
            times=_checked("times", value.get("times", 1), int),
            retry_after=_checked("retry_after", value.get("retry_after"), int, NoneType),
            body=_checked("body", value.get("body"), str, NoneType),
        )
        if fault.status not in {status.value for status in HTTPStatus} or fault.status < 400:
            raise ValueError(f"a fault's status must be an HTTP error status, not {fault.status}")
        if fault.times < 1:
            raise ValueError("a fault's times must be at least 1")
        return fault

    def response(self, error: Callable[[int, str], Response]) -> Response:
        if self.body is None:
            response = error(self.status, HTTPStatus(self.status).phrase)
        else:
            response = Response(self.status, self.body.encode(), {"Content-Type": _content_type(self.body)})
        if self.retry_after is not None:
            response.headers["Retry-After"] = str(self.retry_after)
        return response


SETTING_TYPES: dict[str, tuple[type, ...]] = {
    "shopify_token": (str,),
    "economic_app_secret_token": (str,),
    "economic_agreement_grant_token": (str,),
    "latency_ms": (int,),
    "order_interval": (int, float),
    "refund_every": (int,),
    "webhook_url": (str, NoneType),
    "webhook_secret": (str, NoneType),
    "seed": (int, NoneType),
    "shopify_bucket_size": (int,),
    "shopify_leak_per_second": (int, float),
    "woocommerce_consumer_key": (str,),
    "woocommerce_consumer_secret": (str,),
    "woocommerce_read_consumer_key": (str,),
    "woocommerce_read_consumer_secret": (str,),
    "woocommerce_strips_authorization": (bool,),
    "woocommerce_plain_permalinks": (bool,),
    "woocommerce_webhook_url": (str, NoneType),
    "woocommerce_webhook_secret": (str, NoneType),
    "woocommerce_order_interval": (int, float),
    "woocommerce_legacy_tax_lines": (bool,),
    "dinero_token_seconds": (int,),
    "dinero_rate_limit": (int,),
    "dinero_rate_window": (int, float),
}


@dataclass
class Config:
    """The settings; they survive a reset. `seed` seeds the order generator (at start and at each reset)."""

    # The sandbox's well-known demo credentials, not secrets.
    shopify_token: str = "shpat_sandbox"  # noqa: S105
    # e-conomic's documented demo tokens (demo, demo) also work, but for GET only, as in e-conomic itself.
    economic_app_secret_token: str = "sandbox-app-secret"  # noqa: S105
    economic_agreement_grant_token: str = "sandbox-grant"  # noqa: S105
    latency_ms: int = 0
    order_interval: float = 0  # seconds between generated orders; 0 = off
    refund_every: int = 0  # with every n-th generated order, refund an item of an earlier paid one; 0 = never
    webhook_url: str | None = None
    webhook_secret: str | None = None
    faults: list[Fault] = field(default_factory=list)
    seed: int | None = None
    shopify_bucket_size: int = 40  # Shopify's leaky bucket: a benchmark may raise these
    shopify_leak_per_second: float = 2
    # The WooCommerce store's REST API keys: read/write, and read only.
    woocommerce_consumer_key: str = "ck_sandbox"
    woocommerce_consumer_secret: str = "cs_sandbox"  # noqa: S105
    woocommerce_read_consumer_key: str = "ck_sandbox_read"
    woocommerce_read_consumer_secret: str = "cs_sandbox_read"  # noqa: S105
    woocommerce_strips_authorization: bool = False  # the server drops the Authorization header (a security plugin)
    woocommerce_plain_permalinks: bool = False  # WordPress's "Plain" permalinks: no /wp-json/, only ?rest_route=
    woocommerce_webhook_url: str | None = None
    woocommerce_webhook_secret: str | None = None
    woocommerce_order_interval: float = 0  # seconds between generated WooCommerce orders; 0 = off
    # Orders made while on are as a store older than WooCommerce 3.7 made them: tax lines without rate_percent (null).
    woocommerce_legacy_tax_lines: bool = False
    dinero_token_seconds: int = 3600  # the lifetime of a new access token (0: expired at once)
    dinero_rate_limit: int = 100  # Dinero's calls per organisation and client in any rolling window
    dinero_rate_window: float = 60  # seconds

    def update(self, changes: dict[str, Any]) -> None:
        """Apply settings given in their JSON form, all or none; ValueError names a bad one."""
        values = {name: _setting(name, value) for name, value in changes.items()}
        for name, value in values.items():
            setattr(self, name, value)

    def take_fault(self, path: str) -> Fault | None:
        """The first fault matching `path`, used up by one."""
        for fault in self.faults:
            if fault.path_contains in path:
                fault.times -= 1
                if fault.times == 0:
                    self.faults.remove(fault)
                return fault
        return None


def _setting(name: str, value: Any) -> Any:
    if name == "faults":
        if not isinstance(value, list):
            raise ValueError("faults must be a list")
        return [Fault.parse(each) for each in value]
    if name not in SETTING_TYPES:
        raise ValueError(f"unknown setting {name!r}")
    _checked(name, value, *SETTING_TYPES[name])
    if (
        name
        in ("latency_ms", "order_interval", "refund_every", "woocommerce_order_interval", "dinero_token_seconds")
        and value < 0
    ):
        raise ValueError(f"{name} must not be negative")
    if (
        name in ("shopify_bucket_size", "shopify_leak_per_second", "dinero_rate_limit", "dinero_rate_window")
        and value <= 0
    ):
        raise ValueError(f"{name} must be above 0")
    if (
        name in ("webhook_url", "woocommerce_webhook_url")
        and value is not None
        and not value.startswith(("http://", "https://"))
    ):
        raise ValueError(f"{name} must be an http:// or https:// URL")
    return value


def _checked(name: str, value: Any, *types: type) -> Any:
    """`value` if it has one of `types` (a boolean is no number); ValueError otherwise."""
    if (isinstance(value, bool) and bool not in types) or not isinstance(value, types):
        raise ValueError(f"{name} must be {' or '.join(each.__name__ for each in types)}, not {value!r}")
    return value


class State:
    """Everything the sandbox holds. Hold `lock` to read or change any of it."""

    shopify: ShopifyState
    economic: EconomicState
    woocommerce: WooCommerceState
    dinero: DineroState
    requests: int  # API requests received (not control requests)
    webhooks_sent: int
    webhooks_failed: int

    def __init__(self, config: Config) -> None:
        self.lock = threading.Lock()
        self.config = config
        self.reset()

    def reset(self) -> None:
        """Back to the initial state; the config stays."""
        self.shopify = ShopifyState(self.config.seed)
        self.economic = EconomicState()
        self.woocommerce = WooCommerceState(self.config.seed)
        self.dinero = DineroState()
        self.requests = 0
        self.webhooks_sent = 0
        self.webhooks_failed = 0

    def summary(self) -> dict[str, Any]:
        return {
            "shopify": {"orders": len(self.shopify.orders), "products": len(self.shopify.products)},
            "economic": self.economic.summary(),
            "woocommerce": self.woocommerce.summary(),  # its webhooks are counted there
            "dinero": self.dinero.summary(),
            "webhooks_sent": self.webhooks_sent,
            "webhooks_failed": self.webhooks_failed,
            "requests": self.requests,
        }


@dataclass(frozen=True)
class _Api:
    prefix: str
    answer: Callable[[State, Request], Response]
    error: Callable[[int, str], Response]
    headers: dict[str, str]  # on every response, faults included
    # Called first, before faults: a refusal (Shopify's 401 and 429), or headers to add to the answer.
    admit: Callable[[State, Request], Response | dict[str, str]] = lambda state, request: {}


def _answer_shopify(state: State, request: Request) -> Response:
    return shopify.handle(state.shopify, request, state.config.shopify_token)


def _admit_shopify(state: State, request: Request) -> Response | dict[str, str]:
    config = state.config
    return shopify.admit(
        state.shopify, request, config.shopify_token, config.shopify_bucket_size, config.shopify_leak_per_second
    )


def _answer_economic(state: State, request: Request) -> Response:
    config = state.config
    return economic.handle(
        state.economic, request, config.economic_app_secret_token, config.economic_agreement_grant_token
    )


def _answer_woocommerce(state: State, request: Request) -> Response:
    return woocommerce.handle(state.woocommerce, request, _woocommerce_settings(state.config))


def _woocommerce_settings(config: Config) -> woocommerce.Settings:
    return woocommerce.Settings(
        (config.woocommerce_consumer_key, config.woocommerce_consumer_secret),
        (config.woocommerce_read_consumer_key, config.woocommerce_read_consumer_secret),
        config.woocommerce_strips_authorization,
        config.woocommerce_plain_permalinks,
    )


def _dinero_settings(config: Config) -> dinero.Settings:
    return dinero.Settings(config.dinero_token_seconds, config.dinero_rate_limit, config.dinero_rate_window)


def _answer_dinero(state: State, request: Request) -> Response:
    return dinero.handle(state.dinero, request, _dinero_settings(state.config))


def _admit_dinero(state: State, request: Request) -> Response | dict[str, str]:
    return dinero.admit(state.dinero, request, _dinero_settings(state.config))


APIS = (
    _Api("/shopify/admin/", _answer_shopify, shopify.error, shopify.HEADERS, _admit_shopify),
    _Api("/economic/", _answer_economic, economic.error, {}),
    # The store's whole site: its REST API under /woocommerce/wp-json/ (or ?rest_route=), its pages around it.
    _Api(woocommerce.PREFIX, _answer_woocommerce, woocommerce.error, {}),
    # Dinero's API (api.dinero.dk) and its token host (Visma Connect) alike.
    _Api(f"{dinero.PREFIX}/", _answer_dinero, dinero.error, {}, _admit_dinero),
)


class Sandbox:
    """One sandbox server: `url` is its base address (http://host:port), `state` what it holds.

    The methods are the control API for Python callers; each takes the lock and returns copies.
    """

    def __init__(self, host: str, port: int, config: Config) -> None:
        self.state = State(config)
        self._server = _Server((host, port), self)  # bound and listening from here on
        self.url = f"http://{host}:{self._server.server_port}"
        self._wake = threading.Event()  # makes the order timer re-read its interval, or stop
        self._woocommerce_wake = threading.Event()  # the same for the WooCommerce order timer
        self._stopping = False
        self._threads: list[threading.Thread] = []
        # WooCommerce webhooks go out one at a time, in the order the store made them, from one thread.
        self._woocommerce_outbox: queue.Queue[list[urllib.request.Request] | None] = queue.Queue()
        self._woocommerce_sender: threading.Thread | None = None

    def start(self) -> Sandbox:
        """Serve (and run the order timers) in daemon threads; the socket is listening already."""
        config = self.state.config
        for name, target in (
            ("sandbox-http", lambda: self._server.serve_forever(poll_interval=0.1)),
            (
                "sandbox-orders",
                lambda: self._run_order_timer(self._wake, lambda: config.order_interval, self._make_shopify_order),
            ),
            (
                "sandbox-woocommerce-orders",
                lambda: self._run_order_timer(
                    self._woocommerce_wake, lambda: config.woocommerce_order_interval, self._make_woocommerce_order
                ),
            ),
        ):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        """Stop serving and close the socket; webhooks still in flight are abandoned."""
        self._stopping = True
        self._wake.set()
        self._woocommerce_wake.set()
        self._woocommerce_outbox.put(None)
        if self._threads:
            self._server.shutdown()
        self._server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)

    def respond(self, request: Request) -> Response:
        """The answer to one request; called from the server's handler threads."""
        try:
            if request.path.startswith("/_sandbox/"):
                return dispatch(CONTROL_ROUTES, request, self) or _control_error(404, "No such control endpoint")
            for api in APIS:
                if request.path.startswith(api.prefix):
                    return self._answer_api(api, request)
            return _control_error(
                404,
                "Not found: the APIs live under /shopify/admin/, /economic/, /woocommerce/wp-json/ and /dinero/",
            )
        except Exception:
            logger.exception("Could not answer %s %s", request.method, request.path)
            return _control_error(500, "The sandbox failed; see its log")

    def _answer_api(self, api: _Api, request: Request) -> Response:
        """Count the request, let the API admit it, wait out the latency, then answer with the API's refusal, a
        matching fault or the API itself."""
        with self.state.lock:
            self.state.requests += 1
            latency_ms = self.state.config.latency_ms
            admitted = api.admit(self.state, request)
            fault = None if isinstance(admitted, Response) else self.state.config.take_fault(request.path)
        if latency_ms:
            time.sleep(latency_ms / 1000)
        if isinstance(admitted, Response):
            response = admitted
        elif fault is not None:
            response = fault.response(api.error)
        else:
            with self.state.lock:
                response = api.answer(self.state, request)
                self._send_woocommerce_events()  # what a write to the store announces (none for other APIs)
        if not isinstance(admitted, Response):
            response.headers.update(admitted)
        response.headers.update(api.headers)
        return response

    def create_order(self, overrides: dict[str, Any]) -> dict[str, Any]:
        """A new Shopify order (see `orders.make_order`), announced by webhook; ValueError for bad overrides."""
        with self.state.lock:
            order = self.state.shopify.create_order(overrides)
            self._notify([("orders/create", order)])
            return copy.deepcopy(order)

    def update_order(self, order_id: int, changes: dict[str, Any]) -> dict[str, Any] | None:
        """Change an order (see `orders.apply_changes`), announced by webhook; None if there is no such order."""
        with self.state.lock:
            order = self.state.shopify.orders.get(order_id)
            if order is None:
                return None
            became_paid = self.state.shopify.update_order(order, changes)
            self._notify([("orders/updated", order), *([("orders/paid", order)] if became_paid else [])])
            return copy.deepcopy(order)

    def refund_order(self, order_id: int, body: Any) -> dict[str, Any] | None:
        """Refund part of a Shopify order (see `orders.refund`), announced by webhooks refunds/create then
        orders/updated; the Refund, or None if there is no such order. Raises Refused (Shopify's 422)."""
        with self.state.lock:
            order = self.state.shopify.orders.get(order_id)
            if order is None:
                return None
            made = self.state.shopify.refund_order(order, body)
            self._notify([("refunds/create", made), ("orders/updated", order)])
            return copy.deepcopy(made)

    def cancel_order(self, order_id: int, reason: Any = "other", refund: bool = False) -> dict[str, Any] | None:
        """Cancel a Shopify order (see `orders.cancel`), announced by webhooks refunds/create (if it refunded),
        orders/cancelled and orders/updated; the order, or None if there is no such order. Raises Refused."""
        with self.state.lock:
            order = self.state.shopify.orders.get(order_id)
            if order is None:
                return None
            made = self.state.shopify.cancel_order(order, reason, refund)
            refunded = [("refunds/create", made)] if made else []
            self._notify([*refunded, ("orders/cancelled", order), ("orders/updated", order)])
            return copy.deepcopy(order)

    def post_webhook(self, topic: str, payload: dict[str, Any]) -> None:
        """Post a payload given whole (a vendor's documented example, say) as Shopify would, signed. The shop keeps
        an order as given, and a refund with its order, so the Admin API answers for them too."""
        with self.state.lock:
            orders = self.state.shopify.orders
            if topic.startswith("orders/") and isinstance(payload.get("id"), int):
                orders[payload["id"]] = copy.deepcopy(payload)
            elif (
                topic == "refunds/create" and (order := orders.get(int(payload.get("order_id") or 0))) is not None
            ):
                order.setdefault("refunds", []).append(copy.deepcopy(payload))
            self._notify([(topic, payload)])

    def create_product(self, overrides: dict[str, Any]) -> dict[str, Any]:
        """A new Shopify product (see `ShopifyState.add_product`), announced by webhook."""
        with self.state.lock:
            product = self.state.shopify.add_product(overrides)
            self._notify([("products/create", product)])
            return copy.deepcopy(product)

    def set_economic_available(self, product_number: str, available: int) -> dict[str, Any] | None:
        with self.state.lock:
            return copy.deepcopy(self.state.economic.set_available(product_number, available))

    def book_draft(self, number: int) -> dict[str, Any] | None:
        """Book e-conomic draft invoice `number` as the accountant would: the booked invoice, None if there is
        no such draft; ValueError when it cannot be booked (no lines, a barred product)."""
        with self.state.lock:
            return self.state.economic.book_draft(number, f"{self.url}/economic")

    def configure(self, changes: dict[str, Any]) -> dict[str, Any]:
        """Change settings (see `Config.update`) and return them all."""
        with self.state.lock:
            self.state.config.update(changes)
            self._wake.set()
            self._woocommerce_wake.set()
            return asdict(self.state.config)

    def summary(self) -> dict[str, Any]:
        with self.state.lock:
            return copy.deepcopy(self.state.summary())

    def reset(self) -> dict[str, Any]:
        with self.state.lock:
            self.state.reset()
            return copy.deepcopy(self.state.summary())

    def _notify(self, events: list[tuple[str, dict[str, Any]]]) -> None:
        """Post webhooks for (topic, payload) events, in order, from a background thread, when a URL and a
        secret are set; each event gets its X-Shopify-Event-Id here, so a redelivery would keep it. The caller
        holds the lock."""
        url, secret = self.state.config.webhook_url, self.state.config.webhook_secret
        if url and secret:
            bodies = [(topic, json.dumps(payload).encode(), str(uuid.uuid4())) for topic, payload in events]
            threading.Thread(target=self._deliver, args=(url, secret, bodies), daemon=True).start()

    def _deliver(self, url: str, secret: str, events: list[tuple[str, bytes, str]]) -> None:
        for topic, body, event_id in events:
            try:
                # The URL's scheme was checked to be http(s) when it was configured.
                with urllib.request.urlopen(  # noqa: S310
                    shopify.webhook_request(url, secret, topic, body, event_id), timeout=WEBHOOK_TIMEOUT
                ):
                    delivered = True
            except (OSError, ValueError) as exc:
                logger.warning("Webhook %s to %s failed: %s", topic, url, exc)
                delivered = False
            with self.state.lock:
                if delivered:
                    self.state.webhooks_sent += 1
                else:
                    self.state.webhooks_failed += 1

    def _run_order_timer(
        self, wake: threading.Event, interval: Callable[[], float], make: Callable[[int], None]
    ) -> None:
        """Call `make(n)` for the n-th order every `interval()` seconds while that is above 0 (a new interval applies
        at once, when `wake` is set)."""
        made = 0
        while not self._stopping:
            seconds = interval()
            if wake.wait(seconds if seconds > 0 else None):
                wake.clear()
                continue
            made += 1
            make(made)

    def _make_shopify_order(self, made: int) -> None:
        """A Shopify order, and with every `refund_every`-th, a refund of an item of an earlier paid order, as
        customers send things back."""
        logger.info("Created order %s", self.create_order({})["name"])
        every = self.state.config.refund_every
        if every and made % every == 0 and (refund := self._refund_something()):
            logger.info("Refunded an item of order %s", refund["order_id"])

    def _make_woocommerce_order(self, made: int) -> None:
        """A WooCommerce order, and with every `refund_every`-th, a refund of an item of an earlier one; the order
        before it, if its payment was pending, is paid now (pending -> processing), as a customer's payment lands."""
        with self.state.lock:
            earlier = list(self.state.woocommerce.orders.values())[-1:]
        if earlier and earlier[0]["status"] == "pending":
            paid = self.woocommerce_update_order(int(earlier[0]["id"]), {"status": "processing"})
            logger.info("WooCommerce order %s was paid", paid and paid["number"])
        logger.info("Created WooCommerce order %s", self.woocommerce_create_order({})["number"])
        every = self.state.config.refund_every
        if every and made % every == 0 and (refunded := self._woocommerce_refund_something()):
            logger.info("Refunded an item of WooCommerce order %s", refunded)

    def _refund_something(self) -> dict[str, Any] | None:
        """One item of the latest paid order that has one left, refunded."""
        with self.state.lock:
            for order in reversed(list(self.state.shopify.orders.values())[:-1]):
                if order["financial_status"] in ("paid", "partially_refunded") and not order.get("cancelled_at"):
                    line = next((item for item in order["line_items"] if item.get("current_quantity")), None)
                    if line is not None:
                        order_id, line_id = order["id"], line["id"]
                        break
            else:
                return None
        try:
            return self.refund_order(order_id, {"refund_line_items": [{"line_item_id": line_id, "quantity": 1}]})
        except Refused as exc:
            logger.info("Could not refund order %s: %s", order_id, exc)
            return None

    def _woocommerce_refund_something(self) -> int | None:
        """One unit of the first line with units left of the latest earlier processing or completed WooCommerce
        order, refunded; that order's id."""
        with self.state.lock:
            shop = self.state.woocommerce
            for order in reversed(list(shop.orders.values())[:-1]):
                refunded = shop.refunded_units(order["id"])
                line = next((i for i in order["line_items"] if i["quantity"] > refunded.get(i["id"], 0)), None)
                if order["status"] in ("processing", "completed") and line is not None:
                    order_id, line_id = int(order["id"]), line["id"]
                    break
            else:
                return None
        try:
            self.woocommerce_refund_order(order_id, {"line_items": [{"id": line_id, "quantity": 1}]})
        except (WooError, ValueError) as exc:
            logger.info("Could not refund WooCommerce order %s: %s", order_id, exc)
            return None
        return order_id

    # Dinero --------------------------------------------------------------------------------------------------------

    def dinero_book(self, guid: str) -> dict[str, Any] | None:
        """Book a Dinero draft invoice or credit note as the accountant would in Dinero's UI (its TimeStamp
        changes): the document, None if there is no such one; ValueError when it cannot be booked."""
        with self.state.lock:
            return self.state.dinero.book(guid)

    def dinero_touch(self, guid: str) -> dict[str, Any] | None:
        """The accountant edits and saves a Dinero draft: only its TimeStamp changes, so a client's is stale. The
        document, None if there is no such one; ValueError for a booked one."""
        with self.state.lock:
            return self.state.dinero.touch(guid)

    def dinero_revoke_tokens(self, refresh_tokens: bool = False) -> int:
        """Every Dinero access token (and refresh token, if told) stops working; how many did."""
        with self.state.lock:
            return self.state.dinero.revoke_tokens(refresh_tokens)

    # WooCommerce ---------------------------------------------------------------------------------------------------

    def woocommerce_create_order(self, overrides: dict[str, Any]) -> dict[str, Any]:
        """A new WooCommerce order (see `WooCommerceState.create_order`), announced by order.created; ValueError
        for bad overrides."""
        with self.state.lock:
            legacy = self.state.config.woocommerce_legacy_tax_lines
            order = self.state.woocommerce.create_order(overrides, legacy_tax_lines=legacy)
            self._send_woocommerce_events()
            return woocommerce.render_order(order, self._woocommerce_links())

    def woocommerce_update_order(self, order_id: int, changes: dict[str, Any]) -> dict[str, Any] | None:
        """Change an order (see `WooCommerceState.update_order`), announced by order.updated; None if there is no
        such order."""
        with self.state.lock:
            order = self.state.woocommerce.orders.get(order_id)
            if order is None:
                return None
            self.state.woocommerce.update_order(order, changes)
            self._send_woocommerce_events()
            return woocommerce.render_order(order, self._woocommerce_links())

    def woocommerce_refund_order(self, order_id: int, body: Any) -> dict[str, Any] | None:
        """Refund part of an order (see `WooCommerceState.refund_order`), announced by order.updated; the refund,
        or None if there is no such order. Raises WooError (what WooCommerce refuses) and ValueError."""
        with self.state.lock:
            order = self.state.woocommerce.orders.get(order_id)
            if order is None:
                return None
            refund = self.state.woocommerce.refund_order(order, body)
            self._send_woocommerce_events()
            return woocommerce.render_refund(refund, order_id, self._woocommerce_links())

    def woocommerce_trash_order(self, order_id: int) -> dict[str, Any] | None:
        """Move an order to the trash: order.deleted with {"id"}; None if there is no such order."""
        with self.state.lock:
            order = self.state.woocommerce.orders.get(order_id)
            if order is None:
                return None
            self.state.woocommerce.trash_order(order)
            self._send_woocommerce_events()
            return woocommerce.render_order(order, self._woocommerce_links())

    def woocommerce_restore_order(self, order_id: int) -> dict[str, Any] | None:
        """Take an order out of the trash: order.restored; None if there is no such order."""
        with self.state.lock:
            order = self.state.woocommerce.orders.get(order_id)
            if order is None:
                return None
            self.state.woocommerce.restore_order(order)
            self._send_woocommerce_events()
            return woocommerce.render_order(order, self._woocommerce_links())

    def woocommerce_post_webhook(self, topic: str, payload: dict[str, Any]) -> None:
        """Post a payload given whole (the documented order 727, say) as WooCommerce would, signed; an order is
        kept by the store so the REST API answers for it too."""
        with self.state.lock:
            self.state.woocommerce.keep_posted(topic, payload)
            self._send_woocommerce_events()

    def woocommerce_ping(self, webhook_id: int = 1) -> None:
        """Post the ping WooCommerce sends a new webhook's address; ValueError if no woocommerce_webhook_url is
        set."""
        with self.state.lock:
            url = self.state.config.woocommerce_webhook_url
            if not url:
                raise ValueError("woocommerce_webhook_url is not set")
            self._queue_woocommerce([woocommerce.ping_request(url, webhook_id)])

    def woocommerce_create_product(self, overrides: dict[str, Any]) -> dict[str, Any]:
        """A new WooCommerce product (see `WooCommerceState.add_product`), announced by product.created."""
        with self.state.lock:
            made = self.state.woocommerce.add_product(overrides)
            self._send_woocommerce_events()
            return woocommerce.render_product(made[0], self._woocommerce_links())

    def _woocommerce_links(self) -> woocommerce.Links:
        return woocommerce.Links(f"{self.url}{woocommerce.PREFIX}", self.state.config.woocommerce_plain_permalinks)

    def _send_woocommerce_events(self) -> None:
        """Queue the webhooks the store announced, signed, when a URL and a secret are set (the caller holds the
        lock): each body is the resource as the REST API shows it now."""
        events = self.state.woocommerce.take_events()
        url, secret = self.state.config.woocommerce_webhook_url, self.state.config.woocommerce_webhook_secret
        if events and url and secret:
            links = self._woocommerce_links()
            source = f"{links.site}/"  # home_url('/')
            self._queue_woocommerce(
                [
                    woocommerce.webhook_request(
                        url, secret, event.topic, woocommerce.payload_of(event, links), source
                    )
                    for event in events
                ]
            )

    def _queue_woocommerce(self, deliveries: list[urllib.request.Request]) -> None:
        self._woocommerce_outbox.put(deliveries)
        if self._woocommerce_sender is None:
            self._woocommerce_sender = threading.Thread(
                target=self._send_woocommerce, name="sandbox-woocommerce-webhooks", daemon=True
            )
            self._woocommerce_sender.start()

    def _send_woocommerce(self) -> None:
        while (deliveries := self._woocommerce_outbox.get()) is not None:
            for request in deliveries:
                delivered = _post_woocommerce(request)
                with self.state.lock:
                    if delivered:
                        self.state.woocommerce.webhooks_sent += 1
                    else:
                        self.state.woocommerce.webhooks_failed += 1


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # WooCommerce posts with redirection 0: a redirect is the answer


_WOOCOMMERCE_OPENER = urllib.request.build_opener(_NoRedirects)


def _post_woocommerce(request: urllib.request.Request) -> bool:
    """POST a WooCommerce webhook; delivered when answered 200-302, as WC_Webhook counts a success."""
    try:
        with _WOOCOMMERCE_OPENER.open(request, timeout=WEBHOOK_TIMEOUT) as answer:
            status = answer.status
    except urllib.error.HTTPError as exc:
        status = exc.code
        exc.close()
    except (OSError, ValueError) as exc:
        logger.warning("WooCommerce webhook to %s failed: %s", request.full_url, exc)
        return False
    if not 200 <= status <= 302:
        logger.warning("WooCommerce webhook to %s answered %s", request.full_url, status)
    return 200 <= status <= 302


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the default 5 makes bursts of clients wait for SYN retries

    def __init__(self, address: tuple[str, int], sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    def _handle(self) -> None:
        target = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        request = Request(
            method=self.command,
            path=target.path,
            query_string=target.query,
            query=dict(parse_qsl(target.query, keep_blank_values=True)),
            headers={name.lower(): value for name, value in self.headers.items()},
            body=self.rfile.read(length) if length else b"",
        )
        response = cast(_Server, self.server).sandbox.respond(request)
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        self.wfile.write(response.body)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle  # PATCH: e-conomic answers it 405

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s - " + format, self.address_string(), *args)


def make_server(host: str = "127.0.0.1", port: int = 8900, **config: Any) -> Sandbox:
    """A sandbox listening on host:port (port 0 picks a free port; `.url` tells which); `.start()` serves.

    `config` takes the settings of POST /_sandbox/config (shopify_token, economic_app_secret_token,
    economic_agreement_grant_token, latency_ms, order_interval, refund_every, webhook_url, webhook_secret, faults,
    shopify_bucket_size, shopify_leak_per_second, the woocommerce_* keys, woocommerce_strips_authorization,
    woocommerce_plain_permalinks, woocommerce_webhook_url, woocommerce_webhook_secret,
    woocommerce_order_interval, woocommerce_legacy_tax_lines, dinero_token_seconds, dinero_rate_limit,
    dinero_rate_window) and `seed`.
    Raises ValueError for a bad setting.
    """
    settings = Config()
    settings.update(config)
    return Sandbox(host, port, settings)


def _control_error(status: int, message: str) -> Response:
    return json_response(status, {"error": message})


def _object(request: Request) -> dict[str, Any]:
    """The control request's JSON object body ({} when empty)."""
    try:
        body = request.json()
    except BadRequest as exc:
        raise Refusal(_control_error(400, str(exc))) from None
    if not isinstance(body, dict):
        raise Refusal(_control_error(400, "The body must be a JSON object"))
    return body


def _new_order(sandbox: Sandbox, request: Request) -> Response:
    try:
        return json_response(201, sandbox.create_order(_object(request)))
    except ValueError as exc:
        return _control_error(400, str(exc))


def _change_order(sandbox: Sandbox, request: Request, order_id: str) -> Response:
    try:
        order = sandbox.update_order(int(order_id), _object(request))
    except ValueError as exc:
        return _control_error(400, str(exc))
    return json_response(200, order) if order else _control_error(404, f"No order {order_id}")


def _refund_order(sandbox: Sandbox, request: Request, order_id: str) -> Response:
    try:
        made = sandbox.refund_order(int(order_id), _object(request))
    except Refused as exc:
        return json_response(422, {"errors": exc.errors})
    return json_response(201, made) if made else _control_error(404, f"No order {order_id}")


def _cancel_order(sandbox: Sandbox, request: Request, order_id: str) -> Response:
    body = _object(request)
    refund = body.get("refund", False)
    if not isinstance(refund, bool):
        return json_response(422, {"errors": {"refund": ["must be true or false"]}})
    try:
        order = sandbox.cancel_order(int(order_id), body.get("reason", "other"), refund)
    except Refused as exc:
        return json_response(422, {"errors": exc.errors})
    return json_response(200, order) if order else _control_error(404, f"No order {order_id}")


def _post_webhook(sandbox: Sandbox, request: Request, topic: str) -> Response:
    sandbox.post_webhook(topic, _object(request))
    return json_response(202, {"posted": topic})


def _new_product(sandbox: Sandbox, request: Request) -> Response:
    try:
        return json_response(201, sandbox.create_product(_object(request)))
    except ValueError as exc:
        return _control_error(400, str(exc))


def _set_economic_available(sandbox: Sandbox, request: Request, product_number: str) -> Response:
    available = _object(request).get("available")
    if isinstance(available, bool) or not isinstance(available, int):
        return _control_error(400, "available must be an integer")
    product = sandbox.set_economic_available(product_number, available)
    return json_response(200, product) if product else _control_error(404, f"No product {product_number}")


def _book_economic_draft(sandbox: Sandbox, request: Request, number: str) -> Response:
    try:
        booked = sandbox.book_draft(int(number))
    except ValueError as exc:
        return _control_error(400, str(exc))
    return json_response(201, booked) if booked else _control_error(404, f"No draft invoice {number}")


def _book_dinero(sandbox: Sandbox, request: Request, guid: str) -> Response:
    try:
        document = sandbox.dinero_book(guid)
    except ValueError as exc:
        return _control_error(400, str(exc))
    return json_response(200, document) if document else _control_error(404, f"No Dinero document {guid}")


def _touch_dinero(sandbox: Sandbox, request: Request, guid: str) -> Response:
    try:
        document = sandbox.dinero_touch(guid)
    except ValueError as exc:
        return _control_error(400, str(exc))
    return json_response(200, document) if document else _control_error(404, f"No Dinero document {guid}")


def _revoke_dinero_tokens(sandbox: Sandbox, request: Request) -> Response:
    refresh_tokens = _object(request).get("refresh_tokens", False)
    if not isinstance(refresh_tokens, bool):
        return _control_error(400, "refresh_tokens must be true or false")
    return json_response(200, {"revoked": sandbox.dinero_revoke_tokens(refresh_tokens)})


def _configure(sandbox: Sandbox, request: Request) -> Response:
    try:
        return json_response(200, sandbox.configure(_object(request)))
    except ValueError as exc:
        return _control_error(400, str(exc))


def _state(sandbox: Sandbox, request: Request) -> Response:
    return json_response(200, sandbox.summary())


def _reset(sandbox: Sandbox, request: Request) -> Response:
    return json_response(200, sandbox.reset())


def _woocommerce_error(exc: WooError) -> Response:
    return json_response(exc.status, exc.body)


def _new_woocommerce_order(sandbox: Sandbox, request: Request) -> Response:
    try:
        return json_response(201, sandbox.woocommerce_create_order(_object(request)))
    except ValueError as exc:
        return _control_error(400, str(exc))


def _change_woocommerce_order(sandbox: Sandbox, request: Request, order_id: str) -> Response:
    try:
        order = sandbox.woocommerce_update_order(int(order_id), _object(request))
    except ValueError as exc:
        return _control_error(400, str(exc))
    return json_response(200, order) if order else _control_error(404, f"No WooCommerce order {order_id}")


def _refund_woocommerce_order(sandbox: Sandbox, request: Request, order_id: str) -> Response:
    try:
        made = sandbox.woocommerce_refund_order(int(order_id), _object(request))
    except WooError as exc:
        return _woocommerce_error(exc)
    except ValueError as exc:
        return _control_error(400, str(exc))
    return json_response(201, made) if made else _control_error(404, f"No WooCommerce order {order_id}")


def _trash_woocommerce_order(sandbox: Sandbox, request: Request, order_id: str) -> Response:
    try:
        order = sandbox.woocommerce_trash_order(int(order_id))
    except WooError as exc:
        return _woocommerce_error(exc)
    return json_response(200, order) if order else _control_error(404, f"No WooCommerce order {order_id}")


def _restore_woocommerce_order(sandbox: Sandbox, request: Request, order_id: str) -> Response:
    try:
        order = sandbox.woocommerce_restore_order(int(order_id))
    except WooError as exc:
        return _woocommerce_error(exc)
    return json_response(200, order) if order else _control_error(404, f"No WooCommerce order {order_id}")


def _new_woocommerce_product(sandbox: Sandbox, request: Request) -> Response:
    try:
        return json_response(201, sandbox.woocommerce_create_product(_object(request)))
    except WooError as exc:
        return _woocommerce_error(exc)
    except ValueError as exc:
        return _control_error(400, str(exc))


def _post_woocommerce_webhook(sandbox: Sandbox, request: Request, topic: str) -> Response:
    resource, _, event = topic.partition(".")
    if resource not in ("order", "product", "coupon", "customer") or event not in (
        "created",
        "updated",
        "deleted",
        "restored",
    ):
        return _control_error(400, f"{topic} is not a WooCommerce webhook topic")
    sandbox.woocommerce_post_webhook(topic, _object(request))
    return json_response(202, {"posted": topic})


def _ping_woocommerce(sandbox: Sandbox, request: Request) -> Response:
    webhook_id = _object(request).get("webhook_id", 1)
    if isinstance(webhook_id, bool) or not isinstance(webhook_id, int):
        return _control_error(400, "webhook_id must be an integer")
    try:
        sandbox.woocommerce_ping(webhook_id)
    except ValueError as exc:
        return _control_error(400, str(exc))
    return json_response(202, {"pinged": webhook_id})


def _content_type(body: str) -> str:
    try:
        json.loads(body)
    except ValueError:
        return "text/plain; charset=utf-8"
    return "application/json"


CONTROL_ROUTES = [
    route("POST", r"/_sandbox/shopify/orders", _new_order),
    route("POST", r"/_sandbox/shopify/orders/(\d+)", _change_order),
    route("POST", r"/_sandbox/shopify/orders/(\d+)/refunds", _refund_order),
    route("POST", r"/_sandbox/shopify/orders/(\d+)/cancel", _cancel_order),
    route("POST", r"/_sandbox/shopify/webhooks/(\w+/\w+)", _post_webhook),
    route("POST", r"/_sandbox/shopify/products", _new_product),
    route("POST", r"/_sandbox/woocommerce/orders", _new_woocommerce_order),
    route("POST", r"/_sandbox/woocommerce/orders/(\d+)", _change_woocommerce_order),
    route("POST", r"/_sandbox/woocommerce/orders/(\d+)/refunds", _refund_woocommerce_order),
    route("POST", r"/_sandbox/woocommerce/orders/(\d+)/trash", _trash_woocommerce_order),
    route("POST", r"/_sandbox/woocommerce/orders/(\d+)/restore", _restore_woocommerce_order),
    route("POST", r"/_sandbox/woocommerce/products", _new_woocommerce_product),
    route("POST", r"/_sandbox/woocommerce/webhooks/(\w+\.\w+)", _post_woocommerce_webhook),
    route("POST", r"/_sandbox/woocommerce/ping", _ping_woocommerce),
    route("POST", r"/_sandbox/economic/products/([^/]+)", _set_economic_available),
    route("POST", r"/_sandbox/economic/drafts/(\d+)/book", _book_economic_draft),
    route("POST", r"/_sandbox/dinero/(?:invoices|creditnotes)/([^/]+)/book", _book_dinero),
    route("POST", r"/_sandbox/dinero/(?:invoices|creditnotes)/([^/]+)/touch", _touch_dinero),
    route("POST", r"/_sandbox/dinero/revoke-tokens", _revoke_dinero_tokens),
    route("POST", r"/_sandbox/config", _configure),
    route("GET", r"/_sandbox/state", _state),
    route("POST", r"/_sandbox/reset", _reset),
]
