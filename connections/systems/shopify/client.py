"""Shopify Admin REST API. REST is "legacy" since 2024-10: flows use only these methods, so a GraphQL client
with the same methods can replace this one."""

from __future__ import annotations

import time
from collections.abc import Collection, Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

import requests
from django.core.cache import cache

from connections.common import StockLevel
from iex.lib import http

if TYPE_CHECKING:
    from connections.models import Module

# Shopify's leaky bucket answers 429 with Retry-After ("2.0"); a short wait is cheaper than failing a whole fetch.
MAX_INLINE_WAIT = 10.0
PRIMARY_LOCATION_SECONDS = 3600  # the shop's primary location, asked once an hour per module


class ShopifyClient:
    def __init__(self, module: Module) -> None:
        credentials = module.get_credentials()
        self.gate = module.gate  # the account's rate budget and circuit, shared by every worker
        self.settings = module.settings_values()
        self.shop_domain = str(credentials["shop_domain"]).lower()
        base = module.base_url or f"https://{self.shop_domain}"
        # Shopify itself posts webhooks only to https addresses (the sandbox, at an address of its own, to http too)
        self.https_only = not module.base_url
        self.api = f"{base.rstrip('/')}/admin/api/{self.settings['api_version']}"
        self.headers = {"X-Shopify-Access-Token": credentials["access_token"], "Accept": "application/json"}
        self._primary_key = f"shopify-primary-location:{module.pk}:{self.api}"

    def _call(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        for attempt in range(3):
            try:
                return http.request(method, url, headers=self.headers, gate=self.gate, **kwargs)
            except http.TransientError as exc:
                wait = exc.retry_after
                if exc.status != 429 or wait is None or wait > MAX_INLINE_WAIT or attempt == 2:
                    raise
                time.sleep(wait)
        raise AssertionError("unreachable")

    def test(self) -> str:
        shop = self._call("GET", f"{self.api}/shop.json").json()["shop"]
        return f"Connected to {shop['name']} ({shop.get('myshopify_domain') or shop.get('domain')})"

    def account(self) -> str:
        return self.shop_domain

    def _pages(self, path: str, key: str, params: dict[str, Any]) -> Iterator[dict]:
        """Follow the Link header's rel="next": its page_info carries the filters, and only `limit` and `fields` may
        go beside it (Shopify answers 400 to any other)."""
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

    def order(self, order_id: str) -> dict:
        return self._call("GET", f"{self.api}/orders/{order_id}.json").json()["order"]

    def whole(self, entity: str, record: dict) -> dict:
        """Shopify's webhooks carry their records whole: nothing to read."""
        return record

    def refunds_since(self, since: datetime) -> Iterator[dict]:
        """Refunds made since `since`: a refund touches its order, so they are among the orders changed since."""
        for order in self.orders_since(since):
            for refund in order.get("refunds") or []:
                made = refund.get("created_at")
                if made and datetime.fromisoformat(made) >= since:
                    yield refund

    def products_since(self, since: datetime) -> Iterator[dict]:
        return self._pages("products.json", "products", {"updated_at_min": since.isoformat(), "limit": 250})

    def locations(self) -> list[dict]:
        """The shop's active locations, the primary one first."""
        primary = self._call("GET", f"{self.api}/shop.json").json()["shop"].get("primary_location_id")
        found = [
            loc
            for loc in self._call("GET", f"{self.api}/locations.json").json()["locations"]
            if loc.get("active", True)
        ]
        return sorted(found, key=lambda loc: loc["id"] != primary)

    def _location(self) -> int:
        """Where stock is kept: the module's setting, else the shop's primary location (asked once an hour)."""
        if chosen := self.settings.get("stock_location"):
            return int(chosen)
        if primary := cache.get(self._primary_key):
            return int(primary)
        found = self.locations()
        if not found:
            raise http.PermanentError("The shop has no active location to hold stock")
        cache.set(self._primary_key, found[0]["id"], PRIMARY_LOCATION_SECONDS)
        return int(found[0]["id"])

    def _inventory_items(self, skus: set[str]) -> dict[str, int]:
        """The inventory item of each SKU (REST has no SKU filter: the variants are read, only their ids)."""
        items = {}
        for product in self._pages("products.json", "products", {"limit": 250, "fields": "id,variants"}):
            for variant in product.get("variants") or []:
                if variant.get("sku") in skus:
                    items[variant["sku"]] = variant["inventory_item_id"]
        return items

    def set_stock(self, levels: list[StockLevel]) -> list[dict]:
        """Set available quantities by SKU at the stock location; unknown SKUs are skipped. A level that knows its
        inventory item (`item_ref`, from the last write) is written without reading the catalogue."""
        location = self._location()
        unknown = {level.sku for level in levels if not level.item_ref}
        items = self._inventory_items(unknown) if unknown else {}
        answers = []
        for level in levels:
            item = int(level.item_ref) if level.item_ref else items.get(level.sku)
            try:
                answers.append(self._set(location, item, level))
            except http.PermanentError as exc:
                if not level.item_ref or exc.status not in (404, 422):
                    raise
                # The item known from the last write is gone (the variant was deleted and made again): find it anew.
                item = self._inventory_items({level.sku}).get(level.sku)
                answers.append(self._set(location, item, level))
        return answers

    def _set(self, location: int, item: int | None, level: StockLevel) -> dict:
        if item is None:
            return {"sku": level.sku, "skipped": "No variant with this SKU in the shop"}
        body = {"location_id": location, "inventory_item_id": item, "available": level.available}
        return self._call("POST", f"{self.api}/inventory_levels/set.json", json=body).json()

    def subscribe(self, address: str, topics: Collection[str], replaces: str = "") -> None:
        """Subscribe `address` to `topics` and nothing else, and take away the subscriptions at `replaces` (the
        module's address before a new one was made). IEX's app sees only its own subscriptions: those the merchant
        made by hand are left alone. One there already is kept; Shopify's 422 "for this topic has already been
        taken" is one made meanwhile (a second click), and so is a 404 for one taken away."""
        if self.https_only and not address.startswith("https://"):
            raise http.PermanentError(f"Shopify posts webhooks only to https:// addresses, and IEX's is {address}")
        found = list(self._pages("webhooks.json", "webhooks", {"address": address, "limit": 250}))
        if replaces:
            found += self._pages("webhooks.json", "webhooks", {"address": replaces, "limit": 250})
        kept = {hook["topic"] for hook in found if hook["address"] == address and hook["topic"] in topics}
        for topic in topics:
            if topic not in kept:
                self._create_webhook(address, topic)
        for hook in found:
            if hook["address"] != address or hook["topic"] not in topics:
                try:
                    self._call("DELETE", f"{self.api}/webhooks/{hook['id']}.json")
                except http.PermanentError as exc:
                    if exc.status != 404:
                        raise

    def _create_webhook(self, address: str, topic: str) -> None:
        body = {"webhook": {"topic": topic, "address": address, "format": "json"}}
        try:
            self._call("POST", f"{self.api}/webhooks.json", json=body)
        except http.PermanentError as exc:
            if exc.status != 422:
                raise
            errors = exc.body.get("errors") if isinstance(exc.body, dict) else None
            if isinstance(errors, dict) and "already been taken" in str(errors.get("address")):
                return
            # Shopify's words say which: the address (not https), or the topic (a scope the install did not grant)
            raise http.PermanentError(
                f"Shopify refused the webhook {topic} ({_said(errors)})", status=422, body=exc.body, remote=True
            ) from None


def subscribe(module: Module, topics: Collection[str], replaces: str) -> None:
    """IEX's app, installed in the shop, subscribes the module's webhook address to `topics` (OAuth.subscribe)."""
    ShopifyClient(module).subscribe(module.webhook_url, topics, replaces)


def _said(errors: Any) -> str:
    """Shopify's errors of a refused write ({"field": ["message", ...]}) as one line: "address is invalid"."""
    if not isinstance(errors, dict):
        return str(errors)
    return "; ".join(
        f"{field} {', '.join(map(str, said)) if isinstance(said, list) else said}"
        for field, said in errors.items()
    )
