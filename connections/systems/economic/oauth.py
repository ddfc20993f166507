"""Connecting e-conomic through its grant flow: the merchant adds IEX's app to their agreement on e-conomic's own
"request access" page, and copies nothing.

The page is opened with IEX's app public token and IEX's return address, which carries IEX's state (e-conomic passes
none of its own back). After the merchant adds the app, e-conomic sends the browser to that address with `token`:
the agreement grant token, the credential kept. The app secret token is IEX's own, not the merchant's: IEX sends
its ECONOMIC_APP_SECRET_TOKEN beside every module's grant (client.py), unless the merchant entered the tokens of a
private app of their own.
"""

from __future__ import annotations

from collections import abc
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from django.conf import settings

if TYPE_CHECKING:
    from connections.models import Module

REQUEST_ACCESS_URL = "https://secure.e-conomic.com/secure/api1/requestaccess.aspx"
# The same page under a module's API address (the sandbox's)
REQUEST_ACCESS_PATH = "/secure/api1/requestaccess.aspx"


def available() -> bool:
    return bool(settings.ECONOMIC_APP_PUBLIC_TOKEN and settings.ECONOMIC_APP_SECRET_TOKEN)


def url(module: Module, state: str, redirect_uri: str, asked: abc.Mapping[str, str]) -> str:
    base = (module.base_url or "").rstrip("/")
    page = f"{base}{REQUEST_ACCESS_PATH}" if base else REQUEST_ACCESS_URL
    back = f"{redirect_uri}?{urlencode({'state': state})}"
    return f"{page}?{urlencode({'appPublicToken': settings.ECONOMIC_APP_PUBLIC_TOKEN, 'redirectUrl': back})}"


def exchange(module: Module, code: str, redirect_uri: str, asked: abc.Mapping[str, str]) -> dict[str, Any]:
    """The grant token is the credential itself; it is kept with the app it was granted to (IEX's)."""
    return {"agreement_grant_token": code, "app_public_token": settings.ECONOMIC_APP_PUBLIC_TOKEN}
