"""WooCommerce REST API v3 (`{site}/wp-json/wc/v3/`), with the store's REST API keys.

The keys go as HTTP Basic credentials over HTTPS. Some servers strip the Authorization header (a security plugin,
some hosts): WooCommerce then answers as if no key was given, and documents sending the keys as query parameters
instead, which the client does from then on for those keys. Lists are read a page of 100 at a time, by id (an order
changed while its pages are read keeps its place), as far as `X-WP-TotalPages` says. Nothing is sent on through a
redirect (requests would drop a PUT's body on the way): the site address must be the one that answers. Stock is
written only where WooCommerce manages it (a product's "Manage stock?").
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import requests

from connections.common import StockLevel
from connections.systems import PARTIAL
from connections.systems.woocommerce.transforms import parse_gmt
from iex.lib import http

if TYPE_CHECKING:
    from connections.models import Module

PER_PAGE = 100  # WooCommerce's most
# Keys whose server strips the Authorization header, in this process: they go as query parameters.
_KEYS_IN_QUERY: set[str] = set()
NO_KEY = "woocommerce_rest_cannot_view"  # WooCommerce's answer to a request whose key it did not get
REFUSED = (
    "woocommerce_rest_authentication_error"  # a key it knows but will not take for this (secret, permissions)
)
KEYS_PAGE = "WooCommerce > Settings > Advanced > REST API"
WRITES = ("POST", "PUT", "PATCH", "DELETE")


class WooCommerceClient:
    def __init__(self, module: Module) -> None:
        credentials = module.get_credentials()
        self.gate = module.gate  # the account's rate budget and circuit, shared by every worker
        self.settings = module.settings_values()
        self.shop = credentials["site_url"].rstrip("/")  # the shop, as its merchant knows it
        self.site = (module.base_url or self.shop).rstrip("/")  # where its API is asked (a test server, maybe)
        self.api = f"{self.site}/wp-json/wc/v3"
        self.keys = {
            "consumer_key": credentials["consumer_key"],
            "consumer_secret": credentials["consumer_secret"],
        }
        basic = base64.b64encode(f"{self.keys['consumer_key']}:{self.keys['consumer_secret']}".encode()).decode()
        self.headers = {"Authorization": f"Basic {basic}", "Accept": "application/json"}

    # --- the API -------------------------------------------------------------------------------------------

    def _call(
        self, method: str, path: str, *, params: dict[str, Any] | None = None, json: Any = None
    ) -> requests.Response:
        url = f"{self.api}/{path}"
        if self.keys["consumer_key"] not in _KEYS_IN_QUERY:
            try:
                return self._request(method, url, params, json, self.headers)
            except http.PermanentError as exc:
                if exc.status != 401 or _code(exc) != NO_KEY:
                    raise _explained(exc, method) from None
            # Answered as if no key was sent: the Authorization header may not have reached WooCommerce.
        try:
            answer = self._request(
                method, url, {**(params or {}), **self.keys}, json, {"Accept": "application/json"}
            )
        except http.PermanentError as exc:
            raise _explained(exc, method) from None
        _KEYS_IN_QUERY.add(self.keys["consumer_key"])
        return answer

    def _request(
        self, method: str, url: str, params: dict[str, Any] | None, json: Any, headers: dict[str, str]
    ) -> requests.Response:
        try:
            response = http.request(method, url, headers=headers, params=params, json=json, gate=self.gate)
        except http.PermanentError as exc:
            if exc.status == 404 and not isinstance(exc.body, dict):
                raise self._no_api(exc.status) from None
            if exc.status and 300 <= exc.status < 400 and isinstance(exc.body, dict) and exc.body.get("location"):
                moved = str(exc.body["location"]).split("/wp-json/")[
                    0
                ]  # another host: not followed (iex/lib/http)
                raise http.PermanentError(
                    f"{self.site} sends IEX on to {moved}: enter that as the site address", status=exc.status
                ) from None
            raise
        if "json" not in response.headers.get("Content-Type", ""):
            raise self._no_api(response.status_code)
        return response

    def _no_api(self, status: int) -> http.PermanentError:
        return http.PermanentError(
            f"{self.site} answers its REST API address with a web page, not WooCommerce's API: turn on pretty "
            "permalinks in WordPress (Settings > Permalinks: any setting but Plain)",
            status=status,
        )

    def _pages(self, path: str, params: dict[str, Any]) -> Iterator[dict]:
        """Every item of a list, a page at a time, as far as X-WP-TotalPages says."""
        page = 1
        while True:
            response = self._call("GET", path, params={**params, "page": page, "per_page": PER_PAGE})
            yield from response.json()
            if page >= int(response.headers.get("X-WP-TotalPages") or 1):
                return
            page += 1

    def test(self) -> str:
        """The keys work: they read orders; and can they write (stock)? An empty batch update tells, changing nothing."""
        self._call("GET", "orders", params={"per_page": 1})
        try:
            self._call("POST", "products/batch", json={"update": []})
        except http.PermanentError as exc:
            if exc.status not in (401, 403):
                raise
            return f"Connected to {self.shop}, read only: IEX reads orders and products but cannot write stock ({exc.message})"
        return f"Connected to {self.shop}"

    def account(self) -> str:
        return self.shop.lower()

    # --- orders and refunds --------------------------------------------------------------------------------

    def orders_since(self, since: datetime) -> Iterator[dict]:
        # Older WooCommerce ignores modified_after on orders: what it sends from before `since` is left out here.
        for order in self._pages("orders", _changed_since(since) | {"orderby": "id", "order": "asc"}):
            if (changed := parse_gmt(order.get("date_modified_gmt"))) is None or changed >= since:
                yield order

    def order(self, order_id: str) -> dict:
        return self._call("GET", f"orders/{order_id}").json()

    def refunds_since(self, since: datetime) -> Iterator[dict]:
        """Refunds of the orders changed since `since` (a refund changes its order), each with its order's id."""
        for order in self.orders_since(since):
            if order.get("refunds"):
                for refund in self._pages(f"orders/{order['id']}/refunds", {}):
                    yield {**refund, "order_id": order["id"]}

    def whole(self, entity: str, record: dict) -> dict:
        """A record a webhook only announced, read whole: an order (trashed), a refund, a variable product."""
        if not record.get(PARTIAL):
            return record
        if entity == "orders":
            return self.order(str(record["id"]))
        if entity == "credit_notes":
            refund = self._call("GET", f"orders/{record['order_id']}/refunds/{record['id']}").json()
            return {**refund, "order_id": record["order_id"]}
        if entity == "products":
            return self._with_variations(self._call("GET", f"products/{record['id']}").json(), self._class_rates())
        raise ValueError(f"WooCommerce announces no {entity}")

    # --- products and stock --------------------------------------------------------------------------------

    def products_since(self, since: datetime) -> Iterator[dict]:
        """Products changed since `since`; a variable product with its variations read whole into `variations`;
        each with the rate of its tax class (`_rate`, a percentage), as the store's tax rates say."""
        rates = self._class_rates()
        for product in self._pages("products", _changed_since(since)):
            yield self._with_variations(product, rates)

    def _with_variations(self, product: dict, rates: dict[str, str]) -> dict:
        if product.get("type") == "variable":
            variations = self._pages(f"products/{product['id']}/variations", {})
            product = {**product, "variations": [_rated(v, rates) for v in variations]}
        return _rated(product, rates)

    def _class_rates(self) -> dict[str, str]:
        """The rate of each tax class, as a percentage: the first rate the store lists for it."""
        rates: dict[str, str] = {}
        for rate in self._pages("taxes", {}):
            rates.setdefault(rate.get("class") or "standard", str(rate.get("rate") or "0"))
        return rates

    def set_stock(self, levels: list[StockLevel]) -> list[dict]:
        """Set each SKU's stock quantity on its product or variation (`item_ref`, known from the last write, saves
        the search); skipped where WooCommerce does not manage the item's stock."""
        return [self._set_stock(level) for level in levels]

    def _set_stock(self, level: StockLevel) -> dict:
        if level.item_ref:
            try:
                return self._write(level, level.item_ref)
            except http.PermanentError as exc:
                if exc.status not in (400, 404):
                    raise
                # Gone since the last write (deleted and made again): found anew below.
        item = self._item(level.sku)
        if item is None:
            return {"sku": level.sku, "skipped": "No product or variation with this SKU in WooCommerce"}
        path, found = item
        if found.get("manage_stock") is not True:
            return _unmanaged(level.sku)
        return self._write(level, path)

    def _write(self, level: StockLevel, path: str) -> dict:
        written = self._call("PUT", path, json={"stock_quantity": level.available}).json()
        if written.get("manage_stock") is not True:
            return _unmanaged(level.sku)  # WooCommerce ignores a quantity it does not manage
        if written.get("stock_quantity") != level.available:
            raise http.PermanentError(
                f"WooCommerce kept {written.get('stock_quantity')} in stock of {level.sku}, not {level.available}"
            )
        return {"inventory_level": {"inventory_item_id": path, "available": written["stock_quantity"]}}

    def _item(self, sku: str) -> tuple[str, dict] | None:
        """The product or variation with exactly this SKU (WooCommerce's SKU filter finds variations too)."""
        for found in self._call("GET", "products", params={"sku": sku}).json():
            if found.get("sku") != sku:
                continue  # the filter splits on commas: "A,B" finds A
            if parent := found.get("parent_id"):
                return f"products/{parent}/variations/{found['id']}", found
            return f"products/{found['id']}", found
        return None


def _rated(item: dict, rates: dict[str, str]) -> dict:
    return {**item, "_rate": rates.get(item.get("tax_class") or "standard")}


def _unmanaged(sku: str) -> dict:
    return {"sku": sku, "skipped": f"WooCommerce does not manage the stock of {sku}: tick 'Manage stock?' on it"}


def _changed_since(since: datetime) -> dict[str, Any]:
    return {"modified_after": since.astimezone(UTC).replace(tzinfo=None).isoformat(), "dates_are_gmt": "true"}


def _code(exc: http.HTTPError) -> str:
    return str(exc.body.get("code", "")) if isinstance(exc.body, dict) else ""


def _explained(exc: http.PermanentError, method: str) -> http.PermanentError:
    """WooCommerce's refusals of the keys, in words that say what to do (by its codes: its messages are translated
    on a shop in another language)."""
    code = _code(exc)
    if exc.status == 401 and code == NO_KEY:
        message = (
            f"WooCommerce does not know this consumer key: create a key in {KEYS_PAGE} and enter it again (a shop "
            "behind a proxy that does not tell WordPress it is on HTTPS refuses every key the same way)"
        )
    elif exc.status == 401 and code == REFUSED and method in WRITES:
        message = f"The WooCommerce API key cannot write: give it Read/Write permissions ({KEYS_PAGE})"
    elif exc.status == 401 and code == REFUSED:
        message = f"WooCommerce refused the key ({exc.message}): enter the consumer key and secret again"
    else:
        return exc
    return http.PermanentError(message, status=exc.status, body=exc.body)
