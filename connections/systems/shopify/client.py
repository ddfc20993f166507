"""Shopify Admin REST API. REST is "legacy" since 2024-10: flows use only these methods, so a GraphQL client
with the same methods can replace this one."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

import requests

from connections.common import StockLevel
from iex.lib import http

if TYPE_CHECKING:
    from connections.models import Module

# Shopify's leaky bucket answers 429 with Retry-After; a short wait is cheaper than failing a whole fetch.
MAX_INLINE_WAIT = 10.0


class ShopifyClient:
    def __init__(self, module: Module) -> None:
        credentials = module.get_credentials()
        version = module.settings_values()["api_version"]
        base = module.base_url or f"https://{credentials['shop_domain']}"
        self.api = f"{base.rstrip('/')}/admin/api/{version}"
        self.headers = {"X-Shopify-Access-Token": credentials["access_token"], "Accept": "application/json"}

    def _call(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        for attempt in range(3):
            try:
                return http.request(method, url, headers=self.headers, **kwargs)
            except http.TransientError as exc:
                wait = exc.retry_after
                if exc.status != 429 or wait is None or wait > MAX_INLINE_WAIT or attempt == 2:
                    raise
                time.sleep(wait)
        raise AssertionError("unreachable")

    def test(self) -> str:
        shop = self._call("GET", f"{self.api}/shop.json").json()["shop"]
        return f"Connected to {shop['name']} ({shop.get('myshopify_domain') or shop.get('domain')})"

    def _pages(self, path: str, key: str, params: dict[str, Any]) -> Iterator[dict]:
        """Follow the Link header's rel="next" (cursor paging; page_info must not be mixed with filters)."""
        url: str | None = f"{self.api}/{path}"
        query: dict[str, Any] | None = params
        while url:
            response = self._call("GET", url, params=query)
            yield from response.json()[key]
            url = response.links.get("next", {}).get("url")
            query = None

    def orders_since(self, since: datetime) -> Iterator[dict]:
        params = {"status": "any", "updated_at_min": since.isoformat(), "limit": 250}
        return self._pages("orders.json", "orders", params)

    def products_since(self, since: datetime) -> Iterator[dict]:
        return self._pages("products.json", "products", {"updated_at_min": since.isoformat(), "limit": 250})

    def set_stock(self, levels: list[StockLevel]) -> list[dict]:
        """Set available quantities by SKU at the shop's first active location; unknown SKUs are skipped."""
        items = {
            variant["sku"]: variant["inventory_item_id"]
            for product in self._pages("products.json", "products", {"limit": 250})
            for variant in product.get("variants") or []
            if variant.get("sku")
        }
        locations = self._call("GET", f"{self.api}/locations.json").json()["locations"]
        location = next((loc["id"] for loc in locations if loc.get("active", True)), None)
        if location is None:
            raise http.PermanentError("The shop has no active location to hold stock")
        answers = []
        for level in levels:
            if level.sku not in items:
                answers.append({"sku": level.sku, "skipped": "No variant with this SKU in the shop"})
                continue
            body = {
                "location_id": location,
                "inventory_item_id": items[level.sku],
                "available": level.available,
            }
            answers.append(self._call("POST", f"{self.api}/inventory_levels/set.json", json=body).json())
        return answers
