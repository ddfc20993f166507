"""Connecting in one click: WooCommerce's own key generation page (`/wc-auth/v1/authorize`).

The merchant is sent to their shop with IEX's app name, the scope and where to post the keys; after they approve,
WooCommerce POSTs the new keys as JSON to the callback (which must answer 200, over HTTPS) and sends the browser
back to the return address with `success=1` (or 0 when they declined). `user_id` is IEX's own reference, echoed
back: it carries which module asked, signed.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

APP_NAME = "IEX"


def url(site: str, state: str, return_url: str, callback_url: str) -> str:
    query = {
        "app_name": APP_NAME,
        "scope": "read_write",
        "user_id": state,
        "return_url": return_url,
        "callback_url": callback_url,
    }
    return f"{site.rstrip('/')}/wc-auth/v1/authorize?{urlencode(query)}"


def keys(body: bytes) -> tuple[str, dict[str, Any]]:
    """(the state IEX gave, the credentials) from WooCommerce's post to the callback; ValueError when it is not one."""
    posted = json.loads(body)
    if not isinstance(posted, dict):
        raise ValueError("not a JSON object")
    key, secret = posted.get("consumer_key"), posted.get("consumer_secret")
    if not (
        isinstance(key, str) and key.startswith("ck_") and isinstance(secret, str) and secret.startswith("cs_")
    ):
        raise ValueError("no consumer key and secret")
    if posted.get("key_permissions") not in ("read_write", "write", "read"):
        raise ValueError("unknown key permissions")
    # WooCommerce echoes user_id as it got it; older versions and the docs show a number.
    return str(posted.get("user_id", "")), {"consumer_key": key, "consumer_secret": secret}
