"""All outbound HTTP goes through here: timeouts, one outbound policy, one classification of failures, redaction.

Callers get a `requests.Response` for 2xx answers, and otherwise one of two exceptions: `TransientError` (network
trouble, 5xx, 429: worth retrying later, with the server's Retry-After if it gave one) or `PermanentError` (any
other 4xx: retrying will not help; the message is the receiving system's own, marked `remote`).

The outbound policy: merchants enter the addresses IEX calls, so an address must not reach our own network. A host
is resolved once per connection and each address it resolves to is checked; loopback, private, link-local,
multicast, reserved and unspecified addresses (IPv4 and IPv6, also IPv4-mapped) are refused unless the operator
lists their network (OUTBOUND_ALLOWED_NETWORKS), and the connection is made to the address that was checked, so a
second look-up cannot point it elsewhere. Redirects are followed within the same scheme, host and port only: never
to another host, where the credentials in the headers would go along.
Tests fake this boundary (`responses`) or point connectors at the sandbox.
"""

from __future__ import annotations

import functools
import ipaddress
import os
import socket
import threading
from typing import Any, Protocol
from urllib.parse import urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import NameResolutionError, NewConnectionError
from urllib3.util.connection import create_connection

TIMEOUT = (5.0, 30.0)  # connect, read
MAX_REDIRECTS = 5
NOT_PERMITTED = (
    "IEX does not call {}: it is on a local or private network. Enter the system's public address (an operator can "
    "allow a private network with OUTBOUND_ALLOWED_NETWORKS)"
)
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
        self,
        message: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        body: Any = None,
        remote: bool = False,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.retry_after = retry_after
        self.body = body
        self.remote = remote  # the message carries the answering system's own words


class TransientError(HTTPError):
    """Network error, 5xx or 429: try again later."""


class PermanentError(HTTPError):
    """A 4xx other than 429: the receiving system refused the request as it is."""


# --- the outbound policy ----------------------------------------------------------------------------------------


NAT64 = ipaddress.ip_network("64:ff9b::/96")


class NotPermitted(OSError):
    """The host resolves only to addresses IEX does not call."""


@functools.lru_cache(maxsize=8)
def _networks(listed: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(network) for network in listed)


def permitted(address: str) -> bool:
    """Whether IEX may connect to this IP address: a public one, or on a network the operator listed."""
    from django.conf import settings

    ip = ipaddress.ip_address(address.split("%", 1)[0])  # an IPv6 zone ("fe80::1%eth0") is no part of it
    # An IPv4 address inside an IPv6 one is what is reached: mapped (::ffff:127.0.0.1), 6to4, NAT64 (64:ff9b::/96)
    if isinstance(ip, ipaddress.IPv6Address) and (
        embedded := ip.ipv4_mapped or ip.sixtofour or (ip in NAT64 and ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    ):
        ip = embedded
    if any(ip in network for network in _networks(tuple(settings.OUTBOUND_ALLOWED_NETWORKS))):
        return True
    return ip.is_global and not ip.is_multicast


def _checked(host: str, port: int) -> list[tuple[Any, ...]]:
    """The host's addresses IEX may connect to (getaddrinfo's tuples): resolved once; NotPermitted when none is."""
    found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    allowed = [info for info in found if permitted(str(info[4][0]))]
    if not allowed:
        raise NotPermitted(NOT_PERMITTED.format(host))
    return allowed


class _Checked(HTTPConnection):
    """A connection made to an address of its host that the policy permits: the one that was checked."""

    def _new_conn(self) -> socket.socket:
        if self.proxy is not None:  # through a proxy, which resolves the host: it was checked before (request)
            return super()._new_conn()
        try:
            addresses = _checked(self._dns_host, self.port)
        except socket.gaierror as exc:
            raise NameResolutionError(self.host, self, exc) from exc
        checked = str(addresses[0][4][0])
        try:  # to the literal address: no second look-up
            return create_connection((checked, self.port), self.timeout, self.source_address, self.socket_options)
        except OSError as exc:
            raise NewConnectionError(self, f"Failed to establish a new connection: {exc}") from exc


class _CheckedHTTPS(_Checked, HTTPSConnection):
    pass


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _Checked


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _CheckedHTTPS


class _Adapter(HTTPAdapter):
    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}


def _session() -> requests.Session:
    # A session per thread: connection pooling without sharing one session across worker threads.
    if not hasattr(_local, "session"):
        session = requests.Session()
        session.mount("http://", _Adapter())
        session.mount("https://", _Adapter())
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
        response = _follow(
            method, url, headers=headers, params=params, json=json, data=data, auth=auth, timeout=timeout
        )
    except _Elsewhere as exc:
        raise PermanentError(str(exc), status=exc.status, body={"location": exc.location}) from None
    except (requests.RequestException, NotPermitted) as exc:
        if (refusal := _found(exc, NotPermitted)) is not None:
            raise PermanentError(str(refusal)) from None  # the policy, not the system: no gate is told
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
            remote=True,
        )
    if response.status_code >= 300:
        raise PermanentError(
            f"{_host(url)} answered {response.status_code}: {error_message(response)}",
            status=response.status_code,
            body=_body(response),
            remote=True,
        )
    return response


class _Elsewhere(Exception):
    """A redirect IEX does not follow."""

    def __init__(self, message: str, status: int, location: str) -> None:
        super().__init__(message)
        self.status, self.location = status, location


def _follow(method: str, url: str, **kwargs: Any) -> requests.Response:
    """The answer to the request, following redirects within its scheme, host and port (never elsewhere: the
    headers carry credentials)."""
    for _ in range(MAX_REDIRECTS + 1):
        parts = urlsplit(url)
        proxies = _proxies(f"{parts.scheme}://{parts.netloc}")
        if proxies.get(parts.scheme):  # the proxy resolves the host: it is checked here, as well as it can be
            _checked(parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80))
        response = _session().request(method, url, allow_redirects=False, proxies=proxies, **kwargs)
        if not response.is_redirect:
            return response
        target = urljoin(url, response.headers["location"])
        response.close()
        if _origin(target) != _origin(url):
            raise _Elsewhere(
                f"{_host(url)} sent IEX on to another address ({_host(target)}), which IEX does not follow: enter "
                "the address the system answers at",
                response.status_code,
                target,
            )
        if response.status_code == 303 or (response.status_code in (301, 302) and method == "POST"):
            method, kwargs = "GET", {**kwargs, "json": None, "data": None}
        url, kwargs = target, {**kwargs, "params": None}  # the new address carries its own query
    raise _Elsewhere(f"{_host(url)} redirected IEX more than {MAX_REDIRECTS} times", response.status_code, url)


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme, (parts.hostname or "").lower(), parts.port


def _found(exc: BaseException, kind: type[BaseException]) -> BaseException | None:
    """The `kind` exception among the causes of `exc` (requests wraps urllib3's, which wrap the socket's)."""
    seen: list[BaseException] = [exc]
    for each in seen:
        if isinstance(each, kind):
            return each
        nested = [each.__cause__, each.__context__, getattr(each, "reason", None), *each.args]
        seen.extend(n for n in nested if isinstance(n, BaseException) and n not in seen and len(seen) < 20)
    return None


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
