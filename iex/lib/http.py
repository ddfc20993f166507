"""All outbound HTTP goes through here: timeouts, one classification of failures, and redaction.

Callers get a `requests.Response` for 2xx and 3xx answers, and otherwise one of two exceptions:
`TransientError` (network trouble, 5xx, 429: worth retrying later, with the server's Retry-After if it gave one)
or `PermanentError` (any other 4xx: retrying will not help; the message is the receiving system's own).
Tests fake this boundary (`responses`) or point connectors at the sandbox.
"""

from __future__ import annotations

import functools
import os
import threading
from typing import Any, Protocol
from urllib.parse import urlsplit

import requests

TIMEOUT = (5.0, 30.0)  # connect, read
SENSITIVE_HEADERS = {
    "authorization",
    "cookie",
    "x-shopify-access-token",
    "x-appsecrettoken",
    "x-agreementgranttoken",
}

_local = threading.local()


class HTTPError(Exception):
    def __init__(
        self, message: str, *, status: int | None = None, retry_after: float | None = None, body: Any = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.retry_after = retry_after
        self.body = body


class TransientError(HTTPError):
    """Network error, 5xx or 429: try again later."""


class PermanentError(HTTPError):
    """A 4xx other than 429: the receiving system refused the request as it is."""


def _session() -> requests.Session:
    # A session per thread: connection pooling without sharing one session across worker threads.
    if not hasattr(_local, "session"):
        session = requests.Session()
        # requests reads proxies, .netrc and the CA bundle from the environment on every call (a walk over
        # os.environ and a stat per request: a third of the CPU of a transfer). Read them once, here.
        session.trust_env = False
        session.verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
        _local.session = session
    return _local.session


@functools.lru_cache(maxsize=256)
def _proxies(scheme_and_host: str) -> dict[str, str]:
    """The environment's proxies (HTTP_PROXY, HTTPS_PROXY, NO_PROXY) for one host, looked up once."""
    return requests.utils.get_environ_proxies(scheme_and_host)


class Gatekeeper(Protocol):
    """What stands in front of an account of a system (connections/gate.py): asked before every request, told the
    answer's status after it (None: no answer). Either may raise to make the caller wait."""

    def before(self) -> None: ...

    def after(self, status: int | None, retry_after: float | None) -> None: ...


def request(
    method: str,
    url: str,
    *,
    headers: dict[str, str] | None = None,
    params: Any = None,
    json: Any = None,
    data: Any = None,
    auth: tuple[str, str] | None = None,
    timeout: tuple[float, float] = TIMEOUT,
    gate: Gatekeeper | None = None,
) -> requests.Response:
    if gate is not None:
        gate.before()
    try:
        parts = urlsplit(url)
        response = _session().request(
            method,
            url,
            headers=headers,
            params=params,
            json=json,
            data=data,  # a form (OAuth token endpoints)
            auth=auth,
            timeout=timeout,
            proxies=_proxies(f"{parts.scheme}://{parts.netloc}"),
        )
    except requests.RequestException as exc:
        if gate is not None:
            gate.after(None, None)
        raise TransientError(f"Could not reach {_host(url)}: {type(exc).__name__}") from None
    if gate is not None:
        gate.after(response.status_code, _retry_after(response))
    if response.status_code == 429 or response.status_code >= 500:
        raise TransientError(
            f"{_host(url)} answered {response.status_code}: {error_message(response)}",
            status=response.status_code,
            retry_after=_retry_after(response),
            body=_body(response),
        )
    if response.status_code >= 400:
        raise PermanentError(
            f"{_host(url)} answered {response.status_code}: {error_message(response)}",
            status=response.status_code,
            body=_body(response),
        )
    return response


def redact(headers: dict[str, str]) -> dict[str, str]:
    """Headers safe to store or show: credentials replaced."""
    return {k: ("[redacted]" if k.lower() in SENSITIVE_HEADERS else v) for k, v in headers.items()}


def error_message(response: requests.Response) -> str:
    """The receiving system's own words, from the usual places in a JSON error body."""
    body = _body(response)
    if isinstance(body, dict):
        for key in ("message", "errors", "error", "error_description"):
            if body.get(key):
                value = body[key]
                return value if isinstance(value, str) else str(value)[:500]
    if isinstance(body, str) and body.strip():
        return body.strip()[:500]
    return response.reason or "no message"


def _body(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text[:2000]


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def _host(url: str) -> str:
    return requests.utils.urlparse(url).netloc or url
