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
- POST /_sandbox/economic/products/{n}     body: {"available": n} -> 200 the e-conomic product
- POST /_sandbox/economic/drafts/{n}/book  -> 201 the booked invoice (draft n booked as the accountant would)
- POST /_sandbox/config                    body: settings to change -> 200 all settings
- GET  /_sandbox/state                     -> 200 counts and the e-conomic books
- POST /_sandbox/reset                     -> 200 the state, back to the start (settings are kept)
"""

from __future__ import annotations

import copy
import json
import logging
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import NoneType
from typing import Any, cast
from urllib.parse import parse_qsl, urlsplit

from sandbox import economic, shopify
from sandbox.common import BadRequest, Refusal, Request, Response, dispatch, json_response, route
from sandbox.economic import EconomicState
from sandbox.orders import Refused
from sandbox.shopify import ShopifyState

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
    if name in ("latency_ms", "order_interval", "refund_every") and value < 0:
        raise ValueError(f"{name} must not be negative")
    if name in ("shopify_bucket_size", "shopify_leak_per_second") and value <= 0:
        raise ValueError(f"{name} must be above 0")
    if name == "webhook_url" and value is not None and not value.startswith(("http://", "https://")):
        raise ValueError("webhook_url must be an http:// or https:// URL")
    return value


def _checked(name: str, value: Any, *types: type) -> Any:
    """`value` if it has one of `types` (a boolean is no number); ValueError otherwise."""
    if isinstance(value, bool) or not isinstance(value, types):
        raise ValueError(f"{name} must be {' or '.join(each.__name__ for each in types)}, not {value!r}")
    return value


class State:
    """Everything the sandbox holds. Hold `lock` to read or change any of it."""

    shopify: ShopifyState
    economic: EconomicState
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
        self.requests = 0
        self.webhooks_sent = 0
        self.webhooks_failed = 0

    def summary(self) -> dict[str, Any]:
        return {
            "shopify": {"orders": len(self.shopify.orders), "products": len(self.shopify.products)},
            "economic": self.economic.summary(),
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


APIS = (
    _Api("/shopify/admin/", _answer_shopify, shopify.error, shopify.HEADERS, _admit_shopify),
    _Api("/economic/", _answer_economic, economic.error, {}),
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
        self._stopping = False
        self._threads: list[threading.Thread] = []

    def start(self) -> Sandbox:
        """Serve (and run the order timer) in daemon threads; the socket is listening already."""
        for name, target in (
            ("sandbox-http", lambda: self._server.serve_forever(poll_interval=0.1)),
            ("sandbox-orders", self._run_order_timer),
        ):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        """Stop serving and close the socket; webhooks still in flight are abandoned."""
        self._stopping = True
        self._wake.set()
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
            return _control_error(404, "Not found: the APIs live under /shopify/admin/ and /economic/")
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

    def _run_order_timer(self) -> None:
        """Create an order every `order_interval` seconds while it is above 0 (a new interval applies at once), and
        with every `refund_every`-th, refund an item of an earlier paid order, as customers send things back."""
        made = 0
        while not self._stopping:
            interval = self.state.config.order_interval
            if self._wake.wait(interval if interval > 0 else None):
                self._wake.clear()
                continue
            logger.info("Created order %s", self.create_order({})["name"])
            made += 1
            every = self.state.config.refund_every
            if every and made % every == 0 and (refund := self._refund_something()):
                logger.info("Refunded an item of order %s", refund["order_id"])

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
    economic_agreement_grant_token, latency_ms, order_interval, webhook_url, webhook_secret, faults,
    shopify_bucket_size, shopify_leak_per_second) and `seed`.
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


def _configure(sandbox: Sandbox, request: Request) -> Response:
    try:
        return json_response(200, sandbox.configure(_object(request)))
    except ValueError as exc:
        return _control_error(400, str(exc))


def _state(sandbox: Sandbox, request: Request) -> Response:
    return json_response(200, sandbox.summary())


def _reset(sandbox: Sandbox, request: Request) -> Response:
    return json_response(200, sandbox.reset())


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
    route("POST", r"/_sandbox/economic/products/([^/]+)", _set_economic_available),
    route("POST", r"/_sandbox/economic/drafts/(\d+)/book", _book_economic_draft),
    route("POST", r"/_sandbox/config", _configure),
    route("GET", r"/_sandbox/state", _state),
    route("POST", r"/_sandbox/reset", _reset),
]
