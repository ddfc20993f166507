"""The fake Shopify Admin REST API: the shop's state, its routes and its webhook requests.

Served under /shopify/admin/api/{version}/ (any version), as strict as Shopify where its documentation says how:

- Authentication first: a wrong X-Shopify-Access-Token gets 401 (and no call-limit header: no app, no bucket).
- The leaky bucket: each request adds one to the shop's bucket, which leaks `leak_per_second` (default 2) and holds
  `bucket_size` (default 40); a request that finds it full gets 429 with `Retry-After: 2.0`. Every other answer
  (and the 429) carries X-Shopify-Shop-Api-Call-Limit: {requests in the bucket}/{size}.
- Lists page with Shopify's cursor pagination: a `Link` header with rel="next" / rel="previous" URLs carrying an
  opaque `page_info` that holds the first request's filters; next to page_info only `limit` and `fields` may be
  passed (anything else: 400). `limit` is at most 250. `fields` keeps only the named top-level fields.
- GET /orders.json lists open orders unless `status` says otherwise (any, closed, cancelled).
- Access scopes: a token IEX's app was given by an install answers 403 for a resource it has no scope for
  (`read_<resource>` for a GET, `write_<resource>` otherwise, write covering read); the configured token (a custom
  app's) has them all.
- Webhook subscriptions (webhooks.json: GET with the list's filters and pages, POST {"webhook": {"topic", "address",
  "format"}} -> 201, GET and DELETE webhooks/{id}.json) belong to the app whose token made them (IEX's, for tokens
  installs gave; the custom app's, for the configured token): an app sees and deletes only its own. POST answers 422
  for a blank or invalid address, a blank topic, a topic the shop does not know or the token has no scope for
  (Shopify's "Invalid topic specified", naming the topics allowed), and a topic and address the app has already;
  400 without the "webhook" object. Shopify takes only https addresses; the sandbox, which runs beside IEX on
  http, takes http ones too.

The app install flow of IEX's app (client id `iex-sandbox`, secret `shpss_sandbox`), under /shopify/admin/oauth/:

- GET /authorize?client_id&scope&redirect_uri&state: the page "Install IEX on sandbox.myshopify.com?" with Install
  and Cancel; 400 for another client id, a scope Shopify does not know, or a redirect_uri the app was not given
  (its allowed redirection URL is IEX's return address, /connect/shopify/return/, on any host: IEX runs on
  several). Install POSTs back to it and is redirected to redirect_uri with code, hmac, host, shop, state and
  timestamp; the hmac is the hex HMAC-SHA256 with the app's secret of the others, sorted, as k=v joined by &.
  Cancel goes to the shop's apps page (/shopify/admin/apps): the app hears nothing, as with Shopify.
- POST /access_token {client_id, client_secret, code} (JSON or a form): 200 {"access_token", "scope"}; 400 for a
  wrong client or secret, an unknown code or one used already (a code works once).
"""

from __future__ import annotations

import base64
import bisect
import hashlib
import hmac
import html
import itertools
import json
import math
import random
import re
import secrets
import time
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from sandbox import orders
from sandbox.common import (
    BadRequest,
    Refusal,
    Request,
    Response,
    dispatch,
    entries,
    html_page,
    json_response,
    later_than,
    money,
    now_iso,
    parse_time,
    route,
    to_decimal,
)
from sandbox.orders import CATALOGUE, apply_changes, make_order

API_VERSION = "2025-01"
DOMAIN = orders.SHOP_DOMAIN
CALL_LIMIT = "X-Shopify-Shop-Api-Call-Limit"
HEADERS: dict[str, str] = {}  # on every Admin API answer (the call limit is added per request: see `admit`)
AUTH_ERROR = "[API] Invalid API key or access token (unrecognized login or wrong password)"
# Shopify's documented example sends "2.0", and clients parse it as a float. It stays "2.0" when a benchmark
# raises the leak rate (a plan's rate shows in the message, not here).
RETRY_AFTER = "2.0"
THROTTLED = (
    "Exceeded {rate} calls per second for api client. Reduce request rates to resume uninterrupted service."
)
PAGINATION_DOCS = "https://shopify.dev/api/usage/pagination-rest"
# IEX's app at Shopify: the sandbox's well-known demo credentials.
CLIENT_ID = "iex-sandbox"
CLIENT_SECRET = "shpss_sandbox"  # noqa: S105
REDIRECT_PATH = "/connect/shopify/return/"  # the app's allowed redirection URL, on any host
SCOPES = {
    f"{access}_{resource}" for access in ("read", "write") for resource in ("orders", "products", "inventory")
}
SCOPES |= {"read_locations", "read_all_orders", "read_customers", "write_customers"}
# The Admin API's resources, by the first part of their path, to the scope they need (with read_ or write_)
RESOURCE_SCOPES = {
    "orders": "orders",
    "products": "products",
    "variants": "products",
    "locations": "locations",
    "inventory_levels": "inventory",
}
MISSING_SCOPE = "[API] This action requires merchant approval for {} scope."
CUSTOM_APP = "custom"  # the app of the configured token; IEX's app is CLIENT_ID
# The webhook topics the shop offers, to the scope a subscription needs ("" for the events about the app itself)
TOPIC_SCOPES = {
    "app/uninstalled": "",
    **{
        f"orders/{event}": "read_orders"
        for event in ("create", "updated", "paid", "cancelled", "delete", "fulfilled", "partially_fulfilled")
    },
    "refunds/create": "read_orders",
    **{f"products/{event}": "read_products" for event in ("create", "update", "delete")},
    "inventory_levels/update": "read_inventory",
    **{f"locations/{event}": "read_locations" for event in ("create", "update", "delete")},
}
INVALID_TOPIC = "Invalid topic specified: {}. Does it exist? Is there a missing access scope? Topics allowed: {}"
WAREHOUSE_ID, SHOP_FRONT_ID = 65_000_000_001, 65_000_000_002
LOCATIONS_SINCE = "2024-01-02T09:00:00+00:00"
SHOP = {
    "id": 1,
    "name": "Sandbox Shop",
    "email": "shop@sandbox.example",
    "domain": DOMAIN,
    "province": None,
    "country": "DK",
    "address1": "Industrivej 12",
    "zip": "7100",
    "city": "Vejle",
    "phone": None,
    "primary_locale": "da",
    "created_at": LOCATIONS_SINCE,
    "updated_at": LOCATIONS_SINCE,
    "country_code": "DK",
    "country_name": "Denmark",
    "currency": "DKK",
    "customer_email": "shop@sandbox.example",
    "timezone": "(GMT+01:00) Europe/Copenhagen",
    "iana_timezone": "Europe/Copenhagen",
    "shop_owner": "Sandbox Owner",
    "money_format": "{{amount_with_comma_separator}} kr",
    "weight_unit": "kg",
    "province_code": None,
    "taxes_included": True,
    "tax_shipping": None,
    "county_taxes": True,
    "plan_name": "basic",
    "myshopify_domain": DOMAIN,
    "primary_location_id": WAREHOUSE_ID,
    "multi_location_enabled": True,
    "enabled_presentment_currencies": ["DKK"],
}


def _location(location_id: int, name: str, address1: str, zip_code: str, city: str) -> dict[str, Any]:
    return {
        "id": location_id,
        "name": name,
        "address1": address1,
        "address2": None,
        "city": city,
        "zip": zip_code,
        "province": None,
        "country": "DK",
        "phone": None,
        "created_at": LOCATIONS_SINCE,
        "updated_at": LOCATIONS_SINCE,
        "country_code": "DK",
        "country_name": "Denmark",
        "province_code": None,
        "legacy": False,
        "active": True,
        "admin_graphql_api_id": f"gid://shopify/Location/{location_id}",
        "localized_country_name": "Denmark",
        "localized_province_name": None,
    }


# The primary location first: Shopify has no primary flag on a location, only the shop's primary_location_id.
LOCATIONS = [
    _location(WAREHOUSE_ID, "Warehouse", "Industrivej 12", "7100", "Vejle"),
    _location(SHOP_FRONT_ID, "Shop front", "Vestergade 20", "8000", "Aarhus C"),
]
# Stock at the shop front; the rest of the catalogue's stock is at the warehouse.
SHOP_FRONT_STOCK = {"HELMET-M": 4, "LOCK-U": 6, "PUMP-MINI": 10}
PRODUCT_ID_BASE = 8_000_000_000_000
VARIANT_ID_BASE = 45_000_000_000_000
INVENTORY_ITEM_ID_BASE = 47_000_000_000_000
WEBHOOK_ID_BASE = 1_500_000_000_000
FIRST_ORDER_NUMBER = 1001
DEFAULT_LIMIT, MAX_LIMIT = 50, 250
MAX_INVENTORY_IDS = 50
PAGE_PARAMS = ("page_info", "limit", "fields")
ORDER_STATUSES = ("open", "closed", "cancelled", "any")
FINANCIAL_STATUSES = (
    *("authorized", "pending", "paid", "partially_paid", "refunded", "voided", "partially_refunded"),
    *("any", "unpaid"),
)
TIME_FILTERS = tuple(
    f"{field}_{end}" for field in ("created_at", "updated_at", "processed_at") for end in ("min", "max")
)


class LeakyBucket:
    """Shopify's leaky bucket for one shop and app: `take` adds a request unless the bucket is full."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.level = 0.0
        self._at: float | None = None

    def take(self, size: int, leak_per_second: float) -> bool:
        """Leak what leaked since the last call, then add one request if it fits; False if it does not."""
        now = self.clock()
        if self._at is not None:
            self.level = max(0.0, self.level - (now - self._at) * leak_per_second)
        self._at = now
        if self.level + 1 > size:
            return False
        self.level += 1
        return True

    def header(self, size: int) -> str:
        """X-Shopify-Shop-Api-Call-Limit: the requests in the bucket (a part counts as one) over its size."""
        return f"{math.ceil(round(self.level, 6))}/{size}"


class ShopifyState:
    """The shop's products, stock, orders and refunds. Not locked by itself: the server holds its lock around
    every use."""

    def __init__(self, seed: int | None = None) -> None:
        self.rng = random.Random(seed)
        self.products: list[dict[str, Any]] = []
        self.orders: dict[int, dict[str, Any]] = {}
        self.refunds: dict[int, list[dict[str, Any]]] = {}  # by order id, in the refund endpoint's full shape
        self.levels: dict[tuple[int, int], dict[str, Any]] = {}  # by (inventory_item_id, location_id)
        self.bucket = LeakyBucket()
        self.codes: dict[str, str] = {}  # an install's code -> the scope it grants (a code works once)
        self.tokens: dict[str, frozenset[str]] = {}  # an access token installs gave -> its scopes
        self.subscriptions: dict[str, dict[int, dict[str, Any]]] = {}  # by app, by id: webhook subscriptions
        self.next_order_number = FIRST_ORDER_NUMBER
        self._sequence = itertools.count()
        for item in CATALOGUE:
            variant = {
                "sku": item.sku,
                "price": str(item.price),
                "taxable": item.taxable,
                "inventory_quantity": item.stock - SHOP_FRONT_STOCK.get(item.sku, 0),
                "grams": item.grams,
            }
            product = self.add_product({"title": item.title, "variants": [variant]})
            for each in product["variants"]:
                self._set_level(each, SHOP_FRONT_ID, SHOP_FRONT_STOCK.get(item.sku, 0), LOCATIONS_SINCE)

    def new_id(self, base: int) -> int:
        """A new id above `base` (odd, like every id the generator makes)."""
        return base + 2 * next(self._sequence) + 1

    def scopes(self, presented: str, configured: str) -> frozenset[str] | None:
        """The scopes of the access token presented: every one for the configured token (a custom app's), those
        granted for a token an install gave, None for a token the shop does not know."""
        if presented and presented == configured:
            return frozenset(SCOPES)
        return self.tokens.get(presented)

    def install(self, scope: str) -> str:
        """A code for an install of IEX's app granting `scope`."""
        code = secrets.token_hex(16)
        self.codes[code] = scope
        return code

    def access_token(self, code: str) -> dict[str, str] | None:
        """The offline access token for an install's code, which is used up; None for an unknown or used code."""
        scope = self.codes.pop(code, None)
        if scope is None:
            return None
        token = f"shpat_{secrets.token_hex(16)}"
        self.tokens[token] = frozenset(scope.split(","))
        return {"access_token": token, "scope": scope}

    def subscribe(self, app: str, topic: str, address: str, form: str, version: str) -> dict[str, Any]:
        """A new webhook subscription of `app`, as the Webhook resource shows it."""
        subscription_id, now = self.new_id(WEBHOOK_ID_BASE), now_iso()
        subscription = {
            "id": subscription_id,
            "address": address,
            "topic": topic,
            "created_at": now,
            "updated_at": now,
            "format": form,
            "fields": [],
            "metafield_namespaces": [],
            "api_version": version,
            "private_metafield_namespaces": [],
            "admin_graphql_api_id": f"gid://shopify/WebhookSubscription/{subscription_id}",
        }
        self.subscriptions.setdefault(app, {})[subscription_id] = subscription
        return subscription

    def add_product(self, overrides: dict[str, Any]) -> dict[str, Any]:
        """A new product. `variants` may be given short: [{"sku", "price", "title"?, "inventory_quantity"?,
        "taxable"?, "grams"?}] (default: one variant SANDBOX-n at 100.00), stocked at the primary location; other
        keys replace fields. ValueError if invalid.
        """
        overrides = dict(overrides)
        n = len(self.products) + 1
        specs = entries(
            overrides.pop("variants", [{"sku": f"SANDBOX-{n}", "price": "100.00"}]), "variants", "sku", "price"
        )
        known = {variant["sku"] for product in self.products for variant in product["variants"]}
        now = now_iso()
        variants = []
        for i, spec in enumerate(specs):
            if spec["sku"] in known:
                raise ValueError(f"SKU {spec['sku']!r} is taken")
            known.add(spec["sku"])
            available = spec.get("inventory_quantity", 0)
            if isinstance(available, bool) or not isinstance(available, int):
                raise ValueError("inventory_quantity must be an integer")
            grams = spec.get("grams", 0)
            variant_id = VARIANT_ID_BASE + n * 100 + i
            variants.append(
                {
                    "id": variant_id,
                    "product_id": PRODUCT_ID_BASE + n,
                    "title": spec.get("title", "Default Title"),
                    "price": str(money(to_decimal(spec["price"]))),
                    "position": i + 1,
                    "inventory_policy": "deny",
                    "compare_at_price": None,
                    "option1": spec.get("title", "Default Title"),
                    "option2": None,
                    "option3": None,
                    "created_at": now,
                    "updated_at": now,
                    "taxable": spec.get("taxable", True),
                    "barcode": None,
                    "fulfillment_service": "manual",
                    "grams": grams,
                    "inventory_management": "shopify",
                    "requires_shipping": True,
                    "sku": spec["sku"],
                    "weight": grams / 1000,
                    "weight_unit": "kg",
                    "inventory_item_id": INVENTORY_ITEM_ID_BASE + n * 100 + i,
                    "inventory_quantity": 0,
                    "old_inventory_quantity": 0,
                    "admin_graphql_api_id": f"gid://shopify/ProductVariant/{variant_id}",
                    "image_id": None,
                }
            )
        title = overrides.get("title", f"Sandbox Product {n}")
        product = {
            "id": PRODUCT_ID_BASE + n,
            "title": title,
            "body_html": None,
            "vendor": "Sandbox Cycles",
            "product_type": "",
            "handle": re.sub(r"[^a-z0-9]+", "-", str(title).lower()).strip("-"),
            "status": "active",
            "created_at": now,
            "updated_at": now,
            "published_at": now,
            "tags": "",
            "admin_graphql_api_id": f"gid://shopify/Product/{PRODUCT_ID_BASE + n}",
            "variants": variants,
            **overrides,
        }
        self.products.append(product)
        for variant, spec in zip(variants, specs, strict=True):
            self._set_level(variant, WAREHOUSE_ID, spec.get("inventory_quantity", 0), now)
            variant["old_inventory_quantity"] = variant["inventory_quantity"]
        return product

    def variant(self, variant_id: int) -> dict[str, Any] | None:
        return next((v for product in self.products for v in product["variants"] if v["id"] == variant_id), None)

    def create_order(self, overrides: dict[str, Any]) -> dict[str, Any]:
        """A new order from the generator (see `orders.make_order`); ValueError for overrides that cannot apply."""
        order = make_order(self.rng, self.next_order_number, self.products, **overrides)
        self.next_order_number += 1
        self.orders[order["id"]] = order
        return order

    def update_order(self, order: dict[str, Any], changes: dict[str, Any]) -> bool:
        """Apply a partial change (see `orders.apply_changes`) and bump updated_at; True if it became paid."""
        was_paid = order["financial_status"] == "paid"
        previous = order["updated_at"]
        apply_changes(order, self.products, changes)
        order["updated_at"] = later_than(previous)
        return not was_paid and order["financial_status"] == "paid"

    def refund_order(self, order: dict[str, Any], request: Any) -> dict[str, Any]:
        """Refund part of the order (see `orders.refund`); the Refund, kept for the refund endpoints. Raises
        Refused."""
        made = orders.refund(order, request, self.new_id, [location["id"] for location in LOCATIONS])
        self.refunds.setdefault(order["id"], []).append(made)
        return made

    def cancel_order(self, order: dict[str, Any], reason: Any, refund: bool) -> dict[str, Any] | None:
        """Cancel the order (see `orders.cancel`); the refund it made, if any. Raises Refused."""
        made = orders.cancel(order, reason, refund, self.new_id, [location["id"] for location in LOCATIONS])
        if made is not None:
            self.refunds.setdefault(order["id"], []).append(made)
        return made

    def set_inventory(self, location_id: Any, inventory_item_id: Any, available: int) -> dict[str, Any] | None:
        """Set a variant's stock at the location (connecting the item there if need be); None when the item or the
        location is unknown. Raises Refused for an item whose stock Shopify does not track."""
        if location_id not in [location["id"] for location in LOCATIONS]:  # a list: the id may be unhashable
            return None
        for product in self.products:
            for variant in product["variants"]:
                if variant["inventory_item_id"] == inventory_item_id:
                    if not variant.get("inventory_management"):
                        raise orders.Refused(["Inventory item does not have inventory tracking enabled"])
                    variant["old_inventory_quantity"] = variant["inventory_quantity"]
                    return self._set_level(variant, location_id, available, now_iso())
        return None

    def _set_level(self, variant: dict[str, Any], location_id: int, available: int, at: str) -> dict[str, Any]:
        item = variant["inventory_item_id"]
        level = {
            "inventory_item_id": item,
            "location_id": location_id,
            "available": available,
            "updated_at": at,
            "admin_graphql_api_id": f"gid://shopify/InventoryLevel/{location_id}?inventory_item_id={item}",
        }
        self.levels[item, location_id] = level
        variant["inventory_quantity"] = sum(
            each["available"] for (each_item, _), each in self.levels.items() if each_item == item
        )
        return level


def admit(
    shop: ShopifyState, request: Request, token: str, bucket_size: int, leak_per_second: float
) -> Response | dict[str, str]:
    """Before anything else: a refusal (401 for a wrong token, 429 when the bucket is full), or the headers the
    answer must carry. The shop's admin pages (installing an app) are the merchant's, in a browser: no token."""
    if ADMIN_PAGES.fullmatch(request.path):
        return {}
    if shop.scopes(request.headers.get("x-shopify-access-token", ""), token) is None:
        return error(401, AUTH_ERROR)
    if not shop.bucket.take(bucket_size, leak_per_second):
        message = THROTTLED.format(rate=f"{leak_per_second:g}")
        headers = {"Retry-After": RETRY_AFTER, CALL_LIMIT: shop.bucket.header(bucket_size)}
        return json_response(429, {"errors": message}, headers)
    return {CALL_LIMIT: shop.bucket.header(bucket_size)}


def handle(shop: ShopifyState, request: Request, token: str) -> Response:
    """Answer a request under /shopify/admin/: the shop's admin pages that install an app, or the Admin API for a
    token the shop knows (`token`, a custom app's, or one an install gave) with the scope the resource needs."""
    if ADMIN_PAGES.fullmatch(request.path):
        return dispatch(INSTALL_ROUTES, request, shop) or Response(404, b"Not Found")
    presented = request.headers.get("x-shopify-access-token", "")
    scopes = shop.scopes(presented, token)
    if scopes is None:
        return error(401, AUTH_ERROR)
    if (needed := _needed(request)) and not _covers(scopes, needed):
        return error(403, MISSING_SCOPE.format(needed))
    app = App(CUSTOM_APP if presented == token else CLIENT_ID, scopes)
    try:
        return (
            dispatch(ROUTES, request, shop)
            or dispatch(WEBHOOK_ROUTES, request, shop, app)
            or error(404, "Not Found")
        )
    except BadRequest as exc:
        return error(400, str(exc))


@dataclass(frozen=True)
class App:
    """The app a token belongs to, and the scopes it has: what its webhook subscriptions are kept by."""

    name: str
    scopes: frozenset[str]


def _needed(request: Request) -> str:
    """The scope an Admin API request needs ("" for the shop itself)."""
    match = re.match(r"/shopify/admin/api/[^/]+/([a-z_]+)", request.path)
    resource = RESOURCE_SCOPES.get(match.group(1)) if match else None
    if resource is None:
        return ""
    return f"{'read' if request.method == 'GET' else 'write'}_{resource}"


def _covers(scopes: frozenset[str], needed: str) -> bool:
    return needed in scopes or needed.replace("read_", "write_", 1) in scopes


def error(status: int, message: Any) -> Response:
    return json_response(status, {"errors": message})


def webhook_request(
    url: str, secret: str, topic: str, body: bytes, event_id: str | None = None
) -> urllib.request.Request:
    """The POST Shopify would send for `topic`, signed with `secret`. `event_id` names the event: the same on
    every delivery of it (a new one by default)."""
    signature = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()
    headers = {
        "Content-Type": "application/json",
        "X-Shopify-Topic": topic,
        "X-Shopify-Hmac-Sha256": signature,
        "X-Shopify-Shop-Domain": DOMAIN,
        "X-Shopify-API-Version": API_VERSION,
        "X-Shopify-Webhook-Id": str(uuid.uuid4()),
        "X-Shopify-Event-Id": event_id or str(uuid.uuid4()),
        "X-Shopify-Triggered-At": now_iso(),
    }
    # The caller checked the URL's scheme to be http(s).
    return urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310


def _fields(request: Request) -> list[str] | None:
    """The `fields` asked for, if any."""
    value = request.query.get("fields", "")
    names = [name.strip() for name in value.split(",") if name.strip()]
    return names or None


def _only(item: dict[str, Any], fields: list[str] | None) -> dict[str, Any]:
    return item if fields is None else {key: value for key, value in item.items() if key in fields}


def _one(request: Request, key: str, item: dict[str, Any] | None) -> Response:
    return json_response(200, {key: _only(item, _fields(request))}) if item else error(404, "Not Found")


def _shop(shop: ShopifyState, request: Request, version: str) -> Response:
    return _one(request, "shop", SHOP)


def _orders(shop: ShopifyState, request: Request, version: str) -> Response:
    return _page(
        request, version, "orders", lambda filters: _select_orders(shop, filters), _by_updated_at, ORDER_FILTERS
    )


def _order(shop: ShopifyState, request: Request, version: str, order_id: str) -> Response:
    return _one(request, "order", shop.orders.get(int(order_id)))


def _refunds(shop: ShopifyState, request: Request, version: str, order_id: str) -> Response:
    if int(order_id) not in shop.orders:
        return error(404, "Not Found")
    limit = _limit(request)
    fields = _fields(request)
    return json_response(200, {"refunds": [_only(r, fields) for r in shop.refunds.get(int(order_id), [])[:limit]]})


def _refund(shop: ShopifyState, request: Request, version: str, order_id: str, refund_id: str) -> Response:
    found = next((r for r in shop.refunds.get(int(order_id), []) if r["id"] == int(refund_id)), None)
    return _one(request, "refund", found)


def _products(shop: ShopifyState, request: Request, version: str) -> Response:
    return _page(
        request,
        version,
        "products",
        lambda filters: _select_products(shop, filters),
        _by_updated_at,
        PRODUCT_FILTERS,
    )


def _product(shop: ShopifyState, request: Request, version: str, product_id: str) -> Response:
    return _one(request, "product", next((p for p in shop.products if p["id"] == int(product_id)), None))


def _variant(shop: ShopifyState, request: Request, version: str, variant_id: str) -> Response:
    return _one(request, "variant", shop.variant(int(variant_id)))


def _locations(shop: ShopifyState, request: Request, version: str) -> Response:
    return json_response(200, {"locations": LOCATIONS})


def _location_by_id(shop: ShopifyState, request: Request, version: str, location_id: str) -> Response:
    found = next((location for location in LOCATIONS if location["id"] == int(location_id)), None)
    # The single location comes without the localized_* names (as documented).
    return _one(request, "location", found and {k: v for k, v in found.items() if not k.startswith("localized_")})


def _inventory_levels(shop: ShopifyState, request: Request, version: str) -> Response:
    return _page(
        request,
        version,
        "inventory_levels",
        lambda filters: _select_levels(shop, filters),
        lambda level: (level["inventory_item_id"], level["location_id"]),
        LEVEL_FILTERS,
    )


def _set_inventory(shop: ShopifyState, request: Request, version: str) -> Response:
    body = request.json()
    if not isinstance(body, dict):
        raise BadRequest("The body must be a JSON object")
    available = body.get("available")
    if isinstance(available, bool) or not isinstance(available, int):
        return error(422, {"available": ["must be an integer"]})
    try:
        level = shop.set_inventory(body.get("location_id"), body.get("inventory_item_id"), available)
    except orders.Refused as refused:
        return error(422, refused.errors)
    if level is None:
        return error(422, {"inventory_item_id": ["is invalid"]})
    return json_response(200, {"inventory_level": level})


def _webhooks(shop: ShopifyState, app: App, request: Request, version: str) -> Response:
    """The app's own subscriptions, by id (another app's are not shown)."""
    mine = list(shop.subscriptions.get(app.name, {}).values())

    def select(filters: dict[str, str]) -> list[dict[str, Any]]:
        exact = [name for name in ("address", "topic") if name in filters]
        return [
            hook for hook in _select_common(mine, filters) if all(hook[name] == filters[name] for name in exact)
        ]

    return _page(request, version, "webhooks", select, lambda hook: (hook["id"],), WEBHOOK_FILTERS)


def _webhook(shop: ShopifyState, app: App, request: Request, version: str, webhook_id: str) -> Response:
    return _one(request, "webhook", shop.subscriptions.get(app.name, {}).get(int(webhook_id)))


def _subscribe(shop: ShopifyState, app: App, request: Request, version: str) -> Response:
    body = request.json()
    given = body.get("webhook") if isinstance(body, dict) else None
    if not isinstance(given, dict):
        return error(400, {"webhook": "Required parameter missing or invalid"})
    topic, address, form = given.get("topic"), given.get("address"), given.get("format", "json")
    allowed = [name for name, scope in TOPIC_SCOPES.items() if not scope or _covers(app.scopes, scope)]
    problems: dict[str, list[str]] = {}
    if not address:
        problems["address"] = ["can't be blank"]
    elif not _an_address(address):
        problems["address"] = ["is invalid"]  # undocumented wording
    if not topic:
        problems["topic"] = ["can't be blank"]
    elif topic not in allowed:
        problems["topic"] = [INVALID_TOPIC.format(topic, ", ".join(allowed))]
    if form not in ("json", "xml"):
        problems["format"] = ["is not included in the list"]
    mine = shop.subscriptions.get(app.name, {}).values()
    if not problems and any(hook["topic"] == topic and hook["address"] == address for hook in mine):
        problems["address"] = ["for this topic has already been taken"]
    if problems:
        return error(422, problems)
    made = shop.subscribe(app.name, str(topic), str(address), str(form), version)
    return json_response(201, {"webhook": made})


def _an_address(value: Any) -> bool:
    """An http(s) address: Shopify takes only https ones; the sandbox, beside IEX on http, takes http ones too."""
    try:
        parts = urlsplit(value) if isinstance(value, str) else None
    except ValueError:
        return False
    return parts is not None and parts.scheme in ("http", "https") and bool(parts.netloc)


def _unsubscribe(shop: ShopifyState, app: App, request: Request, version: str, webhook_id: str) -> Response:
    if shop.subscriptions.get(app.name, {}).pop(int(webhook_id), None) is None:
        return error(404, "Not Found")
    return json_response(200, {})


ORDER_FILTERS = ("ids", "since_id", "status", "financial_status", *TIME_FILTERS)
WEBHOOK_FILTERS = ("address", "topic", "since_id", *TIME_FILTERS[:4])
PRODUCT_FILTERS = ("ids", "since_id", "title", "handle", "product_type", "vendor", "status", *TIME_FILTERS[:4])
LEVEL_FILTERS = ("inventory_item_ids", "location_ids", "updated_at_min")


def _select_orders(shop: ShopifyState, filters: dict[str, str]) -> list[dict[str, Any]]:
    status = filters.get("status", "open")
    if status not in ORDER_STATUSES:
        raise Refusal(error(400, {"status": "Invalid value."}))  # undocumented wording, as for page_info
    financial = filters.get("financial_status", "any")
    if financial not in FINANCIAL_STATUSES:
        raise Refusal(error(400, {"financial_status": "Invalid value."}))
    wanted = {"unpaid": {"authorized", "pending", "partially_paid"}}.get(financial, {financial})
    found = []
    for order in _select_common(list(shop.orders.values()), filters):
        # A cancelled order is closed too, so status=closed lists it as well.
        if status == "open" and (order["closed_at"] or order["cancelled_at"]):
            continue
        if (status == "closed" and not order["closed_at"]) or (
            status == "cancelled" and not order["cancelled_at"]
        ):
            continue
        if financial != "any" and order["financial_status"] not in wanted:
            continue
        found.append(order)
    return found


def _select_products(shop: ShopifyState, filters: dict[str, str]) -> list[dict[str, Any]]:
    exact = [name for name in ("title", "handle", "product_type", "vendor", "status") if name in filters]
    return [
        product
        for product in _select_common(shop.products, filters)
        if all(str(product.get(name)) == filters[name] for name in exact)
    ]


def _select_common(items: list[dict[str, Any]], filters: dict[str, str]) -> list[dict[str, Any]]:
    """`items` that match the ids, since_id and time filters."""
    ids = _ids(filters, "ids")
    since_id = _ids(filters, "since_id")
    bounds = []
    for name in TIME_FILTERS:
        if name in filters:
            try:
                bounds.append((name.rsplit("_", 1)[0], name.endswith("_min"), parse_time(filters[name])))
            except ValueError:
                raise Refusal(error(400, {name: "Invalid value."})) from None
    found = []
    for item in items:
        if ids is not None and item["id"] not in ids:
            continue
        if since_id is not None and item["id"] <= since_id[0]:
            continue
        moments = [
            (parse_time(item[field]) if item.get(field) else None, is_min, bound)
            for field, is_min, bound in bounds
        ]
        if any(
            moment is None or (moment < bound if is_min else moment > bound) for moment, is_min, bound in moments
        ):
            continue
        found.append(item)
    return found


def _select_levels(shop: ShopifyState, filters: dict[str, str]) -> list[dict[str, Any]]:
    items = _ids(filters, "inventory_item_ids")
    locations = _ids(filters, "location_ids")
    if items is None and locations is None:
        # The docs: "You must include inventory_item_ids, location_ids, or both as filter parameters." The status
        # and wording of the refusal are not documented.
        raise Refusal(
            error(422, "You must include inventory_item_ids, location_ids, or both as filter parameters.")
        )
    for name, ids in (("inventory_item_ids", items), ("location_ids", locations)):
        if ids is not None and len(ids) > MAX_INVENTORY_IDS:
            raise Refusal(error(422, {name: f"must contain at most {MAX_INVENTORY_IDS} ids"}))
    floor = None
    if "updated_at_min" in filters:
        try:
            floor = parse_time(filters["updated_at_min"])
        except ValueError:
            raise Refusal(error(400, {"updated_at_min": "Invalid value."})) from None
    return [
        level
        for (item, location), level in shop.levels.items()
        if (items is None or item in items)
        and (locations is None or location in locations)
        and (floor is None or parse_time(level["updated_at"]) >= floor)
    ]


def _ids(filters: dict[str, str], name: str) -> list[int] | None:
    """A comma-separated list of ids (None if not given); 400 if it is not one."""
    if name not in filters:
        return None
    try:
        return [int(part) for part in filters[name].split(",") if part.strip()]
    except ValueError:
        raise Refusal(error(400, {name: "Invalid value."})) from None


def _by_updated_at(item: dict[str, Any]) -> tuple[float, int]:
    return parse_time(item["updated_at"]).timestamp(), item["id"]


def _limit(request: Request) -> int:
    try:
        limit = int(request.query.get("limit", DEFAULT_LIMIT))
    except ValueError:
        raise Refusal(error(400, {"limit": "Invalid value."})) from None
    if limit > MAX_LIMIT:
        raise Refusal(error(400, f"Limit exceeds maximum limit of {MAX_LIMIT}"))
    if limit < 1:
        raise Refusal(error(400, {"limit": "Invalid value."}))  # undocumented: the wording of a bad limit
    return limit


def _page(
    request: Request,
    version: str,
    key: str,
    select: Callable[[dict[str, str]], list[dict[str, Any]]],
    sort_key: Callable[[dict[str, Any]], tuple[Any, ...]],
    filter_names: tuple[str, ...],
) -> Response:
    """A page of what `select` finds for the filters, in `sort_key` order, with the Link header.

    Without page_info the filters come from the query (others are ignored, as Shopify ignores unknown parameters);
    page_info carries them, with the direction and the sort key to page from, and allows only limit and fields
    beside it.
    """
    limit = _limit(request)
    fields = _fields(request)
    direction: str | None = None
    anchor: tuple[Any, ...] = ()
    if "page_info" in request.query:
        others = [name for name in request.query if name not in PAGE_PARAMS]
        if others:
            raise Refusal(
                error(
                    400,
                    {
                        name: f"{name} cannot be passed when page_info is present. See {PAGINATION_DOCS} for more "
                        "information."
                        for name in others
                    },
                )
            )
        filters, direction, anchor = _read_cursor(request.query["page_info"], filter_names)
    else:
        filters = {name: value for name, value in request.query.items() if name in filter_names}
    items = sorted(select(filters), key=sort_key)
    keys = [sort_key(item) for item in items]
    if direction == "next":
        start = bisect.bisect_right(keys, anchor)
        end = min(start + limit, len(items))
    elif direction == "previous":
        end = bisect.bisect_left(keys, anchor)
        start = max(end - limit, 0)
    else:
        start, end = 0, min(limit, len(items))
    url = f"{request.origin}/shopify/admin/api/{version}/{key}.json?limit={limit}"
    if "fields" in request.query:
        url += f"&fields={request.query['fields']}"
    links = []
    if direction is not None and 0 < start < end:
        links.append(f'<{url}&page_info={_cursor(filters, "previous", keys[start])}>; rel="previous"')
    if start < end < len(items):
        links.append(f'<{url}&page_info={_cursor(filters, "next", keys[end - 1])}>; rel="next"')
    page = [_only(item, fields) for item in items[start:end]]
    return json_response(200, {key: page}, {"Link": ", ".join(links)} if links else {})


def _cursor(filters: dict[str, str], direction: str, anchor: tuple[Any, ...]) -> str:
    """An opaque page_info: urlsafe base64 of the filters, the direction and the sort key to page from."""
    cursor = {"filters": filters, "direction": direction, "last": list(anchor)}
    return base64.urlsafe_b64encode(json.dumps(cursor).encode()).decode().rstrip("=")


def _read_cursor(page_info: str, filter_names: tuple[str, ...]) -> tuple[dict[str, str], str, tuple[Any, ...]]:
    invalid = Refusal(error(400, {"page_info": "Invalid value."}))
    try:
        cursor = json.loads(base64.urlsafe_b64decode(page_info + "=" * (-len(page_info) % 4)))
        filters, direction, anchor = cursor["filters"], cursor["direction"], cursor["last"]
    except (ValueError, TypeError, KeyError):
        raise invalid from None
    if (
        not isinstance(filters, dict)
        or not all(name in filter_names and isinstance(value, str) for name, value in filters.items())
        or direction not in ("next", "previous")
        or not isinstance(anchor, list)
        or not all(isinstance(part, int | float) and not isinstance(part, bool) for part in anchor)
    ):
        raise invalid
    return filters, direction, tuple(anchor)


_API = r"/shopify/admin/api/([^/]+)/"
ROUTES = [
    route("GET", _API + r"shop\.json", _shop),
    route("GET", _API + r"orders\.json", _orders),
    route("GET", _API + r"orders/(\d+)\.json", _order),
    route("GET", _API + r"orders/(\d+)/refunds\.json", _refunds),
    route("GET", _API + r"orders/(\d+)/refunds/(\d+)\.json", _refund),
    route("GET", _API + r"products\.json", _products),
    route("GET", _API + r"products/(\d+)\.json", _product),
    route("GET", _API + r"variants/(\d+)\.json", _variant),
    route("GET", _API + r"locations\.json", _locations),
    route("GET", _API + r"locations/(\d+)\.json", _location_by_id),
    route("GET", _API + r"inventory_levels\.json", _inventory_levels),
    route("POST", _API + r"inventory_levels/set\.json", _set_inventory),
]
# Called with the app whose token asks: its subscriptions are its own.
WEBHOOK_ROUTES = [
    route("GET", _API + r"webhooks\.json", _webhooks),
    route("POST", _API + r"webhooks\.json", _subscribe),
    route("GET", _API + r"webhooks/(\d+)\.json", _webhook),
    route("DELETE", _API + r"webhooks/(\d+)\.json", _unsubscribe),
]


# --- installing IEX's app: the shop's admin pages ------------------------------------------------------------------

ADMIN_PAGES = re.compile(r"/shopify/admin/(?:oauth/[a-z_]+|apps)")


def signature(params: dict[str, str], secret: str) -> str:
    """The hmac Shopify adds to what it sends through the browser: the hex HMAC-SHA256 of the other parameters,
    sorted, as k=v joined by & (% and & escaped, and = in names)."""
    pairs = sorted(
        f"{name.replace('%', '%25').replace('=', '%3D')}={value.replace('%', '%25')}".replace("&", "%26")
        for name, value in params.items()
        if name != "hmac"
    )
    return hmac.new(secret.encode(), "&".join(pairs).encode(), hashlib.sha256).hexdigest()


def _install_problem(asked: dict[str, str]) -> str:
    """What is wrong with an install request ("" when nothing), in Shopify's words."""
    redirect_uri = urlsplit(asked.get("redirect_uri", ""))
    unknown = [name for name in asked.get("scope", "").split(",") if name.strip() not in SCOPES]
    if (client_id := asked.get("client_id", "")) != CLIENT_ID:
        return f"Oauth error invalid_request: Could not find Shopify API application with api_key {client_id}"
    if redirect_uri.scheme not in ("http", "https") or redirect_uri.path != REDIRECT_PATH:
        return "Oauth error invalid_request: The redirect_uri is not whitelisted"
    if not asked.get("scope") or unknown:
        return f"Oauth error invalid_scope: {', '.join(unknown) or 'no scope'}"
    return ""


def _authorize(shop: ShopifyState, request: Request) -> Response:
    """The install page: what IEX asks for, Install (POSTs the request back here) and Cancel."""
    asked = {name: request.query.get(name, "") for name in ("client_id", "scope", "redirect_uri", "state")}
    if problem := _install_problem(asked):
        return html_page(400, "Oauth error", f"<h1>{html.escape(problem)}</h1>")
    hidden = "".join(
        f'<input type="hidden" name="{name}" value="{html.escape(value)}">' for name, value in asked.items()
    )
    wanted = "".join(f"<li>{html.escape(name)}</li>" for name in asked["scope"].split(","))
    return html_page(
        200,
        f"Install IEX on {DOMAIN}",
        f"""<h1>Install IEX on {DOMAIN}?</h1>
<p>IEX asks for:</p>
<ul>{wanted}</ul>
<form method="POST" action="/shopify/admin/oauth/authorize">{hidden}<button type="submit">Install</button></form>
<a href="/shopify/admin/apps">Cancel</a>""",
    )


def _install(shop: ShopifyState, request: Request) -> Response:
    """Install: back to the app's redirect_uri with the code and the shop, signed with the app's secret."""
    posted = dict(parse_qsl(request.body.decode("utf-8", "replace"), keep_blank_values=True))
    asked = {name: posted.get(name, "") for name in ("client_id", "scope", "redirect_uri", "state")}
    if problem := _install_problem(asked):
        return html_page(400, "Oauth error", f"<h1>{html.escape(problem)}</h1>")
    host = base64.b64encode(f"admin.shopify.com/store/{DOMAIN.split('.')[0]}".encode()).decode().rstrip("=")
    answer = {
        "code": shop.install(asked["scope"]),
        "host": host,
        "shop": DOMAIN,
        "state": asked["state"],
        "timestamp": str(int(time.time())),
    }
    answer["hmac"] = signature(answer, CLIENT_SECRET)
    return Response(302, b"", {"Location": f"{asked['redirect_uri']}?{urlencode(sorted(answer.items()))}"})


def _access_token(shop: ShopifyState, request: Request) -> Response:
    """POST /admin/oauth/access_token: the app's credentials and an install's code, for the offline token."""
    if request.headers.get("content-type", "").startswith("application/json"):
        try:
            given = request.json()
        except BadRequest:
            given = None
    else:
        given = dict(parse_qsl(request.body.decode("utf-8", "replace")))
    if not isinstance(given, dict):
        return json_response(400, {"error": "invalid_request", "error_description": "The body could not be read"})
    if (given.get("client_id"), given.get("client_secret")) != (CLIENT_ID, CLIENT_SECRET):
        return json_response(
            400, {"error": "invalid_client", "error_description": "The client_id or client_secret is not valid"}
        )
    issued = shop.access_token(str(given.get("code") or ""))
    if issued is None:
        return json_response(
            400,
            {
                "error": "invalid_request",
                "error_description": "The authorization code was not found or was already used",
            },
        )
    return json_response(200, issued)


def _apps(shop: ShopifyState, request: Request) -> Response:
    """The shop's apps, where Cancel on the install page leads."""
    installed = "IEX is installed." if shop.tokens else "IEX is not installed."
    return html_page(200, f"Apps: {DOMAIN}", f"<h1>Apps</h1><p>{installed}</p>")


INSTALL_ROUTES = [
    route("GET", r"/shopify/admin/oauth/authorize", _authorize),
    route("POST", r"/shopify/admin/oauth/authorize", _install),
    route("POST", r"/shopify/admin/oauth/access_token", _access_token),
    route("GET", r"/shopify/admin/apps", _apps),
]
