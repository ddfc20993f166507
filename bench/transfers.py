"""Benchmark: orders through the transfer pipeline against the sandbox, next to a skeleton doing the same I/O.

    .venv/bin/python bench/transfers.py [--orders 2000] [--latency-ms 20] [--threads 16]

Runs on PostgreSQL (DATABASE_URL, default postgres://postgres@127.0.0.1:5432/iex_bench, created and migrated
afresh). The sandbox runs in its own process with the given latency per API call, so this process's CPU time is
IEX's alone. Both runs process the same orders with the same number of threads, in this one run:

- ours: `pipeline.sync` fetches the orders (Link-header pages), then `pipeline.process` sends each one
  (customer, products, draft, totals validation), writing the transfer, its states and the mapping.
- skeleton: replays exactly the HTTP requests ours made, with a bare requests.Session, and exactly the SQL writes
  ours made, with a bare cursor: the same I/O without our code.

Prints transfers per second and CPU milliseconds per transfer for both, and their ratio (goal: at most 1.5x).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--orders", type=int, default=2000)
    parser.add_argument("--latency-ms", type=int, default=20)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--port", type=int, default=8977)
    return parser.parse_args()


def setup_django() -> None:
    """Production settings (DEBUG off: no query log, no debug cursors) on a fresh PostgreSQL database."""
    from cryptography.fernet import Fernet

    os.environ.update(
        DJANGO_SETTINGS_MODULE="iex.settings",
        DEBUG="0",
        OUTBOUND_ALLOWED_NETWORKS="127.0.0.0/8,::1/128",  # the sandbox is on loopback
        SECRET_KEY="bench-" + Fernet.generate_key().decode(),
        ALLOWED_HOSTS="bench",
        SITE_URL="http://bench",
        EMAIL_URL="console://",
        REDIS_URL="redis://127.0.0.1:6379/15",
        CELERY_BROKER_URL="redis://127.0.0.1:6379/15",
        CREDENTIALS_KEYS=Fernet.generate_key().decode(),
        STRIPE_SECRET_KEY="sk_test_bench",  # noqa: S106 - a throwaway bench database
        STRIPE_WEBHOOK_SECRET="whsec_bench",  # noqa: S106
    )
    os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/iex_bench")
    from bench.common import fresh_database

    fresh_database(dict(os.environ))


def control(base: str, path: str, body: dict | None = None) -> dict:
    request = urllib.request.Request(  # noqa: S310 - loopback only
        f"{base}/_sandbox/{path}",
        data=json.dumps(body or {}).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback only
        return json.load(response)


def start_sandbox(port: int, latency_ms: int) -> subprocess.Popen:
    process = subprocess.Popen(  # noqa: S603
        [sys.executable, "-m", "sandbox", "--port", str(port), "--latency-ms", str(latency_ms), "--seed", "1"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(100):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/_sandbox/state", timeout=1)
            return process
        except OSError:
            time.sleep(0.1)
    raise SystemExit("the sandbox did not start")


def make_orders(base: str, count: int) -> None:
    with ThreadPoolExecutor(8) as pool:
        list(
            pool.map(
                lambda _: control(base, "shopify/orders", {"financial_status": "paid", "country": "DK"}),
                range(count),
            )
        )


def integration(base: str):
    from django.contrib.auth.models import User

    from billing.models import Plan, Subscription
    from connections.models import Connection, Module
    from iex.models import Integration

    user = User.objects.create_user("bench", "bench@iex.local", "x")
    integ = Integration.create_for(user, "Bench")
    subscription = Subscription.of(integ)
    subscription.plan = Plan.objects.get(code="enterprise")  # 20,000 orders a month: none is held
    subscription.save(update_fields=["plan"])
    shop = Module(integration=integ, kind="shopify", base_url=f"{base}/shopify")
    shop.set_credentials({"shop_domain": "sandbox.myshopify.com", "access_token": "shpat_sandbox"})
    shop.save()
    books = Module(integration=integ, kind="economic", base_url=f"{base}/economic")
    books.set_credentials({"app_secret_token": "sandbox-app-secret", "agreement_grant_token": "sandbox-grant"})
    books.save()
    Connection.ensure_for(integ)
    orders = integ.connections.get(flow="orders")
    orders.active = True
    orders.save()
    return orders


class Recorder:
    """Captures the HTTP requests and SQL writes of the code under test, per thread, to replay them."""

    def __init__(self) -> None:
        self.sync: list[tuple] = []  # ("http" | "sql", item) in the order they happened
        self.transfers: list[list[tuple]] = []  # the same, one list per processed transfer
        self.local = threading.local()
        self.lock = threading.Lock()

    def start_transfer(self) -> None:
        self.local.steps = []
        with self.lock:
            self.transfers.append(self.local.steps)

    def _add(self, kind: str, item: tuple) -> None:
        steps = getattr(self.local, "steps", None)
        (steps if steps is not None else self.sync).append((kind, item))

    def count(self, kind: str) -> int:
        return sum(k == kind for steps in [self.sync, *self.transfers] for k, _ in steps)

    def wrap_http(self, original):
        def request(method, url, *, headers=None, params=None, json=None, timeout=None, gate=None):
            self._add("http", (method, url, headers, params, json))
            return original(method, url, headers=headers, params=params, json=json, gate=gate)

        return request

    def sql_wrapper(self, execute, sql, params, many, context):
        if sql.lstrip()[:6].upper() in {"INSERT", "UPDATE", "DELETE"}:
            self._add("sql", (sql, params))
        return execute(sql, params, many, context)


def measure(label: str, work) -> tuple[float, float]:
    cpu, wall = time.process_time(), time.perf_counter()
    work()
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    args = parse()
    setup_django()
    from django.db import IntegrityError, connection, connections

    from connections import pipeline
    from iex.lib import http
    from transferlog.models import Transfer

    base = f"http://127.0.0.1:{args.port}"
    sandbox = start_sandbox(args.port, args.latency_ms)
    try:
        make_orders(base, args.orders)
        conn = integration(base)
        recorder = Recorder()
        http.request = recorder.wrap_http(http.request)
        since = datetime.now(UTC) - timedelta(days=1)

        def ours() -> None:
            with connection.execute_wrapper(recorder.sql_wrapper):
                pipeline.sync(conn, since)  # on_commit runs the enqueue at once: make it a no-op here
            ids = list(Transfer.objects.values_list("pk", flat=True))

            def one(pk: int) -> None:
                recorder.start_transfer()
                with connection.execute_wrapper(recorder.sql_wrapper):
                    pipeline.process(pk)
                connections.close_all()

            with ThreadPoolExecutor(args.threads) as pool:
                list(pool.map(one, ids))
                # Two orders of one new customer at once: the second waited for the first's customer (retrying, as
                # a worker would run it again 15 s later). Run those again now, as part of the work.
                # Each round makes at least one of a customer's orders; a customer of many orders takes as many.
                for _ in range(50):
                    again = list(Transfer.objects.filter(status="retrying").values_list("pk", flat=True))
                    if not again:
                        break
                    list(pool.map(one, again))

        from unittest import mock

        with mock.patch.object(Transfer, "enqueue", lambda *a, **k: None):
            ours_wall, ours_cpu = measure("ours", ours)
        done = Transfer.objects.filter(status="created").count()
        if done != args.orders:
            statuses = dict(
                Transfer.objects.values_list("status").annotate(n=__import__("django").db.models.Count("id"))
            )
            reasons = set(Transfer.objects.exclude(status="created").values_list("reason", flat=True)[:5])
            raise SystemExit(f"only {done} of {args.orders} orders were created: {statuses}; {reasons}")

        # Same starting point for the skeleton: a fresh sandbox with the same orders, empty transfer tables.
        control(base, "reset")
        make_orders(base, args.orders)
        with connection.cursor() as cursor:
            # Empty every table ours inserted into (transfers, states, mappings, the month's usage, its trial
            # subscription, the day's counts); RESTART IDENTITY: the replayed inserts get the ids the replayed
            # updates and references expect.
            inserted = {
                match.group(1)
                for kind, item in [*recorder.sync, *(step for steps in recorder.transfers for step in steps)]
                if kind == "sql" and (match := re.match(r'\s*INSERT INTO "?(\w+)"?', item[0], re.IGNORECASE))
            }
            cursor.execute(f"TRUNCATE {', '.join(sorted(inserted))} RESTART IDENTITY")
        import requests

        sessions = threading.local()

        def replay(steps: list[tuple]) -> None:
            if not hasattr(sessions, "session"):
                sessions.session = requests.Session()
            for kind, item in steps:
                if kind == "http":
                    method, url, headers, params, body = item
                    sessions.session.request(method, url, headers=headers, params=params, json=body, timeout=30)
                else:
                    with connection.cursor() as cursor, suppress(IntegrityError):
                        # Ours' get_or_create races (the month's usage row) failed the same way: skip as it did.
                        cursor.execute(*item)

        def skeleton() -> None:
            replay(recorder.sync)  # the fetch and the transfers' rows, in order: later writes refer to them

            def one(steps: list[tuple]) -> None:
                replay(steps)
                connections.close_all()

            with ThreadPoolExecutor(args.threads) as pool:
                list(pool.map(one, recorder.transfers))

        skeleton_wall, skeleton_cpu = measure("skeleton", skeleton)
    finally:
        sandbox.terminate()
        sandbox.wait(timeout=10)

    n = args.orders
    print(
        f"{n} orders, {args.latency_ms} ms per API call, {args.threads} threads, "
        f"{recorder.count('http')} HTTP calls and {recorder.count('sql')} SQL writes in each"
    )
    print(f"{'':10} {'transfers/s':>12} {'CPU ms/transfer':>16}")
    print(f"{'IEX':10} {n / ours_wall:12.1f} {1000 * ours_cpu / n:16.2f}")
    print(f"{'skeleton':10} {n / skeleton_wall:12.1f} {1000 * skeleton_cpu / n:16.2f}")
    print(f"CPU per transfer, IEX / skeleton: {ours_cpu / skeleton_cpu:.2f}x (goal: at most 1.5x)")


if __name__ == "__main__":
    main()
