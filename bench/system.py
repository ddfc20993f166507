"""Benchmark: the whole system under one merchant's Black Friday, as an operator would try it before trusting it.

    .venv/bin/python bench/system.py [--integrations 50] [--quiet-rate 4] [--busy-rate 16] [--seconds 60]
                                     [--latency-ms 150] [--workers 3] [--concurrency 4]

The stack of bench/stack.py (PostgreSQL, Redis, gunicorn, Celery workers and beat as in production, the sandbox's
e-conomic answering after --latency-ms). 50 integrations, each a Shopify shop posting signed orders/create webhooks
shaped by the sandbox's order generator. Three phases of --seconds each, "20 minutes compressed into a few":

1. calm: the 49 quiet shops post --quiet-rate orders a second between them, the busy shop none;
2. Black Friday: the quiet shops go on, the busy shop posts --busy-rate a second (80 % of all webhooks);
3. after: the quiet shops go on while the backlog drains.

Measured: webhook latency (p50/p99), the time from a shop's change (its webhook) to the document saved in
e-conomic (p50/p95) for the busy shop and for the quiet ones in each phase, the queue depth over time, and that
every order ends in e-conomic exactly once. Goal: the quiet shops' p95 during Black Friday within 2x of calm.
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import sys
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.stack import Stack, make_integrations  # noqa: E402
from bench.webhooks import percentile  # noqa: E402
from connections.systems.shopify.webhooks import signature  # noqa: E402

PHASES = ("calm", "black friday", "after")


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--integrations", type=int, default=50)
    parser.add_argument("--quiet-rate", type=float, default=4.0, help="orders/s of all quiet shops together")
    parser.add_argument("--busy-rate", type=float, default=16.0, help="orders/s of the busy shop on Black Friday")
    parser.add_argument("--seconds", type=int, default=60, help="length of each phase")
    parser.add_argument("--latency-ms", type=int, default=150, help="e-conomic's answer time per API request")
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--dir", type=Path, default=ROOT / "var" / "bench-system")
    return parser.parse_args()


@dataclass
class Post:
    at: float  # seconds from the start
    shop: int
    phase: str
    order: dict
    sent: float = 0.0  # epoch
    latency_ms: float = 0.0
    status: int = 0


def schedule(args: argparse.Namespace) -> list[Post]:
    """Every webhook of the run, in time order: Poisson arrivals, busy shop 0 only in the second phase."""
    from sandbox.shopify import ShopifyState

    rng = random.Random(7)
    shop = ShopifyState(seed=7)  # one generator: order ids and names unique across the shops
    posts: list[Post] = []

    def arrivals(rate: float, start: float, end: float, shops: list[int]) -> None:
        t = start
        while (t := t + rng.expovariate(rate)) < end:
            posts.append(Post(t, rng.choice(shops), PHASES[int(t // args.seconds)], {}))

    arrivals(args.quiet_rate, 0, 3 * args.seconds, list(range(1, args.integrations)))
    arrivals(args.busy_rate, args.seconds, 2 * args.seconds, [0])
    posts.sort(key=lambda p: p.at)
    for post in posts:
        post.order = shop.create_order({"financial_status": "paid", "country": "DK"})
    return posts


def send(posts: list[Post], shops: list[dict], port: int, threads: int = 32) -> None:
    """Post each webhook at its time, on keep-alive connections, as the shops would."""
    start = time.monotonic()
    cursor = iter(posts)
    lock = threading.Lock()

    def run() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        while True:
            with lock:
                post = next(cursor, None)
            if post is None:
                return
            time.sleep(max(0.0, start + post.at - time.monotonic()))
            body = json.dumps(post.order).encode()
            shop = shops[post.shop]
            headers = {
                "Content-Type": "application/json",
                "X-Shopify-Topic": "orders/create",
                "X-Shopify-Event-Id": f"event-{post.order['id']}",
                "X-Shopify-Hmac-Sha256": signature(shop["secret"], body),
            }
            post.sent = time.time()
            t = time.perf_counter()
            try:
                conn.request("POST", shop["hook"], body, headers)
                response = conn.getresponse()
                response.read()
                post.status = response.status
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            post.latency_ms = 1000 * (time.perf_counter() - t)

    with ThreadPoolExecutor(threads) as pool:
        for sender in [pool.submit(run) for _ in range(threads)]:
            sender.result()


class Depth:
    """The queue depth every second: messages in Redis (intake, transfers) and work waiting in PostgreSQL."""

    def __init__(self, stack: Stack) -> None:
        import psycopg
        import redis

        self.redis = redis.Redis(port=stack.ports["redis"], db=0)
        self.db = psycopg.connect(stack.database_url, autocommit=True)
        self.samples: list[tuple[float, int, int, int, int]] = []
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        start = time.monotonic()
        while not self.stopped.wait(1.0):
            deliveries = self.count("SELECT count(*) FROM connections_delivery WHERE status = 'received'")
            transfers = self.count(
                "SELECT count(*) FROM transferlog_transfer WHERE status IN ('pending', 'retrying', 'running')"
            )
            queued = {
                name: sum(self.redis.llen(key) for key in self.redis.keys(f"{name}*"))
                for name in ("intake", "transfers")
            }
            self.samples.append(
                (time.monotonic() - start, queued["intake"], queued["transfers"], deliveries, transfers)
            )

    def count(self, sql: str) -> int:
        row = self.db.execute(sql).fetchone()
        return row[0] if row else 0

    def __enter__(self) -> Depth:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopped.set()
        self.thread.join()
        self.db.close()
        self.redis.close()

    def report(self, every: int = 10) -> None:
        print(f"queue depth, the most in each {every} s (Redis messages; rows waiting in PostgreSQL):")
        print("     s   intake  transfers   deliveries waiting   transfers open")
        windows: dict[int, list] = defaultdict(list)
        for sample in self.samples:
            windows[int(sample[0] // every)].append(sample)
        for window, samples in sorted(windows.items()):
            most = [max(s[i] for s in samples) for i in range(1, 5)]
            print(f"  {(window + 1) * every:4d}   {most[0]:6d}  {most[1]:9d}   {most[2]:18d}   {most[3]:14d}")


def main() -> None:
    args = parse()
    posts = schedule(args)
    stack = Stack(args.dir, workers=args.workers, concurrency=args.concurrency, sandbox_latency_ms=args.latency_ms)
    print(
        f"{args.integrations} integrations; {len(posts)} orders; phases of {args.seconds} s; "
        f"{args.workers} workers x {args.concurrency} processes; e-conomic answers in {args.latency_ms} ms"
    )
    with stack:
        stack.use_database()
        shops = make_integrations(args.integrations, stack.sandbox_url, stack.sandbox_url)
        from transferlog.models import Transfer

        with Depth(stack) as depth:
            send(posts, shops, stack.ports["web"])
            accepted = sum(1 for p in posts if p.status == 200)
            deadline = time.monotonic() + 900
            while Transfer.objects.filter(status__in=["pending", "retrying", "running"]).exists() or (
                Transfer.objects.count() < accepted
            ):
                if time.monotonic() > deadline:
                    print("GAVE UP waiting for every transfer to finish (15 minutes)")
                    break
                time.sleep(1)
        books = stack.sandbox("state")["economic"]
        done = {
            ref: (status, updated.timestamp())
            for ref, status, updated in Transfer.objects.values_list("source_ref", "status", "updated")
        }
    report(posts, done, books, depth, args)


def report(posts: list[Post], done: dict, books: dict, depth: Depth, args: argparse.Namespace) -> None:
    ok = [p for p in posts if p.status == 200]
    latencies = sorted(p.latency_ms for p in posts if p.status)
    print(
        f"webhooks: {len(posts)} posted, {len(ok)} answered 200; latency p50 {percentile(latencies, 50):.1f} ms, "
        f"p99 {percentile(latencies, 99):.1f} ms"
    )
    friday = sorted(p.latency_ms for p in posts if p.status and p.phase == "black friday")
    print(f"  on Black Friday: p99 {percentile(friday, 99):.1f} ms ({len(friday)} webhooks)")

    delays: dict[tuple[str, str], list[float]] = defaultdict(list)
    for p in ok:
        status, finished = done.get(str(p.order["id"]), ("missing", 0.0))
        if status == "created":
            delays[("busy" if p.shop == 0 else "quiet", p.phase)].append(1000 * (finished - p.sent))
    print("change to document in e-conomic (webhook sent -> transfer created), ms:")
    for who, phase in (("quiet", "calm"), ("quiet", "black friday"), ("busy", "black friday"), ("quiet", "after")):
        values = sorted(delays[(who, phase)])
        if values:
            print(
                f"  {who:5s} shops, {phase:12s}  p50 {percentile(values, 50):8.0f}  p95 {percentile(values, 95):8.0f}"
                f"  ({len(values)} orders)"
            )
    calm, friday_quiet = sorted(delays[("quiet", "calm")]), sorted(delays[("quiet", "black friday")])
    if calm and friday_quiet:
        ratio = percentile(friday_quiet, 95) / percentile(calm, 95)
        print(f"  quiet shops' p95 on Black Friday / calm: {ratio:.2f}x (goal: at most 2x)")
    depth.report()

    documents: dict[str, int] = defaultdict(int)
    for draft in books["drafts"]:
        documents[draft.get("references", {}).get("other", "")] += 1
    expected = {f"iex:{p.order['id']}" for p in ok}
    missing = expected - set(documents)
    twice = [ref for ref, n in documents.items() if n > 1]
    extra = set(documents) - expected
    statuses: dict[str, int] = defaultdict(int)
    for status, _ in done.values():
        statuses[status] += 1
    print(
        f"exactly once: {len(expected)} orders accepted, {len(documents)} documents in e-conomic; "
        f"missing {len(missing)}, twice {len(twice)}, unknown {len(extra)}: "
        f"{'EXACT' if not (missing or twice or extra) else 'WRONG'}; transfers by status {dict(statuses)}"
    )


if __name__ == "__main__":
    main()
