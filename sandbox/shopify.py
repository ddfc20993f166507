"""The fake Shopify Admin REST API: the shop's state, its routes and its webhook requests.

Served under /shopify/admin/api/{version}/ (any version). Lists page like Shopify's cursor pagination: a `Link`
header with rel="next" / rel="previous" URLs carrying an opaque `page_info`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import random
import re
import urllib.request
import uuid
from typing import Any

from sandbox.common import (
    BadRequest,
    Refusal,
    Request,
    Response,
    dispatch,
    entries,
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
DOMAIN = "sandbox.myshopify.com"
HEADERS = {"X-Shopify-Shop-Api-Call-Limit": "1/40"}
AUTH_ERROR = "[API] Invalid API key or access token (unrecognized login or wrong password)"
SHOP = {
    "id": 1,
    "name": "Sandbox Shop",
    "domain": DOMAIN,
    "myshopify_domain": DOMAIN,
    "currency": "DKK",
    "email": "shop@sandbox.example",
}
LOCATION = {"id": 65000000001, "name": "Warehouse", "active": True}
PRODUCT_ID_BASE = 8_000_000_000_000
VARIANT_ID_BASE = 45_000_000_000_000
INVENTORY_ITEM_ID_BASE = 47_000_000_000_000
FIRST_ORDER_NUMBER = 1001
DEFAULT_LIMIT, MAX_LIMIT = 50, 250


class ShopifyState:
    """The shop's products and orders. Not locked by itself: the server holds its lock around every use."""

    def __init__(self, seed: int | None = None) -> None:
        self.rng = random.Random(seed)
        self.products: list[dict[str, Any]] = []
        self.orders: dict[int, dict[str, Any]] = {}
        self.next_order_number = FIRST_ORDER_NUMBER
        for item in CATALOGUE:
            variant = {
                "sku": item.sku,
                "price": str(item.price),
                "taxable": item.taxable,
                "inventory_quantity": item.stock,
            }
            self.add_product({"title": item.title, "variants": [variant]})

    def add_product(self, overrides: dict[str, Any]) -> dict[str, Any]:
        """A new product. `variants` may be given short: [{"sku", "price", "title"?, "inventory_quantity"?,
        "taxable"?}] (default: one variant SANDBOX-n at 100.00); other keys replace fields. ValueError if invalid.
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
            variants.append(
                {
                    "id": VARIANT_ID_BASE + n * 100 + i,
                    "product_id": PRODUCT_ID_BASE + n,
                    "title": spec.get("title", "Default Title"),
                    "sku": spec["sku"],
                    "price": str(money(to_decimal(spec["price"]))),
                    "inventory_item_id": INVENTORY_ITEM_ID_BASE + n * 100 + i,
                    "inventory_quantity": spec.get("inventory_quantity", 0),
                    "taxable": spec.get("taxable", True),
                    "updated_at": now,
                }
            )
        title = overrides.get("title", f"Sandbox Product {n}")
        product = {
            "id": PRODUCT_ID_BASE + n,
            "title": title,
            "handle": re.sub(r"[^a-z0-9]+", "-", str(title).lower()).strip("-"),
            "status": "active",
            "created_at": now,
            "updated_at": now,
            "variants": variants,
            **overrides,
        }
        self.products.append(product)
        return product

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

    def set_inventory(self, location_id: Any, inventory_item_id: Any, available: int) -> dict[str, Any] | None:
        """Set a variant's stock at the location; None when the item or the location is unknown."""
        if location_id != LOCATION["id"]:
            return None
        for product in self.products:
            for variant in product["variants"]:
                if variant["inventory_item_id"] == inventory_item_id:
                    variant["inventory_quantity"] = available
                    return {
                        "inventory_item_id": inventory_item_id,
                        "location_id": location_id,
                        "available": available,
                        "updated_at": now_iso(),
                    }
        return None


def handle(shop: ShopifyState, request: Request, token: str) -> Response:
    """Answer an Admin API request (path under /shopify/admin/) for the shop, if `token` is presented."""
    if request.headers.get("x-shopify-access-token") != token:
        return error(401, AUTH_ERROR)
    try:
        return dispatch(ROUTES, request, shop) or error(404, "Not Found")
    except BadRequest as exc:
        return error(400, str(exc))


def error(status: int, message: Any) -> Response:
    return json_response(status, {"errors": message})


def webhook_request(url: str, secret: str, topic: str, body: bytes) -> urllib.request.Request:
    """The POST Shopify would send for `topic`, signed with `secret`."""
    signature = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()
    headers = {
        "Content-Type": "application/json",
        "X-Shopify-Topic": topic,
        "X-Shopify-Hmac-Sha256": signature,
        "X-Shopify-Shop-Domain": DOMAIN,
        "X-Shopify-API-Version": API_VERSION,
        "X-Shopify-Webhook-Id": str(uuid.uuid4()),
        "X-Shopify-Event-Id": str(uuid.uuid4()),
        "X-Shopify-Triggered-At": now_iso(),
    }
    # The caller checked the URL's scheme to be http(s).
    return urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310


def _shop(shop: ShopifyState, request: Request, version: str) -> Response:
    return json_response(200, {"shop": SHOP})


def _orders(shop: ShopifyState, request: Request, version: str) -> Response:
    return _page(request, version, "orders", list(shop.orders.values()))


def _order(shop: ShopifyState, request: Request, version: str, order_id: str) -> Response:
    order = shop.orders.get(int(order_id))
    return json_response(200, {"order": order}) if order else error(404, "Not Found")


def _products(shop: ShopifyState, request: Request, version: str) -> Response:
    return _page(request, version, "products", shop.products)


def _locations(shop: ShopifyState, request: Request, version: str) -> Response:
    return json_response(200, {"locations": [LOCATION]})


def _set_inventory(shop: ShopifyState, request: Request, version: str) -> Response:
    body = request.json()
    if not isinstance(body, dict):
        raise BadRequest("The body must be a JSON object")
    available = body.get("available")
    if isinstance(available, bool) or not isinstance(available, int):
        return error(422, {"available": ["must be an integer"]})
    level = shop.set_inventory(body.get("location_id"), body.get("inventory_item_id"), available)
    if level is None:
        return error(422, {"inventory_item_id": ["is invalid"]})
    return json_response(200, {"inventory_level": level})


def _page(request: Request, version: str, key: str, items: list[dict[str, Any]]) -> Response:
    """A page of `items` ordered by (updated_at, id), filtered by updated_at_min, with the Link header.

    Without page_info the filter comes from the query; page_info carries the filter and the offset instead.
    """
    try:
        limit = min(max(int(request.query.get("limit", DEFAULT_LIMIT)), 1), MAX_LIMIT)
    except ValueError:
        raise Refusal(error(400, {"limit": "Invalid value."})) from None
    if "page_info" in request.query:
        since, offset = _read_cursor(request.query["page_info"])
    else:
        since, offset = request.query.get("updated_at_min") or None, 0
    try:
        floor = parse_time(since) if since else None
    except ValueError:
        raise Refusal(error(400, {"updated_at_min": "Invalid value."})) from None
    matching = sorted(
        (item for item in items if floor is None or parse_time(item["updated_at"]) >= floor),
        key=lambda item: (parse_time(item["updated_at"]), item["id"]),
    )
    url = f"{request.origin}/shopify/admin/api/{version}/{key}.json?limit={limit}&page_info="
    links = []
    if offset > 0:
        links.append(f'<{url}{_cursor(since, max(offset - limit, 0))}>; rel="previous"')
    if offset + limit < len(matching):
        links.append(f'<{url}{_cursor(since, offset + limit)}>; rel="next"')
    return json_response(
        200, {key: matching[offset : offset + limit]}, {"Link": ", ".join(links)} if links else {}
    )


def _cursor(since: str | None, offset: int) -> str:
    """An opaque page_info: urlsafe base64 of the filter and the offset."""
    return base64.urlsafe_b64encode(json.dumps({"updated_at_min": since, "offset": offset}).encode()).decode()


def _read_cursor(page_info: str) -> tuple[str | None, int]:
    try:
        cursor = json.loads(base64.urlsafe_b64decode(page_info.encode()))
        since, offset = cursor["updated_at_min"], cursor["offset"]
    except (ValueError, TypeError, KeyError):
        raise Refusal(error(400, {"page_info": "Invalid value."})) from None
    if not (since is None or isinstance(since, str)) or not isinstance(offset, int) or offset < 0:
        raise Refusal(error(400, {"page_info": "Invalid value."}))
    return since, offset


_API = r"/shopify/admin/api/([^/]+)/"
ROUTES = [
    route("GET", _API + r"shop\.json", _shop),
    route("GET", _API + r"orders\.json", _orders),
    route("GET", _API + r"orders/(\d+)\.json", _order),
    route("GET", _API + r"products\.json", _products),
    route("GET", _API + r"locations\.json", _locations),
    route("POST", _API + r"inventory_levels/set\.json", _set_inventory),
]
