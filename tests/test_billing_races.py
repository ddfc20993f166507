"""Creates racing for the last units of the allowance, on PostgreSQL with real threads and localstripe.

The usage row's lock decides: fifty creates finding five units left buy one pack between them, never forty-five.
"""

import queue
import threading
import time

import pytest
from django.conf import settings
from django.db import connections

from billing import packs
from billing.models import Pack, Subscription, Usage
from billing.usage import reserve, settle
from tests.test_billing import card_on_file, order_transfer, use_up

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(
        settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql",
        reason="row locks (SELECT ... FOR UPDATE) are only real on PostgreSQL; set DATABASE_URL to run",
    ),
    pytest.mark.django_db(transaction=True),
]

# PostgreSQL allows 100 connections here: 200 creates run on 60 connections at once.
THREADS = 60


@pytest.fixture(scope="module")
def localstripe():
    """A localstripe of its own: the session's holds everything earlier tests made (this module counts Stripe's
    payment intents, and its 60 threads want one that answers them at once)."""
    from tests.conftest import running_localstripe

    with running_localstripe() as url:
        yield url


def create_at_once(transfers) -> list[str]:
    """Each transfer reserves a unit and, as if the accounting system confirmed, uses it; all starting together."""
    work: queue.Queue = queue.Queue()
    for transfer in transfers:
        work.put(transfer)
    threads = min(THREADS, len(transfers))
    barrier = threading.Barrier(threads)
    outcomes: list[str] = []

    def run():
        try:
            barrier.wait()
            while True:
                try:
                    transfer = work.get_nowait()
                except queue.Empty:
                    return
                while True:
                    try:
                        held = reserve(transfer)
                        break
                    except packs.PackInFlight:
                        time.sleep(0.02)  # the pipeline retries in a few seconds
                if not held:
                    settle(transfer, created=True)
                outcomes.append(held)
        finally:
            connections.close_all()

    pool = [threading.Thread(target=run) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(timeout=120)
    return outcomes


@pytest.mark.parametrize(("creates", "packs"), [(50, 1), (200, 2)])
def test_creates_racing_for_the_last_units_buy_exactly_the_packs_needed(
    personas, connected, stripe, creates, packs
):
    card_on_file(personas)
    use_up(personas.integration, used=95, included=100)
    transfers = [order_transfer(connected, n) for n in range(creates)]

    outcomes = create_at_once(transfers)

    assert outcomes == [""] * creates  # nobody held
    usage = Usage.objects.get()
    assert (usage.used, usage.reserved) == (95 + creates, 0)  # each create counted once, no unit handed out twice
    assert Pack.objects.filter(status="paid").count() == packs
    assert usage.bought == 100 * packs
    customer = Subscription.of(personas.integration).stripe_customer
    intents = [i for i in stripe.v1.payment_intents.list(params={"limit": 100}).data if i.customer == customer]
    assert len(intents) == packs
