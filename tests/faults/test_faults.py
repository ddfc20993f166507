"""Faults during load: a worker killed, Redis restarted, PostgreSQL restarted, e-conomic unreachable, Stripe
unreachable while an order pack is due. After each: nothing lost (every accepted webhook ends transferred), nothing
duplicated (one transfer and one e-conomic document per order), the service answers again by itself, and Home and
the Log tell the merchant what happened."""

from __future__ import annotations

import os
import shutil
import time

import pytest

from bench.stack import PG_BIN, Stack, wait_for
from tests.faults.harness import Books, Shops, healthy

pytestmark = pytest.mark.skipif(
    not (PG_BIN / "initdb").exists() or not shutil.which("redis-server"),
    reason="the fault stack runs a PostgreSQL cluster and a Redis of its own",
)


def under_load(stack: Stack, shops: list[dict], fault, before: float = 3, after: float = 4) -> Shops:
    """Three shops post 4 orders a second; the fault strikes after `before` seconds; they go on `after` it."""
    with Shops(stack, shops[:3]) as load:
        time.sleep(before)
        fault()
        time.sleep(after)
    return load


def told(merchant, books: Books, shop: dict, accepted: list[str]) -> None:
    """Home counts today's documents, the Log lists the latest order."""
    created = books.query(
        "SELECT count(*) FROM transferlog_transfer WHERE integration_id = %s AND status = 'created' "
        "AND (updated AT TIME ZONE 'UTC')::date = (now() AT TIME ZONE 'UTC')::date",
        shop["id"],
    )[0][0]
    owner = merchant(shop)
    assert owner.home_says_created_today(created)
    (reference,) = books.query(
        "SELECT reference FROM transferlog_transfer WHERE integration_id = %s ORDER BY created DESC LIMIT 1",
        shop["id"],
    )[0]
    assert reference in owner.page("log/")


def test_a_worker_killed_mid_transfer(stack, shops, books, merchant):
    stack.sandbox("config", {"latency_ms": 150})  # a transfer takes about a second: some are always in flight
    worker = stack.workers[0]
    killed: list[str] = []

    def kill() -> None:
        def in_flight_here():
            running = books.query("SELECT source_ref, task_id FROM transferlog_transfer WHERE status = 'running'")
            output = worker.output()
            return [ref for ref, task in running if task and task in output]

        in_flight = wait_for(in_flight_here, 30, "a transfer in flight on worker 1")
        worker.kill()  # the whole host: pool and main process, no time to clean up
        # Those still running now were cut off mid-transfer (one may have finished just before the kill).
        killed.extend(
            ref
            for (ref,) in books.query(
                "SELECT source_ref FROM transferlog_transfer WHERE status = 'running' AND source_ref = ANY(%s)",
                in_flight,
            )
        )
        time.sleep(2)
        worker.start()  # as its supervisor would

    try:
        load = under_load(stack, shops, kill)
    finally:
        stack.sandbox("config", {"latency_ms": 0})
    books.exactly_once(load.accepted)
    attempts = dict(
        books.query("SELECT source_ref, attempts FROM transferlog_transfer WHERE source_ref = ANY(%s)", killed)
    )
    assert killed and set(attempts.values()) == {2}, attempts  # run again after its lease, and created once
    notes = books.query(
        "SELECT note FROM transferlog_transferstate s JOIN transferlog_transfer t ON t.id = s.transfer_id "
        "WHERE t.source_ref = %s AND s.kind = 'retrying'",
        killed[0],
    )
    assert notes == [("Its worker stopped answering; run again",)]
    assert healthy(stack)
    for shop in shops[:3]:
        told(merchant, books, shop, load.accepted)


def test_redis_restarted_with_everything_it_held_lost(stack, shops, books, merchant):
    redis = stack.services["redis"]

    def restart() -> None:
        redis.kill()  # no persistence: queued messages, queued drains and the cache are gone
        time.sleep(3)
        redis.start()

    load = under_load(stack, shops, restart)
    assert load.refused == {}, "every webhook is answered at once, Redis or not"
    books.exactly_once(load.accepted)
    assert healthy(stack)
    told(merchant, books, shops[0], load.accepted)


def test_postgresql_restarted(stack, shops, books, merchant):
    postgres = stack.services["postgres"]

    def restart() -> None:
        postgres.stop()  # a fast shutdown: open connections are cut
        time.sleep(3)
        postgres.start()

    load = under_load(stack, shops, restart)
    assert load.refused, "while the database was down, webhooks were refused and the shops posted them again"
    books.exactly_once(load.accepted)
    assert healthy(stack)
    told(merchant, books, shops[1], load.accepted)


def test_the_accounting_system_unreachable(stack, shops, books, merchant):
    """However long the outage (OUTAGE_SECONDS; 10 here, 120 and longer by hand), the orders that arrive during it
    wait at e-conomic's shut gate without spending their attempts, and are all made once when it answers."""
    cable = stack.cables["economic"]
    outage_seconds = float(os.environ.get("OUTAGE_SECONDS", "10"))

    def outage() -> None:
        cable.unplug()
        time.sleep(outage_seconds)
        cable.plug()

    load = under_load(stack, shops, outage, after=2)
    books.exactly_once(load.accepted, timeout=120 + outage_seconds)
    waited = books.query(
        "SELECT t.integration_id, t.code FROM transferlog_transfer t JOIN transferlog_transferstate s "
        "ON s.transfer_id = t.id WHERE t.source_ref = ANY(%s) AND s.note LIKE %s LIMIT 1",
        load.accepted,
        "e-conomic has not answered since%",
    )
    assert waited, "orders that arrived during the outage waited for e-conomic"
    spent = books.query(
        "SELECT max(attempts) FROM transferlog_transfer WHERE source_ref = ANY(%s)", load.accepted
    )[0][0]
    assert spent <= 3, f"an order spent {spent} attempts on the outage"
    integration_id, code = waited[0]
    shop = next(s for s in shops if s["id"] == integration_id)
    fold_out = merchant(shop).fold_out(str(code))
    assert "has not answered since" in fold_out  # one state for the wait, however many times it was tried
    told(merchant, books, shop, load.accepted)


def test_stripe_unreachable_while_an_order_pack_is_due(stack, shops, books, merchant):
    shop = shops[3]
    stack.python("tests.faults.inside:pack_due", shop["id"])
    cable = stack.cables["stripe"]
    cable.unplug()
    try:
        with Shops(stack, [shop], rate=1) as load:
            time.sleep(3)

        def waiting():
            rows = books.query(
                "SELECT status, reason FROM transferlog_transfer WHERE source_ref = ANY(%s)", load.accepted
            )
            return len(rows) == len(load.accepted) and all(status == "retrying" for status, _ in rows) and rows

        rows = wait_for(waiting, 30, "the orders to wait for a pack")
        assert {reason for _, reason in rows} <= {
            "Stripe could not be reached to buy an order pack",
            "Waiting for an order pack being paid",
        }
        assert stack.python("tests.faults.inside:packs", shop["id"]) == {"pending": 1}
    finally:
        cable.plug()
    books.exactly_once(load.accepted)
    assert stack.python("tests.faults.inside:packs", shop["id"]) == {"paid": 1}  # one pack, bought once
    (code,) = books.query(
        "SELECT code FROM transferlog_transfer WHERE source_ref = ANY(%s) ORDER BY created LIMIT 1", load.accepted
    )[0]
    assert "Stripe could not be reached to buy an order pack" in merchant(shop).fold_out(str(code))
    told(merchant, books, shop, load.accepted)
