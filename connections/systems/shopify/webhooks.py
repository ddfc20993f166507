"""Shopify webhook verification: X-Shopify-Hmac-Sha256 is base64(HMAC-SHA256(app secret, raw body))."""

import base64
import hashlib
import hmac
from collections.abc import Mapping

TOPICS = {
    "orders/create": "orders",
    "orders/updated": "orders",
    "orders/paid": "orders",
    "products/create": "products",
    "products/update": "products",
    "app/uninstalled": "",
}


def describe(headers: Mapping[str, str]) -> tuple[str, str]:
    """(topic, the shop's event id). The event id is the same on every retry of one event: the dedup key."""
    return headers.get("X-Shopify-Topic", ""), headers.get("X-Shopify-Event-Id", "")


KEPT_HEADERS = [
    "X-Shopify-Topic",
    "X-Shopify-Event-Id",
    "X-Shopify-Webhook-Id",
    "X-Shopify-Shop-Domain",
    "X-Shopify-API-Version",
    "X-Shopify-Triggered-At",
]


def signature(secret: str, body: bytes) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def verify(secret: str, body: bytes, headers: Mapping[str, str]) -> bool:
    given = headers.get("X-Shopify-Hmac-Sha256", "")
    return bool(secret) and hmac.compare_digest(signature(secret, body), given)
