"""The sandbox's HTTP server: routing to the fake APIs, latency and fault injection, webhooks, the order timer
and the control API.

`make_server(host, port, **config)` builds a `Sandbox`; `.start()` serves in daemon threads, `.stop()` ends it.
The control API needs no credentials and lives under /_sandbox/:

- POST /_sandbox/shopify/orders            body: overrides (optional) -> 201 the new order (webhook orders/create)
- POST /_sandbox/shopify/orders/{id}       body: partial change -> 200 the order (orders/updated, orders/paid)
- POST /_sandbox/shopify/products          body: overrides -> 201 the new product (products/create)
- POST /_sandbox/economic/products/{n}     body: {"available": n} -> 200 the e-conomic product
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
    "webhook_url": (str, NoneType),
    "webhook_secret": (str, NoneType),
    "seed": (int, NoneType),
}


@dataclass
class Config:
    """The settings; they survive a reset. `seed` seeds the order generator (at start and at each reset)."""

    # The sandbox's well-known demo credentials, not secrets.
    shopify_token: str = "shpat_sandbox"  # noqa: S105
    economic_app_secret_token: str = "demo"  # noqa: S105
    economic_agreement_grant_token: str = "demo"  # noqa: S105
    latency_ms: int = 0
    order_interval: float = 0  # seconds between generated orders; 0 = off
    webhook_url: str | None = None
    webhook_secret: str | None = None
    faults: list[Fault] = field(default_factory=list)
    seed: int | None = None

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
    if name in ("latency_ms", "order_interval") and value < 0:
        raise ValueError(f"{name} must not be negative")
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


def _answer_shopify(state: State, request: Request) -> Response:
    return shopify.handle(state.shopify, request, state.config.shopify_token)


def _answer_economic(state: State, request: Request) -> Response:
    config = state.config
    return economic.handle(
        state.economic, request, config.economic_app_secret_token, config.economic_agreement_grant_token
    )


APIS = (
    _Api("/shopify/admin/", _answer_shopify, shopify.error, shopify.HEADERS),
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
        """Count the request, wait out the latency, then answer with a matching fault or the API itself."""
        with self.state.lock:
            self.state.requests += 1
            latency_ms = self.state.config.latency_ms
            fault = self.state.config.take_fault(request.path)
        if latency_ms:
            time.sleep(latency_ms / 1000)
        if fault is not None:
            response = fault.response(api.error)
        else:
            with self.state.lock:
                response = api.answer(self.state, request)
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

    def create_product(self, overrides: dict[str, Any]) -> dict[str, Any]:
        """A new Shopify product (see `ShopifyState.add_product`), announced by webhook."""
        with self.state.lock:
            product = self.state.shopify.add_product(overrides)
            self._notify([("products/create", product)])
            return copy.deepcopy(product)

    def set_economic_available(self, product_number: str, available: int) -> dict[str, Any] | None:
        with self.state.lock:
            return copy.deepcopy(self.state.economic.set_available(product_number, available))

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
        secret are set. The caller holds the lock."""
        url, secret = self.state.config.webhook_url, self.state.config.webhook_secret
        if url and secret:
            bodies = [(topic, json.dumps(payload).encode()) for topic, payload in events]
            threading.Thread(target=self._deliver, args=(url, secret, bodies), daemon=True).start()

    def _deliver(self, url: str, secret: str, events: list[tuple[str, bytes]]) -> None:
        for topic, body in events:
            try:
                # The URL's scheme was checked to be http(s) when it was configured.
                with urllib.request.urlopen(  # noqa: S310
                    shopify.webhook_request(url, secret, topic, body), timeout=WEBHOOK_TIMEOUT
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
        """Create an order every `order_interval` seconds while it is above 0; a new interval applies at once."""
        while not self._stopping:
            interval = self.state.config.order_interval
            if self._wake.wait(interval if interval > 0 else None):
                self._wake.clear()
            else:
                logger.info("Created order %s", self.create_order({})["name"])


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

    do_GET = do_POST = do_PUT = do_DELETE = _handle

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s - " + format, self.address_string(), *args)


def make_server(host: str = "127.0.0.1", port: int = 8900, **config: Any) -> Sandbox:
    """A sandbox listening on host:port (port 0 picks a free port; `.url` tells which); `.start()` serves.

    `config` takes the settings of POST /_sandbox/config (shopify_token, economic_app_secret_token,
    economic_agreement_grant_token, latency_ms, order_interval, webhook_url, webhook_secret, faults) and `seed`.
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
    route("POST", r"/_sandbox/shopify/products", _new_product),
    route("POST", r"/_sandbox/economic/products/([^/]+)", _set_economic_available),
    route("POST", r"/_sandbox/config", _configure),
    route("GET", r"/_sandbox/state", _state),
    route("POST", r"/_sandbox/reset", _reset),
]
