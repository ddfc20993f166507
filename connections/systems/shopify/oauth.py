"""Installing IEX in a Shopify shop: Shopify's authorization-code grant for IEX's app.

The merchant enters their shop's myshopify.com address (forms.InstallForm) and is sent to the shop's own authorize
page with IEX's client id, the scopes IEX's calls need and IEX's state; without grant_options[] the token is an
offline one, valid until the app is uninstalled. After they install, Shopify sends the browser back to IEX's return
address with `code`, `hmac`, `host`, `shop`, `state` and `timestamp`. The hmac is the hex HMAC-SHA256, with IEX's
client secret, of the other parameters sorted and joined as k=v&...: IEX checks it (in constant time) and that the
shop is the one the merchant entered, then exchanges the code for the access token. A code works once.
"""

from __future__ import annotations

import hashlib
import hmac
from collections import abc
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from django.conf import settings

from connections.systems.shopify.forms import MYSHOPIFY_DOMAIN
from iex.lib import http

if TYPE_CHECKING:
    from connections.models import Module

# What the client calls: orders (and their refunds), products and variants, locations, and stock levels it sets.
SCOPES = ("read_orders", "read_products", "read_inventory", "write_inventory", "read_locations")


def available() -> bool:
    return bool(settings.SHOPIFY_CLIENT_ID and settings.SHOPIFY_CLIENT_SECRET)


def app_secret() -> str:
    """What Shopify signs the webhooks of IEX's installed app with: the app's client secret."""
    return settings.SHOPIFY_CLIENT_SECRET


def _shop_url(module: Module, shop: str) -> str:
    """The shop's own address (the sandbox's, when the module points at it)."""
    return (module.base_url or "").rstrip("/") or f"https://{shop}"


def url(module: Module, state: str, redirect_uri: str, asked: abc.Mapping[str, str]) -> str:
    query = {
        "client_id": settings.SHOPIFY_CLIENT_ID,
        "scope": ",".join(SCOPES),
        "redirect_uri": redirect_uri,
        "state": state,
    }
    return f"{_shop_url(module, asked['shop_domain'])}/admin/oauth/authorize?{urlencode(query)}"


def signature(params: abc.Mapping[str, str], secret: str) -> str:
    """Shopify's hmac of a request it sends through the browser: every parameter but `hmac`, sorted, as k=v joined
    by &, with the characters that would make two parameters look like one escaped (% and & everywhere, = in names),
    as Shopify's own libraries do."""
    pairs = sorted(
        f"{name.replace('%', '%25').replace('=', '%3D')}={value.replace('%', '%25')}".replace("&", "%26")
        for name, value in params.items()
        if name != "hmac"
    )
    return hmac.new(secret.encode(), "&".join(pairs).encode(), hashlib.sha256).hexdigest()


def verify(answer: abc.Mapping[str, str], asked: abc.Mapping[str, str]) -> str:
    """Why the answer is not Shopify's own to the install IEX asked for ("" when it is)."""
    expected = signature(answer, settings.SHOPIFY_CLIENT_SECRET)
    if not hmac.compare_digest(expected.encode(), answer.get("hmac", "").encode()):
        return "it is not signed with IEX's app secret"
    shop = answer.get("shop", "")
    if not MYSHOPIFY_DOMAIN.fullmatch(shop) or shop != asked.get("shop_domain"):
        return f"it is for {shop or 'no shop'}, not {asked.get('shop_domain')}"
    return ""


def exchange(module: Module, code: str, redirect_uri: str, asked: abc.Mapping[str, str]) -> dict[str, Any]:
    """The credentials to keep for the code: the shop and its offline access token, with the scopes it grants."""
    shop = asked["shop_domain"]
    body = {"client_id": settings.SHOPIFY_CLIENT_ID, "client_secret": settings.SHOPIFY_CLIENT_SECRET, "code": code}
    try:
        answer = http.request(
            "POST", f"{_shop_url(module, shop)}/admin/oauth/access_token", json=body, gate=module.gate
        )
    except http.PermanentError as exc:
        if exc.status != 400:
            raise
        # Shopify's 400: a code used already (or too old), or IEX's app registration not the shop's app's
        raise http.PermanentError(
            "Shopify gave IEX no token for this install (its code was used already, or IEX's app registration "
            "SHOPIFY_CLIENT_ID / SHOPIFY_CLIENT_SECRET is wrong): install IEX again",
            body=exc.body,
        ) from None
    try:
        token, scope = str(answer.json()["access_token"]), str(answer.json().get("scope") or "")
    except (ValueError, TypeError, KeyError):
        raise http.PermanentError("Shopify's answer had no access token: install IEX again") from None
    if missing := [name for name in SCOPES if not _granted(name, scope)]:
        raise http.PermanentError(
            f"Shopify granted IEX less than it needs ({', '.join(missing)}): install IEX again"
        )
    return {"shop_domain": shop, "access_token": token, "scope": scope}


def _granted(name: str, scope: str) -> bool:
    """Whether the scope Shopify granted covers `name` (write_x covers read_x)."""
    granted = {each.strip() for each in scope.split(",")}
    return name in granted or name.replace("read_", "write_", 1) in granted
