"""WooCommerce's webhooks: X-WC-Webhook-Signature is base64(HMAC-SHA256(the webhook's secret, raw body)); the topic
is a header; the body is the order or product as the REST API gives it (`order.deleted`: its id only).

WooCommerce makes a new X-WC-Webhook-Delivery-ID for every delivery, so it is no key to store a delivery once by:
the same order version posted twice is one transfer by its id and `date_modified_gmt`. A refund comes as
`order.updated` of its order, which lists it: each listed refund is announced to the credit notes flow, which reads
it whole. When a webhook is made, WooCommerce posts a ping (`webhook_id=N`, form-encoded, unsigned), which must get
200. WooCommerce disables a webhook after repeated failed deliveries and never sends one again: reconciliation (an
hourly fetch of what changed) catches what was lost.
"""

import base64
import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from connections.systems import PARTIAL
from connections.systems.woocommerce import transforms

TOPICS = {
    "order.created": "orders",
    "order.updated": "orders",
    "order.restored": "orders",
    "order.deleted": "orders",  # trashed: its document is withdrawn as for a cancellation
    "product.created": "products",
    "product.updated": "products",
    "product.restored": "products",
}
KEPT_HEADERS = [
    "X-WC-Webhook-Topic",
    "X-WC-Webhook-Resource",
    "X-WC-Webhook-Event",
    "X-WC-Webhook-ID",
    "X-WC-Webhook-Delivery-ID",
    "X-WC-Webhook-Source",
]
PING = re.compile(rb"webhook_id=(\d{1,20})")


def topic(headers: Mapping[str, str]) -> str:
    return headers.get("X-WC-Webhook-Topic", "")


def event_id(headers: Mapping[str, str]) -> str:
    return ""  # a new delivery id every time: a repeated version is known by the record itself


def ping(body: bytes, headers: Mapping[str, str]) -> str:
    """The id of the webhook a ping announces ("" when the post is no ping): unsigned, without WooCommerce's
    headers, `webhook_id=N` alone."""
    match = PING.fullmatch(body.strip())
    return match.group(1).decode() if match and not topic(headers) else ""


def records(name: str, record: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """What a delivery of topic `name` carries: an order, announcing each refund it lists (read whole by the credit
    notes flow); a trashed order's id only; a product, or a variable one announced (its variations are read with
    it)."""
    entity = TOPICS[name]
    if name == "order.deleted":
        return [(entity, {"id": record["id"], PARTIAL: True})]
    if entity == "products":
        if record.get("type") == "variable":
            return [(entity, {**_keys(record, "id", "name", "date_modified_gmt"), PARTIAL: True})]
        return [(entity, record)]
    announced = [
        ("credit_notes", {"id": refund["id"], "order_id": record["id"], PARTIAL: True})
        for refund in record.get("refunds") or []
    ]
    return [(entity, record), *announced]


def _keys(record: dict[str, Any], *names: str) -> dict[str, Any]:
    return {name: record[name] for name in names if name in record}


def record_ref(entity: str, record: dict[str, Any]) -> tuple[str, str, datetime | None]:
    refs = {
        "orders": transforms.order_ref,
        "credit_notes": transforms.refund_ref,
        "products": transforms.product_ref,
    }
    return refs[entity](record)


def signature(secret: str, body: bytes) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def verify(secrets: Sequence[str], body: bytes, headers: Mapping[str, str]) -> bool:
    given = headers.get("X-WC-Webhook-Signature", "")
    return any(secret and hmac.compare_digest(signature(secret, body), given) for secret in secrets)
