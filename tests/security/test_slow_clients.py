"""Slow clients cannot take the web tier down: in the production process model (gunicorn's 3 sync workers behind
the compose file's nginx, deploy/nginx/iex.conf.template), /healthz and webhook intake answer at once while 50
clients dribble their headers and bodies. The same clients straight at gunicorn, as the compose file published it
before, hold every worker."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import threading
import time
import urllib.request
from pathlib import Path
from string import Template

import pytest

from bench.stack import Stack, answers, free_port, wait_for
from connections.systems.shopify.webhooks import signature

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
ROOT = Path(__file__).resolve().parents[2]
ORDER = (ROOT / "tests" / "payloads" / "shopify_order.json").read_bytes()

pytestmark = pytest.mark.skipif(not os.path.exists(NGINX), reason="nginx is not installed (.ci/run installs it)")


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    with Stack(tmp_path_factory.mktemp("slow"), workers=0, web_workers=3) as running:
        yield running


@pytest.fixture(scope="module")
def proxy(stack, tmp_path_factory):
    """nginx with the compose file's configuration, in front of the stack's gunicorn."""
    here = tmp_path_factory.mktemp("nginx")
    for name in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (here / name).mkdir()
        (here / name).chmod(0o777)
    port = free_port()
    server = Template((ROOT / "deploy" / "nginx" / "iex.conf.template").read_text()).safe_substitute(
        IEX_UPSTREAM=f"127.0.0.1:{stack.ports['web']}", IEX_LISTEN=f"127.0.0.1:{port}"
    )
    temp = " ".join(f"{name}_temp_path {here / name};" for name in ("fastcgi", "uwsgi", "scgi"))
    config = here / "nginx.conf"
    config.write_text(
        f"daemon off; pid {here}/nginx.pid; error_log {here}/error.log; worker_processes 1;\n"
        + ("user root;\n" if os.geteuid() == 0 else "")
        + "events { worker_connections 1024; }\n"
        + f"http {{ access_log off; client_body_temp_path {here}/body; proxy_temp_path {here}/proxy; {temp}\n"
        + server
        + "\n}\n"
    )
    process = subprocess.Popen([NGINX, "-c", str(config), "-p", str(here)])
    try:
        wait_for(lambda: answers(port, "/healthz"), 20, "nginx")
        yield port
    finally:
        process.terminate()
        process.wait(10)


class SlowClients:
    """`count` connections that each send a request a byte or a header line every second: half never finish their
    headers, half never finish their bodies."""

    def __init__(self, port: int, hook: str, count: int = 50) -> None:
        self.port, self.hook, self.count = port, hook, count
        self.stop = threading.Event()
        self.sockets: list[socket.socket] = []

    def __enter__(self) -> SlowClients:
        for n in range(self.count):
            sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
            if n % 2:
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            else:
                head = f"POST {self.hook} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100000\r\n\r\n"
                sock.sendall(head.encode())
            self.sockets.append(sock)
        self.thread = threading.Thread(target=self._dribble, daemon=True)
        self.thread.start()
        time.sleep(1)  # every one of them connected and talking
        return self

    def _dribble(self) -> None:
        while not self.stop.wait(1):
            for n, sock in enumerate(self.sockets):
                with contextlib.suppress(OSError):  # dropped by the server: as it should be in the end
                    sock.sendall(b"X-Slow: 1\r\n" if n % 2 else b"{")

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()
        for sock in self.sockets:
            sock.close()


def answered_within(
    url: str, seconds: float, data: bytes | None = None, headers: dict | None = None
) -> int | None:
    method = "POST" if data else "GET"
    request = urllib.request.Request(url, data=data, headers=headers or {}, method=method)  # noqa: S310 - loopback
    try:
        with urllib.request.urlopen(request, timeout=seconds) as answer:  # noqa: S310 - loopback
            return answer.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None  # no answer in time


def test_fifty_slow_clients_hold_neither_healthz_nor_intake_behind_the_proxy(stack, proxy):
    (shop,) = stack.python("bench.stack:make_integrations", 1, stack.sandbox_url, stack.sandbox_url)
    webhook = {
        "Content-Type": "application/json",
        "X-Shopify-Topic": "orders/create",
        "X-Shopify-Event-Id": "evt-slow-1",
        "X-Shopify-Hmac-Sha256": signature(shop["secret"], ORDER),
        "X-Shopify-Shop-Domain": "shop0.myshopify.com",
    }
    web = f"http://127.0.0.1:{stack.ports['web']}"
    with SlowClients(stack.ports["web"], shop["hook"], count=6):  # straight at gunicorn, 3 sync workers
        assert answered_within(f"{web}/healthz", 3) is None  # held: what the proxy is for
    wait_for(lambda: answered_within(f"{web}/healthz", 2) == 200, 60, "gunicorn free again")

    front = f"http://127.0.0.1:{proxy}"
    with SlowClients(proxy, shop["hook"], count=50):
        started = time.monotonic()
        assert [answered_within(f"{front}/healthz", 2) for _ in range(10)] == [200] * 10
        assert answered_within(f"{front}{shop['hook']}", 2, ORDER, webhook) == 200
        took = time.monotonic() - started
    assert took < 5, f"11 requests took {took:.1f} s beside 50 slow clients"
