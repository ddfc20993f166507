"""Concurrent requests that must not break the tenant's invariants.

Row locks only mean something on PostgreSQL; elsewhere these tests are skipped.
"""

import threading

import pytest
from django.conf import settings
from django.core.cache import cache
from django.db import connections
from django.urls import reverse

from iex.models import Role

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(
        settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql",
        reason="row locks (SELECT ... FOR UPDATE) are only real on PostgreSQL; set DATABASE_URL to run",
    ),
    pytest.mark.django_db(transaction=True),
]


def run_together(*requests):
    barrier = threading.Barrier(len(requests))
    results = []

    def go(request):
        try:
            barrier.wait()
            results.append(request())
        finally:
            connections.close_all()

    threads = [threading.Thread(target=go, args=(r,)) for r in requests]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    return results


def test_two_owners_demoting_each_other_at_once_leave_one_owner(personas):
    first, second = personas.member(personas.owner), personas.member(personas.admin)
    second.role = Role.OWNER
    second.save()
    number = personas.integration.number
    a, b = personas.client(personas.owner), personas.client(personas.admin)
    for _ in range(10):
        run_together(
            lambda: a.post(reverse("change_member_role", args=[number, second.code]), {"role": "viewer"}),
            lambda: b.post(reverse("change_member_role", args=[number, first.code]), {"role": "viewer"}),
        )
        assert personas.integration.owner_count() == 1
        personas.integration.members.filter(pk__in=[first.pk, second.pk]).update(role=Role.OWNER)


def test_concurrent_invites_cannot_pass_the_hourly_limit(personas, settings):
    from billing.models import Plan, Subscription

    settings.INVITATIONS_PER_HOUR = 3
    Subscription.of(personas.integration, Plan.objects.get(code="enterprise"))  # room for 50 members
    clients = [personas.client(personas.owner) for _ in range(6)]
    url = reverse("invite_member", args=[personas.integration.number])
    run_together(
        *[
            (lambda c=c, i=i: c.post(url, {"email": f"p{i}@shop.example", "role": "viewer"}))
            for i, c in enumerate(clients)
        ]
    )
    assert personas.integration.invitations.count() == 3


def test_two_dispatchers_at_once_claim_each_due_job_once(connected, personas):
    from django.utils import timezone

    from scheduling.models import Job

    personas.integration.connections.update(active=True)
    Job.ensure_all(personas.integration)
    personas.integration.jobs.update(next_run_at=timezone.now())
    now = timezone.now()
    for _ in range(5):
        claimed = run_together(lambda: Job.claim_due(now), lambda: Job.claim_due(now))
        ids = [pk for batch in claimed for pk in batch]
        assert sorted(ids) == sorted(personas.integration.jobs.values_list("pk", flat=True))
        personas.integration.jobs.update(next_run_at=now)


def test_ten_parallel_posts_of_one_event_store_one_delivery_and_one_transfer(connected, monkeypatch):
    import json
    from pathlib import Path

    from django.test import Client

    from connections.models import Delivery
    from connections.systems.shopify.webhooks import signature
    from transferlog.models import Transfer

    connected.trigger = "webhook"
    connected.save()
    monkeypatch.setattr("connections.intake.enqueue", lambda module_id: None)
    raw = (Path(__file__).parent / "payloads" / "shopify_order.json").read_bytes()
    headers = {
        "HTTP_X_SHOPIFY_TOPIC": "orders/create",
        "HTTP_X_SHOPIFY_EVENT_ID": "evt-42",
        "HTTP_X_SHOPIFY_HMAC_SHA256": signature("whsec", raw),
    }
    url = f"/hooks/{connected.source.webhook_token}/"
    statuses = run_together(
        *[
            lambda: Client().post(url, raw, content_type="application/json", **headers).status_code
            for _ in range(10)
        ]
    )
    assert statuses == [200] * 10
    (delivery,) = Delivery.objects.all()
    from connections import intake

    run_together(*[lambda: intake.process(delivery.pk) for _ in range(4)])
    assert Transfer.objects.count() == 1
    assert json.loads(bytes(Delivery.objects.get().body))["id"] == 5500000000001042


def test_deliveries_posted_while_drains_run_are_each_processed_once_and_none_left_waiting(connected, monkeypatch):
    """Four shops' threads post 40 orders each while the drains they queue run on a pool of their own: whatever
    the interleaving of flag, commit and drain, every delivery is processed once and none is left behind."""
    import json
    from concurrent.futures import ThreadPoolExecutor
    from pathlib import Path

    from django.test import Client

    from connections import intake
    from connections.models import Delivery, QueuedDrain
    from connections.systems.shopify.webhooks import signature
    from transferlog.models import Transfer

    connected.trigger = "webhook"
    connected.save()
    monkeypatch.setattr(Transfer, "enqueue", lambda self, countdown=0: None)  # transfers received, not sent
    monkeypatch.setattr(intake, "DRAIN_BATCH", 7)
    pool = ThreadPoolExecutor(3)
    queued = []

    def drain(module_id):
        try:
            intake.drain(module_id)
        finally:
            connections.close_all()

    def publish(name, module_id, countdown=0, priority=0):
        queued.append(pool.submit(drain, module_id))
        return True

    monkeypatch.setattr("iex.lib.queueing.publish", publish)
    order = json.loads((Path(__file__).parent / "payloads" / "shopify_order.json").read_text())
    url = f"/hooks/{connected.source.webhook_token}/"

    def shop(k):
        def post_all():
            for n in range(40):
                raw = json.dumps({**order, "id": 7000 + 100 * k + n, "name": f"#{k}-{n}"}).encode()
                Client().post(
                    url,
                    raw,
                    content_type="application/json",
                    HTTP_X_SHOPIFY_TOPIC="orders/create",
                    HTTP_X_SHOPIFY_EVENT_ID=f"evt-{k}-{n}",
                    HTTP_X_SHOPIFY_HMAC_SHA256=signature("whsec", raw),
                )

        return post_all

    run_together(*[shop(k) for k in range(4)])
    while not all(future.done() for future in queued):
        [future.result() for future in list(queued)]
    pool.shutdown()
    assert Delivery.objects.filter(status="processed").count() == 160
    assert not Delivery.objects.exclude(status="processed").exists()
    assert Transfer.objects.count() == 160
    assert not QueuedDrain.objects.exists()
    assert len(queued) < 160  # bursts shared their drains


def test_concurrent_invites_cannot_pass_the_plans_member_limit(personas):
    """Standard has room for 5: three members, so two of six invitations at once are issued."""
    clients = [personas.client(personas.owner) for _ in range(6)]
    url = reverse("invite_member", args=[personas.integration.number])
    run_together(
        *[
            (lambda c=c, i=i: c.post(url, {"email": f"p{i}@shop.example", "role": "viewer"}))
            for i, c in enumerate(clients)
        ]
    )
    assert personas.integration.invitations.count() == 2


def test_two_orders_of_one_new_customer_at_once_make_the_customer_once(sandboxed, sandbox, monkeypatch):
    """Both orders find no customer in e-conomic; without a claim both would make one, and the ledger would have
    the customer twice for good. The second waits for the first's claim, then uses what it made."""
    from connections import pipeline
    from transferlog.models import Transfer

    monkeypatch.setattr(Transfer, "enqueue", lambda self, countdown=0: None)  # run here
    sandbox.configure({"latency_ms": 150})  # time for both to look the customer up before either makes it
    orders = [
        sandbox.create_order(
            {
                "country": "DK",
                "financial_status": "paid",
                "email": "new.customer@example.dk",
                "line_items": [{"sku": "BIKE-RED", "quantity": 1}],
                "shipping_lines": [],
            }
        )
        for _ in range(2)
    ]
    transfers = [pipeline.receive(sandboxed, str(o["id"]), o["name"], None, o) for o in orders]
    run_together(*[lambda t=t: pipeline.process(t.pk) for t in transfers])
    for transfer in Transfer.objects.filter(status="retrying"):
        pipeline.process(transfer.pk)  # its turn again: the customer exists now
    books = sandbox.summary()["economic"]
    made = [c for c in books["customers"] if c.get("email") == "new.customer@example.dk"]
    assert len(made) == 1
    assert sorted(Transfer.objects.values_list("status", flat=True)) == ["created", "created"]
    assert {d["customer"]["customerNumber"] for d in books["drafts"]} == {made[0]["customerNumber"]}


def test_two_orders_with_one_new_product_at_once_make_the_product_once(sandboxed, sandbox, monkeypatch):
    """Both orders find the product missing in e-conomic; without a claim both would POST it and e-conomic would
    refuse the second (the number is taken), failing that order. The second waits, then finds it made."""
    from connections import pipeline
    from transferlog.models import Transfer

    monkeypatch.setattr(Transfer, "enqueue", lambda self, countdown=0: None)  # run here
    sandbox.configure({"latency_ms": 150})  # time for both to find the product missing before either makes it
    sandbox.create_product({"title": "Bell", "variants": [{"sku": "BELL", "price": "59.50"}]})  # not in e-conomic
    orders = [
        sandbox.create_order(
            {
                "country": "DK",
                "financial_status": "paid",
                "email": f"customer{n}@example.dk",
                "line_items": [{"sku": "BELL", "quantity": 1}],
                "shipping_lines": [],
            }
        )
        for n in range(2)
    ]
    transfers = [pipeline.receive(sandboxed, str(o["id"]), o["name"], None, o) for o in orders]
    run_together(*[lambda t=t: pipeline.process(t.pk) for t in transfers])
    for transfer in Transfer.objects.filter(status="retrying"):
        pipeline.process(transfer.pk)  # its turn again: the product exists now
    assert sorted(Transfer.objects.values_list("status", flat=True)) == ["created", "created"]
    products = [p for p in sandbox.summary()["economic"]["products"] if p["productNumber"] == "BELL"]
    assert len(products) == 1


def test_two_workers_refreshing_dinero_at_once_rotate_its_refresh_token_once(personas, sandbox):
    """A refresh token works once: without the module's row lock, the second of two workers refreshing together
    would be refused, and the merchant told to connect again for nothing."""
    import requests

    from connections.models import Module
    from connections.systems.dinero.client import DineroClient

    base = f"{sandbox.url}/dinero"
    page = requests.get(
        f"{base}/connect/authorize",
        params={"client_id": "iex-sandbox", "response_type": "code", "redirect_uri": "https://iex.example/back",
                "scope": "dineropublicapi:read dineropublicapi:write offline_access", "state": "s"},
        timeout=5,
    ).text  # fmt: skip
    code = page.split('name="code" value="')[1].split('"')[0]
    tokens = requests.post(
        f"{base}/connect/token",
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": "https://iex.example/back"},
        auth=("iex-sandbox", "iex-sandbox-secret"),
        timeout=5,
    ).json()
    books = Module(integration=personas.integration, kind="dinero", base_url=base)
    books.set_credentials({"refresh_token": tokens["refresh_token"], "organization_id": "123456"})
    books.save()
    for _ in range(5):
        cache.clear()  # no access token: both workers refresh
        results = run_together(
            *[lambda: DineroClient(Module.objects.get(pk=books.pk)).organizations()[0]["Id"] for _ in range(2)]
        )
        assert results == [123456, 123456]  # neither was refused
    cache.clear()
    assert DineroClient(Module.objects.get(pk=books.pk)).organizations()  # the kept refresh token is the live one
