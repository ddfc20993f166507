"""Benchmark: Home with 2 million transfers in the integration, next to Home with ten.

    .venv/bin/python bench/home.py [--big 2000000]

On a fresh PostgreSQL database (BENCH_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/iex_bench_home),
seeds `--big` transfers in one integration (bench/log.py's seeding: one order every 5 seconds back from now, 5 %
failed, 10 % skipped), counts them into the per-day counters the way the migration does for existing data, and
makes a second integration with ten transfers. Then times Home in this process (median of 7, server time: the
Django view without network) for both. Goal: under 50 ms with 2 million; the ratio shows it costs the same.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--big", type=int, default=2_000_000)
    args = parser.parse_args()
    from bench.common import fresh_database
    from bench.webhooks import environment

    env = environment()
    env["DATABASE_URL"] = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/iex_bench_home")
    env["DJANGO_SETTINGS_MODULE"] = "iex.settings"
    fresh_database(env)
    from django.apps import apps
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client

    from bench.log import seed, timed
    from iex.models import Integration
    from transferlog.models import DailyCount, Transfer

    call_command("collectstatic", "--no-input", verbosity=0)  # DEBUG is off: pages need the static manifest
    big, _ = seed(argparse.Namespace(rows=args.big, big=args.big))
    started = time.perf_counter()
    importlib.import_module("transferlog.migrations.0009_daily_counts").count_existing(apps, None)
    print(
        f"counted {args.big:,} transfers into {DailyCount.objects.count():,} per-day rows in "
        f"{time.perf_counter() - started:.0f} s"
    )
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")  # as a live database would be: no autovacuum racing the timings
    small = Integration.create_for(User.objects.get(username="bench"), "Small shop")
    for n in range(10):
        transfer = Transfer.objects.create(
            integration=small, connection_label="Shopify > e-conomic: orders", entity="orders", source_ref=str(n)
        )
        transfer.finish("failed" if n == 0 else "created", "e-conomic answered 503" if n == 0 else "")

    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(User.objects.get(username="bench"))
    with_big = timed(client, f"/i/{big.number}/")
    with_small = timed(client, f"/i/{small.number}/")
    print("Home, server time, median of 7:")
    print(f"  {args.big:>9,} transfers  {with_big:6.1f} ms {'' if with_big < 50 else '(over 50 ms)'}")
    print(f"  {10:>9,} transfers  {with_small:6.1f} ms")
    print(f"ratio {with_big / with_small:.2f}x; goal: under 50 ms with {args.big:,}: {with_big < 50}")


if __name__ == "__main__":
    main()
