"""Shopify's webhooks: X-Shopify-Hmac-Sha256 is base64(HMAC-SHA256(app secret, raw body)); the topic and the event id
(the same on every retry of one event) are headers; the body is the order or product itself."""

import base64
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from connections.systems.shopify import transforms

TOPICS = {
    "orders/create": "orders",
    "orders/updated": "orders",
    "orders/paid": "orders",
    "orders/cancelled": "orders",
    "refunds/create": "credit_notes",
    "products/create": "products",
    "products/update": "products",
    "app/uninstalled": "",
}


def topic(headers: Mapping[str, str]) -> str:
    return headers.get("X-Shopify-Topic", "")


def event_id(headers: Mapping[str, str]) -> str:
    return headers.get("X-Shopify-Event-Id", "")


def ping(body: bytes, headers: Mapping[str, str]) -> str:
    return ""  # Shopify sends no ping


def records(topic: str, record: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(TOPICS[topic], record)]  # every topic's body is the one record it is about


def record_ref(entity: str, record: dict[str, Any]) -> tuple[str, str, datetime | None]:
    refs = {
        "orders": transforms.order_ref,
        "credit_notes": transforms.refund_ref,
        "products": transforms.product_ref,
    }
    return refs[entity](record)


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


def verify(secrets: Sequence[str], body: bytes, headers: Mapping[str, str]) -> bool:
    """Signed with one of the secrets: after a rotation Shopify may sign with the old one for up to an hour."""
    given = headers.get("X-Shopify-Hmac-Sha256", "")
    return any(secret and hmac.compare_digest(signature(secret, body), given) for secret in secrets)
