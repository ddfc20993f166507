"""Benchmark: webhook intake under gunicorn (as in production), next to a bare Django view, in one run.

    .venv/bin/python bench/webhooks.py [--seconds 10] [--connections 16]

Needs PostgreSQL and Redis on 127.0.0.1 and `wrk` (apt-get install wrk). Starts gunicorn with the production
command (3 sync workers) on a fresh database, then:

1. maximum throughput: wrk posts a signed Shopify order (a new event id per request) to /hooks/<token>/, and the
   same body to a bare view that only reads it; prints both rates and their ratio (goal: at least 0.5x). Between
   them, two floors under the same server: the bare view plus one round trip to PostgreSQL (SELECT 1), and plus one
   committed INSERT of an empty row: the most that a view asking the database, or storing before it answers,
   can reach on this machine;
2. latency at half the intake's maximum rate, at a constant rate from a paced client: p50/p95/p99 (goal: p99
   at most 50 ms);
3. 10,000 deliveries, 10 % of them duplicates of earlier events: every distinct event answered 2xx is stored,
   once; processed by a real Celery worker, they make exactly the unique count of transfers.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import http.client
import itertools
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SECRET = "bench-webhook-secret"  # noqa: S105 - a throwaway bench database

WRK_SCRIPT = """
local counter = 0
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("prefix", tostring(os.time()) .. "t" .. threads)
end
request = function()
  counter = counter + 1
  wrk.headers["X-Shopify-Event-Id"] = prefix .. "-" .. counter
  return wrk.format(nil, nil, wrk.headers, nil)
end
"""


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--deliveries", type=int, default=10_000)
    return parser.parse_args()


def environment() -> dict[str, str]:
    from cryptography.fernet import Fernet

    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "bench.settings",
        "DEBUG": "0",
        "OUTBOUND_ALLOWED_NETWORKS": "127.0.0.0/8,::1/128",  # the sandbox is on loopback
        "SECRET_KEY": "bench-" + Fernet.generate_key().decode(),
        "ALLOWED_HOSTS": "127.0.0.1",
        "SITE_URL": "http://127.0.0.1",
        "SECURE_SSL_REDIRECT": "0",
        "EMAIL_URL": "console://",
        "REDIS_URL": "redis://127.0.0.1:6379/13",
        "CELERY_BROKER_URL": "redis://127.0.0.1:6379/14",
        "CREDENTIALS_KEYS": Fernet.generate_key().decode(),
        "STRIPE_SECRET_KEY": "sk_test_bench",
        "STRIPE_WEBHOOK_SECRET": "whsec_bench",
        "DATABASE_URL": os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/iex_bench_hooks"),
        "LOG_LEVEL": "WARNING",
    }


def setup(env: dict[str, str]) -> str:
    """A fresh database with one integration whose Shopify orders arrive by webhook; returns the hook path."""
    from bench.common import fresh_database

    subprocess.run(["redis-cli", "-n", "14", "FLUSHDB"], check=True, capture_output=True)  # noqa: S607
    fresh_database(env)
    from django.contrib.auth.models import User

    from connections.models import Connection, Module
    from iex.models import Integration

    integration = Integration.create_for(User.objects.create_user("bench", "b@iex.local", "x"), "Bench")
    shop = Module(integration=integration, kind="shopify")
    shop.set_credentials({"shop_domain": "bench.myshopify.com", "access_token": "x", "webhook_secret": SECRET})
    shop.save()
    Module.objects.create(integration=integration, kind="economic")  # not connected: transfers end as skipped
    Connection.ensure_for(integration)
    integration.connections.filter(flow="orders").update(active=True, trigger="webhook")
    from django.db import connection

    from bench.urls import FLOOR_TABLE

    with connection.cursor() as cursor:
        cursor.execute(FLOOR_TABLE)
    return f"/hooks/{shop.webhook_token}/"


def order(n: int) -> bytes:
    return json.dumps(
        {
            "id": 5_600_000_000_000 + n,
            "name": f"#{1000 + n}",
            "updated_at": "2026-11-26T10:00:00+00:00",
            "financial_status": "paid",
            "currency": "DKK",
            "total_price": "199.00",
            "taxes_included": True,
            "email": f"customer{n}@example.com",
            "line_items": [
                {
                    "id": n,
                    "sku": "HELMET-M",
                    "name": "Helmet",
                    "quantity": 1,
                    "price": "199.00",
                    "tax_lines": [{"rate": 0.25, "price": "39.80"}],
                }
            ],
        }
    ).encode()


def sign(body: bytes) -> str:
    return base64.b64encode(hmac.new(SECRET.encode(), body, hashlib.sha256).digest()).decode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_gunicorn(env: dict[str, str], port: int) -> subprocess.Popen:
    # The production command from docker-compose.yml, on loopback.
    process = subprocess.Popen(  # noqa: S603
        [
            sys.executable,
            "-m",
            "gunicorn",
            "iex.wsgi:application",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "3",
            "--timeout",
            "30",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
        start_new_session=True,
    )
    for _ in range(100):
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return process
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit("gunicorn did not start")


def wrk(url: str, body: bytes, seconds: int, connections: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "post.lua"
        script.write_text(
            f"wrk.method = 'POST'\nwrk.body = {json.dumps(body.decode())}\n"
            f"wrk.headers['Content-Type'] = 'application/json'\nwrk.headers['X-Shopify-Topic'] = 'orders/create'\n"
            f"wrk.headers['X-Shopify-Hmac-Sha256'] = '{sign(body)}'\n" + WRK_SCRIPT
        )
        out = subprocess.run(  # noqa: S603
            ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), url],  # noqa: S607
            capture_output=True,
            text=True,
            check=True,
        ).stdout

    def number(pattern: str) -> str:
        found = re.search(pattern, out)
        return found.group(1) if found else "0"

    requests_done = int(number(r"(\d+) requests in"))
    return {
        "rate": float(number(r"Requests/sec:\s+([\d.]+)")),
        "requests": requests_done,
        "ok": requests_done - int(number(r"Non-2xx or 3xx responses: (\d+)")),
    }


PACED_RUNS = itertools.count()


def paced(port: int, path: str, rate: float, seconds: int) -> list[float]:
    """POST at a constant rate (new event ids, keep-alive connections); the latency of each request, in ms."""
    body = order(0)
    headers = {
        "Content-Type": "application/json",
        "X-Shopify-Topic": "orders/create",
        "X-Shopify-Hmac-Sha256": sign(body),
    }
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    lock = threading.Lock()
    call = next(PACED_RUNS)  # every call posts new events: a repeated one would be answered as a duplicate
    threads = 8
    per_thread = rate / threads
    stop_at = time.monotonic() + seconds

    def run(k: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        n, start = 0, time.monotonic() + k / rate
        while True:
            due = start + n / per_thread
            if due > stop_at:
                break
            time.sleep(max(0.0, due - time.monotonic()))
            t = time.perf_counter()
            conn.request("POST", path, body, {**headers, "X-Shopify-Event-Id": f"paced-{call}-{k}-{n}"})
            response = conn.getresponse()
            response.read()
            with lock:
                latencies.append(1000 * (time.perf_counter() - t))
                statuses[response.status] = statuses.get(response.status, 0) + 1
            n += 1

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(run, range(threads)))
    if set(statuses) != {200}:
        print(f"  paced answers by status: {statuses}")
    return sorted(latencies)


def percentile(values: list[float], p: float) -> float:
    return values[min(len(values) - 1, int(p / 100 * len(values)))]


def main() -> None:
    args = parse()
    env = environment()
    hook = setup(env)
    port = free_port()
    server = start_gunicorn(env, port)
    from connections.models import Delivery
    from transferlog.models import Transfer

    try:
        base = f"http://127.0.0.1:{port}"
        body = order(0)
        views = {
            "bare Django view": "/bench/bare/",
            "+ SELECT 1": "/bench/round-trip/",
            "+ committed INSERT": "/bench/commit/",
            "webhook intake": hook,
        }
        for path in views.values():  # warm up
            wrk(f"{base}{path}", body, 2, args.connections)
        Delivery.objects.all().delete()
        rates = {name: wrk(f"{base}{path}", body, args.seconds, args.connections) for name, path in views.items()}
        print(
            f"maximum rate, {args.connections} connections, {args.seconds} s each (wrk, 3 gunicorn sync workers):"
        )
        bare, intake = rates["bare Django view"], rates["webhook intake"]
        for name, measured in rates.items():
            ratio = f"   ratio {measured['rate'] / bare['rate']:.2f}x" if measured is not bare else ""
            print(f"  {name:<20}{measured['rate']:8.0f} req/s{ratio}")
        print("  (goal for the intake: at least 0.5x; the two floors between are views, not intake)")

        rate = intake["rate"] / 2
        latencies = paced(port, hook, rate, args.seconds)
        p50, p95, p99 = (percentile(latencies, p) for p in (50, 95, 99))
        print(
            f"latency at half that rate ({rate:.0f} req/s, {len(latencies)} requests): "
            f"p50 {p50:.1f} ms, p95 {p95:.1f} ms, p99 {p99:.1f} ms (goal: p99 at most 50 ms)"
        )

        # 10,000 deliveries, 10 % duplicates, through a real worker.
        Delivery.objects.all().delete()
        unique = args.deliveries * 9 // 10
        events = [n for n in range(unique)] + [n * 7 % unique for n in range(args.deliveries - unique)]
        worker = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "iex",
                "worker",
                "-Q",
                "intake,transfers,jobs",
                "--concurrency",
                "2",
                "--loglevel",
                "WARNING",
                "--without-gossip",
                "--without-mingle",
            ],
            cwd=ROOT,
            env={**env, "DJANGO_SETTINGS_MODULE": "iex.settings"},
            stdout=subprocess.DEVNULL,  # its banner; errors still go to stderr
            start_new_session=True,
        )

        def post(n: int) -> int:
            payload = order(100_000 + n)
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request(
                "POST",
                hook,
                payload,
                {
                    "Content-Type": "application/json",
                    "X-Shopify-Topic": "orders/create",
                    "X-Shopify-Event-Id": f"dup-{n}",
                    "X-Shopify-Hmac-Sha256": sign(payload),
                },
            )
            status = conn.getresponse().status
            conn.close()
            return status

        started = time.perf_counter()
        with ThreadPoolExecutor(16) as pool:
            statuses = list(pool.map(post, events))
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and (
            Delivery.objects.filter(status="received").exists()
            or Transfer.objects.filter(status__in=["pending", "running"]).exists()
        ):
            time.sleep(1)
        seconds = time.perf_counter() - started  # to the second: the wait polls once a second
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=60)
        transfers = Transfer.objects.count()
        answered = {event for event, status in zip(events, statuses, strict=True) if status == 200}
        stored = Delivery.objects.count()
        print(
            f"{args.deliveries} posted ({args.deliveries - unique} duplicates): {statuses.count(200)} answered 200, "
            f"{len(answered)} distinct events among them, {stored} deliveries stored: "
            f"{'equal' if stored == len(answered) else 'NOT EQUAL'}"
        )
        print(f"transfers: {transfers} for {unique} unique orders: {'exact' if transfers == unique else 'WRONG'}")
        print(
            f"posted and processed by one worker (2 processes) in {seconds:.0f} s: {transfers / seconds:.0f} transfers/s"
        )
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
