"""The gate in front of each system account (connections/gate.py): a rate budget every worker keeps to, a 429 that
pauses the account for everyone, and a circuit that makes transfers wait, without spending attempts, while an
account does not answer, and lets them go when it answers again. Against the sandbox over real HTTP; on Redis when
REDIS_URL is set (CI), else the in-process gate of the embedded defaults."""

import dataclasses
import itertools
import time
from datetime import UTC, datetime, timedelta

import pytest
from django.core import mail
from django.utils import timezone

from connections import gate, pipeline
from connections.models import Connection, Module
from connections.systems import SYSTEMS, Budget, Wait
from dashboard.notifications import send_error_digests
from tests.test_accounting import Dinero, Economic, connect, run_pending
from tests.test_webshops import Shopify
from transferlog.models import Transfer

pytestmark = pytest.mark.django_db


@pytest.fixture
def books(sandbox, personas):
    shop = Shopify(sandbox)
    _, target = connect(personas.integration, sandbox, shop, Economic(sandbox))
    return shop, target


def budget(monkeypatch, kind, calls, seconds):
    monkeypatch.setitem(SYSTEMS, kind, dataclasses.replace(SYSTEMS[kind], budget=Budget(calls, seconds)))


def test_a_budget_is_kept_waiting_briefly_in_place_else_the_caller_waits(books, monkeypatch):
    budget(monkeypatch, "economic", 3, 1.0)
    account = Module.objects.get(kind="economic").gate
    monkeypatch.setattr(gate, "WAIT_IN_PLACE", 2.0)
    started = time.monotonic()
    for _ in range(4):  # the fourth waits in place for the first to leave the window
        account.before()
    assert 0.5 < time.monotonic() - started < 1.6
    monkeypatch.setattr(gate, "WAIT_IN_PLACE", 0.0)
    account.before()
    account.before()  # the window full again
    with pytest.raises(Wait, match="rate budget") as waited:
        account.before()
    assert 0 < waited.value.delay <= 1.01
    # The next ones to find no room wait in line: their turns a batch's share of the window apart (1 call of 3 in
    # 1 s here), not all at the moment the first call leaves the window.
    turns = []
    for _ in range(3):
        with pytest.raises(Wait) as waited:
            account.before()
        turns.append(waited.value.delay)
    assert [round(later - earlier, 1) for earlier, later in itertools.pairwise(turns)] == [0.3, 0.3]


def test_a_429_pauses_the_account_for_every_caller(books):
    first, second = (Module.objects.get(kind="economic").gate for _ in range(2))  # two workers' views of it
    with pytest.raises(Wait, match="slow down") as waited:
        first.after(429, 5.0)
    assert waited.value.delay == 5.0
    with pytest.raises(Wait), gate.patient(0.0):
        second.before()


def test_an_account_that_stops_answering_shuts_its_gate_until_a_probe_gets_an_answer(books, monkeypatch):
    module = Module.objects.get(kind="economic")
    account = module.gate
    for _ in range(gate.FAILURES - 1):
        account.after(None, None)  # no answer: counted, not yet shut
    with pytest.raises(Wait, match="e-conomic has not answered since") as waited:
        account.after(503, None)
    assert waited.value.delay == gate.PROBE_SECONDS
    module.refresh_from_db()
    assert module.unreachable_since is not None
    other = Module.objects.get(kind="economic").gate
    other.before()  # the one probe
    with pytest.raises(Wait, match="has not answered"):
        Module.objects.get(kind="economic").gate.before()  # everyone else waits
    other.after(200, None)  # it answers again
    Module.objects.get(kind="economic").gate.before()
    module.refresh_from_db()
    assert module.unreachable_since is None


def test_an_outage_spends_no_attempts_and_every_order_is_made_once_when_it_answers(
    books, sandbox, monkeypatch, client, personas
):
    shop, _ = books
    monkeypatch.setattr(gate, "PROBE_SECONDS", 0.2)
    orders = [shop.order(**shop.of([(shop.stocked, 1)])) for _ in range(8)]
    sandbox.configure({"faults": [{"path_contains": "/economic/", "status": 503, "times": 10_000}]})
    pipeline.sync(Connection.objects.get(flow="orders"), datetime.now(UTC) - timedelta(minutes=5))
    for _ in range(10):  # the outage, as long as ten attempts each: workers run them again and again
        for transfer in Transfer.objects.exclude(status="created"):
            pipeline.process(transfer.pk)
        time.sleep(0.05)
    waiting = list(Transfer.objects.all())
    assert {t.status for t in waiting} == {"retrying"}
    assert all(t.attempts <= 1 for t in waiting)  # none spent beyond the calls that found the outage
    assert all("e-conomic has not answered since" in t.reason for t in waiting), {t.reason for t in waiting}
    assert Module.objects.get(kind="economic").unreachable_since is not None
    client.force_login(personas.owner)
    home = client.get(f"/i/{personas.integration.number}/").content.decode()
    assert "e-conomic has not answered since" in home and "8 transfers waiting for it" in home
    assert send_error_digests(timezone.now() + timedelta(minutes=2)) == 1  # the owners are told once
    assert "e-conomic has not answered since" in mail.outbox[-1].body
    assert send_error_digests(timezone.now() + timedelta(minutes=30)) == 0

    sandbox.configure({"faults": []})
    time.sleep(0.25)
    for _ in range(3):
        for transfer in Transfer.objects.exclude(status="created"):
            pipeline.process(transfer.pk)
        time.sleep(0.25)
    assert {t.status for t in Transfer.objects.all()} == {"created"}
    assert len(sandbox.summary()["economic"]["drafts"]) == len(orders)
    assert Module.objects.get(kind="economic").unreachable_since is None


def test_a_burst_to_one_dinero_organisation_keeps_to_its_limit_and_no_429_fails_an_order(
    sandbox, personas, monkeypatch
):
    shop = Shopify(sandbox)
    connect(personas.integration, sandbox, shop, Dinero(sandbox))
    sandbox.configure({"dinero_rate_limit": 12, "dinero_rate_window": 2})  # Dinero's 100 a minute, sped up
    budget(monkeypatch, "dinero", 11, 2.0)
    monkeypatch.setattr(gate, "WAIT_IN_PLACE", 5.0)  # wait in place: the test has no worker to come back
    for _ in range(8):
        shop.order(**shop.of([(shop.stocked, 1)]))
    pipeline.sync(Connection.objects.get(flow="orders"), datetime.now(UTC) - timedelta(minutes=5))
    run_pending()
    assert {t.status for t in Transfer.objects.all()} == {"created"}
    assert sandbox.summary()["dinero"]["refused_429"] == 0


def test_a_429_makes_the_order_wait_without_spending_an_attempt(sandbox, personas):
    shop = Shopify(sandbox)
    connect(personas.integration, sandbox, shop, Dinero(sandbox))
    sandbox.configure({"dinero_rate_limit": 2, "dinero_rate_window": 60})  # less than the budget IEX keeps to
    shop.order()
    pipeline.sync(Connection.objects.get(flow="orders"), datetime.now(UTC) - timedelta(minutes=5))
    run_pending()
    (transfer,) = Transfer.objects.all()
    assert (transfer.status, transfer.attempts) == ("retrying", 0), transfer.reason
    assert "asked IEX to slow down (429)" in transfer.reason


def test_an_account_that_refuses_request_after_request_is_no_longer_called(sandbox, personas, monkeypatch):
    """Systems take access away from an app that goes on sending what they refuse: after REFUSALS refused requests
    IEX stops calling the account, holds its transfers with their data, says so on Home and by email, and lets them
    go when the merchant has fixed the cause and a test of the connection succeeds."""
    monkeypatch.setattr(gate, "REFUSALS", 3)
    shop = Shopify(sandbox)
    _, books = connect(personas.integration, sandbox, shop, Dinero(sandbox))
    Module.objects.filter(pk=books.pk).update(settings={"language": "fr-FR"})  # Dinero refuses every invoice: 400
    orders = [shop.order() for _ in range(5)]
    pipeline.sync(Connection.objects.get(flow="orders"), datetime.now(UTC) - timedelta(minutes=5))
    transfers = [Transfer.objects.get(source_ref=str(order["id"])) for order in orders]
    calls = []
    for transfer in transfers:
        pipeline.process(transfer.pk)
        calls.append(sandbox.summary()["dinero"]["calls"]["123456"])
    transfers = [Transfer.objects.get(pk=t.pk) for t in transfers]
    assert [t.status for t in transfers] == ["failed"] * 3 + ["held"] * 2
    assert "Language" in transfers[0].reason
    assert transfers[3].reason.startswith("Waiting until Dinero lets IEX in again: IEX stopped calling Dinero")
    assert calls[2] == calls[3] == calls[4]  # Dinero was not called for them
    owner = personas.client(personas.owner)
    number = personas.integration.number
    home = owner.get(f"/i/{number}/").content.decode()
    assert "Nothing moves to or from Dinero" in home and "2 transfers wait for it" in home
    assert send_error_digests(timezone.now() + timedelta(minutes=2)) == 1
    assert "IEX stopped calling Dinero: it refused 3 requests" in mail.outbox[-1].body

    Module.objects.filter(pk=books.pk).update(settings={"language": "da-DK"})  # the merchant fixed it
    page = owner.post(f"/i/{number}/systems/{books.code}/test/", follow=True).content.decode()
    assert "2 held transfers queued again." in page
    run_pending()
    assert [Transfer.objects.get(pk=t.pk).status for t in transfers[3:]] == ["created", "created"]
    assert "Nothing moves to or from" not in owner.get(f"/i/{number}/").content.decode()


def test_home_says_when_a_systems_rate_limit_holds_transfers_back(sandbox, personas, monkeypatch):
    shop = Shopify(sandbox)
    connect(personas.integration, sandbox, shop, Dinero(sandbox))
    budget(monkeypatch, "dinero", 2, 60.0)  # a transfer takes more calls than that
    monkeypatch.setattr(gate, "WAIT_IN_PLACE", 0.0)
    shop.order()
    pipeline.sync(Connection.objects.get(flow="orders"), datetime.now(UTC) - timedelta(minutes=5))
    run_pending()
    (transfer,) = Transfer.objects.all()
    assert (transfer.status, transfer.attempts) == ("retrying", 0) and "rate budget" in transfer.reason
    home = personas.client(personas.viewer).get(f"/i/{personas.integration.number}/").content.decode()
    assert "Dinero's rate limit holds 1 transfer back" in home and "(2 in 60 s)" in home


def test_transfers_held_for_a_system_go_once_it_lets_iex_in_however_that_came_about(sandbox, personas):
    shop = Shopify(sandbox)
    _, books = connect(personas.integration, sandbox, shop, Dinero(sandbox))
    books.credentials_refused("Dinero answered 401: the key was withdrawn")
    shop.order()
    pipeline.sync(Connection.objects.get(flow="orders"), datetime.now(UTC) - timedelta(minutes=5))
    run_pending()
    assert Transfer.objects.get().status == "held"
    assert pipeline.release_let_in() == 0  # still refused
    books.set_credentials(Dinero.credentials)  # saved anew (a test that failed would have noted it again)
    books.save()
    assert pipeline.release_let_in() == 1
    run_pending()
    assert Transfer.objects.get().status == "created"


def test_a_refusal_by_the_shop_holds_for_the_shop_not_the_books(sandbox, personas):
    """A transfer's send may call both of its systems: the one that refused IEX is the one noted."""
    shop = Shopify(sandbox)
    source, books = connect(personas.integration, sandbox, shop, Economic(sandbox))
    order = shop.order()
    pipeline.sync(Connection.objects.get(flow="orders"), datetime.now(UTC) - timedelta(minutes=5))
    run_pending()
    shop.refund_one(order)
    pipeline.sync(Connection.objects.get(flow="credit_notes"), datetime.now(UTC) - timedelta(minutes=5))
    Transfer.objects.filter(connection__flow="orders").update(source_data=None)  # the Log no longer has the order
    source.set_credentials({**Shopify.credentials, "access_token": "shpat_withdrawn"})  # the app was uninstalled
    source.save()
    run_pending()  # the refund reads its order from the shop, which answers 401
    credit = Transfer.objects.get(connection__flow="credit_notes")
    assert credit.status == "held" and credit.held_for == f"access:{source.pk}"
    source.refresh_from_db()
    books.refresh_from_db()
    assert source.credentials_failed_at is not None and books.credentials_failed_at is None
