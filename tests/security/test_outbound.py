"""The outbound policy (iex/lib/http.py): an address a merchant enters must not reach our own network. Loopback,
private, link-local, multicast and reserved addresses are refused (IPv4, IPv6 and IPv4-mapped), a host is resolved
once and the connection made to the address that was checked, redirects go nowhere but the same scheme, host and
port, and a failed test says what failed in IEX's words, never the answering server's."""

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from connections.models import Module
from iex.lib import http

pytestmark = pytest.mark.django_db


class Server:
    """A local HTTP server that notes each request and answers from `routes` (path -> status, headers, body)."""

    def __init__(self, routes):
        self.requests = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests.append((self.path, dict(self.headers)))
                status, headers, body = routes.get(self.path, (200, {}, {"ok": True}))
                self.send_response(status)
                for name, value in {"Content-Type": "application/json", **headers}.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(json.dumps(body).encode())

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    running = Server({})
    yield running
    running.close()


@pytest.fixture
def production(settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = []
    settings.API_ADDRESSES = False
    return settings


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1", "10.0.0.5", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1", "0.0.0.0",  # noqa: S104
     "224.0.0.1", "255.255.255.255", "240.0.0.1", "::1", "::", "fe80::1%eth0", "fc00::1", "fd12::1", "ff02::1",
     "::ffff:127.0.0.1", "::ffff:169.254.169.254", "::ffff:10.0.0.1", "64:ff9b::7f00:1", "2002:a9fe:a9fe::1"],
)  # fmt: skip
def test_local_private_and_reserved_addresses_are_refused(address, production):
    assert not http.permitted(address)


@pytest.mark.parametrize("address", ["8.8.8.8", "151.101.1.1", "2606:4700::1111", "::ffff:8.8.8.8"])
def test_public_addresses_are_permitted(address, production):
    assert http.permitted(address)


def test_an_operator_may_allow_a_private_network(production):
    production.OUTBOUND_ALLOWED_NETWORKS = ["10.1.2.0/24"]
    assert http.permitted("10.1.2.3") and not http.permitted("10.1.3.1")


@pytest.mark.parametrize("host", ["127.0.0.1", "[::1]", "localhost", "metadata.google.internal"])
def test_a_request_to_our_own_network_is_refused_before_it_is_made(host, production, server, monkeypatch):
    real = socket.getaddrinfo

    def resolve(name, *args, **kwargs):  # the metadata host as a cloud's resolver answers it
        return real("169.254.169.254" if name == "metadata.google.internal" else name, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    port = server.httpd.server_port
    with pytest.raises(http.PermanentError, match=r"IEX does not call .*: it is on a local or private network"):
        http.request("GET", f"http://{host}:{port}/metrics")
    assert server.requests == []


def test_the_host_is_looked_up_once_and_the_checked_address_is_the_one_called(settings, server, monkeypatch):
    """A rebinding name answers a permitted address to the check and our own to a second look-up: there is none."""
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    real, asked = socket.getaddrinfo, []

    def rebinding(name, *args, **kwargs):
        if name == "rebind.example":
            asked.append(name)
            name = "127.0.0.1" if len(asked) == 1 else "127.0.0.2"
        return real(name, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    port = server.httpd.server_port
    assert http.request("GET", f"http://rebind.example:{port}/ping").json() == {"ok": True}
    assert asked == ["rebind.example"] and server.requests[0][0] == "/ping"


def test_redirects_are_followed_within_the_address_only_and_never_carry_credentials_elsewhere(settings):
    elsewhere = Server({})
    here = Server({
        "/moved": (301, {"Location": "/api"}, {}),
        "/away": (302, {"Location": f"{elsewhere.url}/steal"}, {}),
    })  # fmt: skip
    try:
        secret = {"X-AppSecretToken": "app-secret"}
        assert http.request("GET", f"{here.url}/moved", headers=secret).json() == {"ok": True}
        assert [path for path, _ in here.requests] == ["/moved", "/api"]
        with pytest.raises(http.PermanentError, match="sent IEX on to another address") as refused:
            http.request("GET", f"{here.url}/away", headers=secret)
        assert refused.value.status == 302 and elsewhere.requests == []
    finally:
        here.close()
        elsewhere.close()


def test_testing_a_connection_to_our_network_says_so_and_calls_nothing(personas, production, server):
    """Saving credentials tests them in the web process: with our loopback as the address, nothing is called."""
    books = Module(integration=personas.integration, kind="economic", base_url=f"{server.url}/economic")
    books.set_credentials({"app_secret_token": "a", "agreement_grant_token": "g"})
    books.save()
    client = personas.client(personas.owner)
    page = client.post(f"{books.get_absolute_url()}test/", follow=True).content.decode()
    assert "Test connection failed: IEX does not call 127.0.0.1: it is on a local or private network" in page
    assert server.requests == []
    # In production a hosted system is reached at its own address: none is asked for
    assert 'name="base_url"' not in page and 'name="app_secret_token"' in page


def test_a_closed_port_and_an_open_one_read_the_same(personas):
    """Closed and open ports (a service that is not the system's) must not be told apart by what a test says."""
    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    listening.listen()

    def hang_up():  # an open port whose service closes the connection: not HTTP
        while True:
            try:
                connection, _ = listening.accept()
            except OSError:
                return
            connection.close()

    threading.Thread(target=hang_up, daemon=True).start()
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    closed_port = closed.getsockname()[1]
    closed.close()
    said = []
    for port in (closed_port, listening.getsockname()[1]):
        address = f"http://127.0.0.1:{port}/shopify"
        shop, _ = Module.objects.update_or_create(
            integration=personas.integration, kind="shopify", defaults={"base_url": address}
        )
        shop.set_credentials({"shop_domain": "x.myshopify.com", "access_token": "shpat_x"})
        shop.save()
        page = personas.client(personas.owner).post(f"{shop.get_absolute_url()}test/", follow=True)
        said.append([str(m) for m in page.context["messages"]])
    listening.close()
    assert said[0] == said[1] == ["Test connection failed: could not reach Shopify at this address"]


def test_requests_itself_is_never_asked_to_follow_a_redirect(monkeypatch):
    seen = []
    real = requests.Session.request

    def noted(self, method, url, **kwargs):
        seen.append(kwargs.get("allow_redirects"))
        return real(self, method, url, **kwargs)

    monkeypatch.setattr(requests.Session, "request", noted)
    with pytest.raises(http.HTTPError):
        http.request("GET", "http://127.0.0.1:9/")
    assert seen == [False]
