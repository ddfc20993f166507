"""Connecting through Dinero's login: Visma Connect's OAuth 2.0 authorization-code flow.

The merchant is sent to Visma Connect's authorize page with IEX's client id and the scopes (`offline_access` gives a
refresh token), `response_mode=form_post`: after they approve, their browser POSTs the code and IEX's state to IEX's
return address (connections/views.py). The code is exchanged, with IEX's client secret, for an access token of about
an hour and a refresh token, which is kept with the module's credentials and rotated on every refresh (client.py).
The organisation is then the one the login opens; when it opens several, the merchant picks one.
"""

from __future__ import annotations

from collections import abc
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from django.conf import settings

from connections.systems.dinero.client import api_url, connect_url, grant
from iex.lib import http

if TYPE_CHECKING:
    from connections.models import Module

SCOPES = "dineropublicapi:read dineropublicapi:write offline_access"
REFUSED = "Visma Connect did not accept the answer it gave: connect Dinero again"


def available() -> bool:
    return bool(settings.DINERO_CLIENT_ID)


def url(module: Module, state: str, redirect_uri: str, asked: abc.Mapping[str, str]) -> str:
    query = {
        "client_id": settings.DINERO_CLIENT_ID,
        "response_type": "code",
        "response_mode": "form_post",
        "scope": SCOPES,
        "redirect_uri": redirect_uri,
        "state": state,
    }
    return f"{connect_url(module)}/authorize?{urlencode(query)}"


def exchange(module: Module, code: str, redirect_uri: str, asked: abc.Mapping[str, str]) -> dict[str, Any]:
    """The credentials to keep for the code: the refresh token, and the organisation when the login opens one."""
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
    answer = grant(module, form, REFUSED)
    if not answer.get("refresh_token") or not answer.get("access_token"):
        raise http.PermanentError("Dinero gave no refresh token (the offline_access scope): connect Dinero again")
    headers = {"Authorization": f"Bearer {answer['access_token']}", "Accept": "application/json"}
    url = f"{api_url(module)}/v1/organizations"
    listed = http.request("GET", url, headers=headers, params={"fields": "Id,Name"}, gate=module.gate)
    try:
        organizations = [str(each["Id"]) for each in listed.json() or []]
    except (ValueError, TypeError, KeyError):
        raise http.PermanentError(
            "Dinero's list of organisations could not be read: connect Dinero again"
        ) from None
    only = organizations[0] if len(organizations) == 1 else ""
    return {"refresh_token": str(answer["refresh_token"]), "organization_id": only}
