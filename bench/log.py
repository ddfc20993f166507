"""Benchmark: the Log at millions of rows, and a purge next to webhook intake.

    .venv/bin/python bench/log.py [--rows 5000000] [--big 2000000]

On a fresh PostgreSQL database (BENCH_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/iex_bench_log),
seeds `--rows` transfers with generate_series, `--big` of them in one integration (the rest spread over 300
others), then times the Log view in this process (median of 7 runs, server time: the Django view without network):
page 1, a page 1,000,000 rows deep (keyset), each filter, each kind of search (an order number with and without its
"#", the start of one, the shop's id, the document's number, a customer's name, last name and email), a fold-out.
Goals: the deep page within 1.5x of page 1, every one under 50 ms. Then what the search's indexes cost: their size
per transfer, and the customers' words in the table.

Then `manage.py purge_transfers` deletes 1,000,000 expired rows in its own process while a client posts webhooks
to a gunicorn intake at a steady rate; the purge rests 5 seconds in every 20, and intake's p95 in the
windows with it is compared with the windows without it (goal: within 1.2x).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


# While intake is measured the purge rests and runs in turns of these lengths (seconds).
PAUSED, RUNNING = 5, 15
# Customers: each shop's orders come from a pool of customers who come back (a customer's number is c), named from
# these; a common last name is on one order in twelve, as Hansen is in Denmark.
FIRST = ["Anne", "Mette", "Kirsten", "Hanne", "Helle", "Susanne", "Lene", "Maria", "Marianne", "Lone", "Camilla",
         "Pia", "Louise", "Charlotte", "Jane", "Peter", "Michael", "Lars", "Thomas", "Henrik", "Søren", "Jens", "Martin",
         "Jan", "Morten", "Anders", "Niels", "Rasmus", "Christian", "Mads"]  # fmt: skip
LAST = ["Hansen", "Nielsen", "Jensen", "Pedersen", "Andersen", "Christensen", "Larsen", "Sørensen", "Rasmussen",
        "Jørgensen", "Petersen", "Madsen", "Kristensen", "Olsen", "Thomsen", "Christiansen", "Poulsen", "Johansen",
        "Møller", "Mortensen", "Østergaard-Lund", "Frederiksen", "Lauridsen", "Holm", "Schmidt"]  # fmt: skip
CUSTOMER = """(%(first)s::text[])[1 + c %% {first}] || ' ' || (%(last)s::text[])[1 + (c / {first}) %% {last}]"""
# The search's indexes (the order number's, the shop's id's were there before it).
SEARCH_INDEXES = (
    "transfer_reference",
    "transfer_source_id",
    "transfer_target_id",
    "transfer_search_email",
    "transfer_search_terms",
)
EMAIL = """translate(lower({name}), ' øæå', '.oea') || c || '@example.com'"""


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--big", type=int, default=2_000_000)
    parser.add_argument("--purge", type=int, default=1_000_000, help="rows to purge beside intake (0: skip)")
    return parser.parse_args()


def seed(args: argparse.Namespace) -> tuple:
    from django.contrib.auth.models import User
    from django.db import connection

    from connections.models import Connection, Module
    from iex.models import Integration
    from transferlog.models import Transfer

    owner = User.objects.create_user("bench", "bench@iex.local", "x")
    big = Integration.create_for(owner, "Big shop")
    for kind in ("shopify", "economic"):
        Module.objects.create(integration=big, kind=kind)
    Connection.ensure_for(big)
    orders = big.connections.get(flow="orders")
    neighbour = User.objects.create_user("neighbour", "neighbour@iex.local", "x")
    others = [Integration.create_for(neighbour, f"Shop {n}") for n in range(300)]
    started = time.perf_counter()
    with connection.cursor() as cursor:
        # Index maintenance during a bulk load is the slow part: drop the secondary ones, load, build them again.
        cursor.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'transferlog_transfer' "
            "AND indexname NOT LIKE '%pkey' AND indexname NOT LIKE '%code%key'"
        )
        indexes = cursor.fetchall()
        for name, _ in indexes:
            cursor.execute(f'DROP INDEX IF EXISTS "{name}"')
        name = CUSTOMER.format(first=len(FIRST), last=len(LAST))
        customer = {"first": FIRST, "last": LAST}
        # The big integration: one order every 5 seconds back from now, from 400,000 customers; 5 % failed, 10 %
        # skipped; each one created made invoice 20000 + n.
        cursor.execute(
            f"""
            INSERT INTO transferlog_transfer (code, integration_id, connection_id, connection_label, entity, source_ref,
                reference, source_updated_at, status, reason, action, target_ref, attempts, attempts_before_retry,
                task_id, created, updated, due_at, source_data, search_terms, search_email)
            SELECT gen_random_uuid(), %(big)s, %(orders)s, 'Shopify > e-conomic: orders', 'orders',
                (5500000000000 + n)::text, '#' || (1000 + n), now() - n * interval '5 seconds', status,
                CASE WHEN status = 'failed' THEN 'e-conomic answered 503' ELSE '' END, 'created',
                CASE WHEN status = 'created' THEN (20000 + n)::text ELSE '' END, 1, 0, '',
                now() - n * interval '5 seconds', now() - n * interval '5 seconds', now() - n * interval '5 seconds',
                jsonb_build_object('id', 5500000000000 + n, 'name', '#' || (1000 + n), 'total_price', '199.00',
                    'email', email),
                lower({name}), email
            FROM (
                SELECT n, c, {EMAIL.format(name=name)} AS email,
                    CASE WHEN n %% 20 = 0 THEN 'failed' WHEN n %% 10 = 1 THEN 'skipped' ELSE 'created' END AS status
                FROM generate_series(1, %(rows)s) AS n, LATERAL (SELECT (n::bigint * 7919) %% 400000 AS c) AS customers
            ) AS orders
            """,  # noqa: S608 (the names' SQL is this module's)
            {"big": big.pk, "orders": orders.pk, "rows": args.big, **customer},
        )
        ids = [o.pk for o in others]
        cursor.execute(
            f"""
            INSERT INTO transferlog_transfer (code, integration_id, connection_id, connection_label, entity, source_ref,
                reference, source_updated_at, status, reason, action, target_ref, attempts, attempts_before_retry,
                task_id, created, updated, due_at, source_data, search_terms, search_email)
            SELECT gen_random_uuid(), (%(ids)s::bigint[])[1 + n %% %(shops)s], NULL, 'Shopify > e-conomic: orders',
                'orders', n::text, '#' || n, NULL, 'created', '', 'created', n::text, 1, 0, '',
                now() - (n %% 1000000) * interval '8 seconds', now(), now(), NULL,
                lower({name}), {EMAIL.format(name=name)}
            FROM generate_series(1, %(rows)s) AS n, LATERAL (SELECT n %% 1000000 AS c) AS customers
            """,  # noqa: S608
            {"ids": ids, "shops": len(ids), "rows": args.rows - args.big, **customer},
        )
        built = []
        for index, definition in indexes:
            began = time.perf_counter()
            cursor.execute(definition)
            built.append(f"{index} {time.perf_counter() - began:.0f} s")
        cursor.execute("ANALYZE transferlog_transfer")
    print(
        f"seeded {Transfer.objects.count():,} transfers ({args.big:,} in one integration) in "
        f"{time.perf_counter() - started:.0f} s; indexes built in: {', '.join(built)}"
    )
    return big, orders


def search_costs(rows: int) -> None:
    """What the search adds to every transfer: each of its indexes' size, and the customers' words in the row."""
    from django.db import connection

    with connection.cursor() as cursor:
        for index in SEARCH_INDEXES:
            cursor.execute("SELECT pg_relation_size(%s)", [index])
            (size,) = cursor.fetchone()
            print(f"  index {index:24} {size / 2**20:7.0f} MiB {size / rows:5.1f} bytes per transfer")
        cursor.execute(
            "SELECT avg(pg_column_size(search_terms) + pg_column_size(search_email)) FROM transferlog_transfer"
        )
        (words,) = cursor.fetchone()
        cursor.execute("SELECT pg_table_size('transferlog_transfer')")
        (table,) = cursor.fetchone()
        print(
            f"  search_terms and search_email in the table: {words:.1f} bytes per transfer, of {table / rows:.0f} (all columns, "
            f"{table / 2**30:.2f} GiB)"
        )


def timed(client, url: str, runs: int = 7) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        response = client.get(url, HTTP_HX_REQUEST="true" if "/log/" in url and url.count("/") > 5 else "")
        times.append(1000 * (time.perf_counter() - started))
        assert response.status_code == 200, (url, response.status_code)
    return statistics.median(times)


def main() -> None:
    args = parse()
    from bench.webhooks import environment

    env = environment()
    env["DATABASE_URL"] = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/iex_bench_log")
    env["DJANGO_SETTINGS_MODULE"] = "iex.settings"
    from bench.common import fresh_database

    fresh_database(env)
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client

    call_command("collectstatic", "--no-input", verbosity=0)  # DEBUG is off: pages need the static manifest
    big, orders = seed(args)
    from django.contrib.auth.models import User

    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(User.objects.get(username="bench"))
    base = f"/i/{big.number}/log/"
    deep = min(1_000_000, args.big // 2)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT created, id FROM transferlog_transfer WHERE integration_id = %s "
            "ORDER BY created DESC, id DESC OFFSET %s LIMIT 1",
            [big.pk, deep],
        )
        created, pk = cursor.fetchone()
        cursor.execute(
            "SELECT code FROM transferlog_transfer WHERE integration_id = %s AND reference = '#1042'", [big.pk]
        )
        (code,) = cursor.fetchone()
        cursor.execute(
            "SELECT search_terms, search_email FROM transferlog_transfer WHERE integration_id = %s "
            "AND reference = '#5042'",
            [big.pk],
        )
        full_name, email = cursor.fetchone()
    day = (created.date()).isoformat()
    from urllib.parse import quote

    cases = [
        ("page 1", base),
        (f"page {deep:,} rows deep", f"{base}?before={quote(created.isoformat())}_{pk}"),
        ("filter: status failed", f"{base}?status=failed"),
        ("filter: connection", f"{base}?connection={orders.code}"),
        ("filter: entity", f"{base}?entity=orders"),
        ("filter: one day", f"{base}?from={day}&to={day}"),
        ("search: #1042 (exact)", f"{base}?q=%231042"),
        ("search: #10423 (prefix)", f"{base}?q=%2310423"),
        ("search: 1042 (without #)", f"{base}?q=1042"),
        ("search: 104 (prefix)", f"{base}?q=104"),
        ("search: 10 (prefix)", f"{base}?q=10"),
        ("search: shop's order id", f"{base}?q=5500000004242"),
        ("search: document number", f"{base}?q=24242"),
        ("search: customer's name", f"{base}?q={quote(full_name.title())}"),
        ("search: a last name", f"{base}?q=Hansen"),
        ("search: customer's email", f"{base}?q={quote(email)}"),
        ("search: start of an email", f"{base}?q={quote(email[:12])}"),
        ("fold-out", f"{base}{code}/"),
    ]
    results = {name: timed(client, url) for name, url in cases}
    print("server time, median of 7:")
    for name, ms in results.items():
        print(f"  {name:32} {ms:7.1f} ms {'' if ms < 50 else '(over 50 ms)'}")
    ratio = results[f"page {deep:,} rows deep"] / results["page 1"]
    print(
        f"deep page / page 1: {ratio:.2f}x (goal: at most 1.5x); all under 50 ms: "
        f"{all(ms < 50 for ms in results.values())}"
    )
    print("what the search costs, at this size:")
    search_costs(args.rows)
    if args.purge:
        purge_during_intake(env, big, args.purge)


def purge_during_intake(env: dict, big, rows: int) -> None:
    """Intake's p95 at a steady rate while `manage.py purge_transfers` deletes `rows` expired transfers in its own
    process, side by side: the purge is paused (SIGSTOP) for PAUSED seconds and resumed (SIGCONT) for RUNNING, so the
    windows without it and with it alternate under the same conditions until it is done."""
    import signal
    import subprocess

    from django.db import connection

    from bench.webhooks import free_port, paced, start_gunicorn
    from connections.models import Module

    shop = Module.objects.get(integration=big, kind="shopify")
    shop.set_credentials(
        {"shop_domain": "b.myshopify.com", "access_token": "x", "webhook_secret": "bench-webhook-secret"}
    )
    shop.save()
    with connection.cursor() as cursor:  # make the oldest `rows` transfers of the big integration expired
        cursor.execute(
            "UPDATE transferlog_transfer SET created = created - interval '400 days', status = 'created' "
            "WHERE id IN (SELECT id FROM transferlog_transfer WHERE integration_id = %s "
            "ORDER BY created LIMIT %s)",
            [big.pk, rows],
        )
        cursor.execute("VACUUM ANALYZE transferlog_transfer")
    port = free_port()
    server = start_gunicorn({**env, "DJANGO_SETTINGS_MODULE": "bench.settings"}, port)
    hook = f"/hooks/{shop.webhook_token}/"
    purger = None
    try:
        paced(port, hook, 100, 3)  # warm-up, not counted: fresh workers, first connections
        started = time.perf_counter()
        purger = subprocess.Popen(
            [sys.executable, "manage.py", "purge_transfers"], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True
        )
        without: list[float] = []
        during: list[float] = []
        while purger.poll() is None:
            purger.send_signal(signal.SIGSTOP)
            without += paced(port, hook, 100, PAUSED)
            purger.send_signal(signal.SIGCONT)
            during += paced(port, hook, 100, RUNNING)
        seconds = time.perf_counter() - started
        summary = (purger.stdout.read() if purger.stdout else "").strip()
        p95 = lambda values: sorted(values)[int(0.95 * len(values))]  # noqa: E731
        print(f"{summary}\n  in {seconds:.0f} s, a quarter of it paused")
        print(
            f"intake p95 at 100 req/s: {p95(without):.1f} ms in the windows without the purge ({len(without)} "
            f"requests), {p95(during):.1f} ms in the windows with it ({len(during)}): "
            f"{p95(during) / p95(without):.2f}x (goal: at most 1.2x)"
        )
    finally:
        if purger and purger.poll() is None:
            purger.send_signal(signal.SIGCONT)
            purger.kill()
        os.killpg(server.pid, signal.SIGTERM)


if __name__ == "__main__":
    main()
