"""End to end over real HTTP against the sandbox: a paid order becomes one invoice draft; changed, it updates that
draft; fetched again, nothing new is created. Products and stock flow too."""

import pytest
import requests
from django.urls import reverse

from billing.models import Usage
from scheduling.models import Job
from scheduling.tasks import run_job
from transferlog.models import Transfer

pytestmark = pytest.mark.django_db


def run(job, capture):
    with capture(execute=True):
        run_job(job.pk)


def economic(sandbox):
    return requests.get(f"{sandbox.url}/_sandbox/state", timeout=5).json()["economic"]


def test_order_becomes_one_draft_then_updates_it(sandboxed, sandbox, eager, django_capture_on_commit_callbacks):
    job = Job.ensure_for(sandboxed)
    job.start_now()
    order = sandbox.create_order(
        {
            "financial_status": "paid",
            "line_items": [{"sku": "BIKE-RED", "quantity": 1}, {"sku": "BOOK-GUIDE", "quantity": 2}],
        }
    )
    run(job, django_capture_on_commit_callbacks)

    transfer = Transfer.objects.get()
    assert (transfer.status, transfer.action, transfer.reference) == ("created", "created", order["name"]), (
        transfer.reason
    )
    (draft,) = economic(sandbox)["drafts"]
    assert str(draft["draftInvoiceNumber"]) == transfer.target_ref
    assert f"{draft['grossAmount']:.2f}" == order["total_price"]

    sandbox.update_order(order["id"], {"line_items": [{"sku": "BIKE-RED", "quantity": 2}]})
    run(job, django_capture_on_commit_callbacks)
    second = Transfer.objects.latest("id")
    assert (second.status, second.action, second.target_ref) == ("updated", "updated", transfer.target_ref)
    (draft,) = economic(sandbox)["drafts"]
    changed = sandbox.state.shopify.orders[order["id"]]
    assert f"{draft['grossAmount']:.2f}" == changed["total_price"]

    run(job, django_capture_on_commit_callbacks)  # the overlap fetches it again: nothing new
    assert Transfer.objects.count() == 2
    assert len(economic(sandbox)["drafts"]) == 1
    # Metering: the create counted once; the update and the repeated fetch did not.
    usage = Usage.of(sandboxed.integration)
    assert (usage.used, usage.reserved) == (1, 0)


def test_unpaid_order_is_skipped_then_transferred_once_paid(
    sandboxed, sandbox, eager, django_capture_on_commit_callbacks
):
    job = Job.ensure_for(sandboxed)
    job.start_now()
    order = sandbox.create_order({"financial_status": "pending"})
    run(job, django_capture_on_commit_callbacks)
    assert Transfer.objects.get().reason == "Order not in allowed states (financial status: pending)"
    sandbox.update_order(order["id"], {"financial_status": "paid"})
    run(job, django_capture_on_commit_callbacks)
    assert Transfer.objects.latest("id").status == "created"
    assert len(economic(sandbox)["drafts"]) == 1


def test_booked_invoices_are_not_changed(sandboxed, sandbox, eager, django_capture_on_commit_callbacks):
    books = sandboxed.target
    books.settings = {"document_type": "booked"}
    books.save()
    job = Job.ensure_for(sandboxed)
    job.start_now()
    order = sandbox.create_order({"financial_status": "paid"})
    run(job, django_capture_on_commit_callbacks)
    assert Transfer.objects.get().status == "created"
    assert len(economic(sandbox)["booked"]) == 1 and not economic(sandbox)["drafts"]
    sandbox.update_order(order["id"], {"note": "changed after booking"})
    run(job, django_capture_on_commit_callbacks)
    latest = Transfer.objects.latest("id")
    assert latest.status == "skipped" and latest.reason.startswith("Booked in e-conomic as invoice 10001")


def test_a_flaky_accounting_system_is_retried(
    sandboxed, sandbox, eager, django_capture_on_commit_callbacks, monkeypatch
):
    monkeypatch.setattr("connections.pipeline.backoff", lambda attempt, retry_after=None: 0)
    sandbox.configure({"faults": [{"path_contains": "/economic/invoices/drafts", "status": 503, "times": 2}]})
    job = Job.ensure_for(sandboxed)
    job.start_now()
    sandbox.create_order({"financial_status": "paid"})
    run(job, django_capture_on_commit_callbacks)
    transfer = Transfer.objects.get()
    assert (transfer.status, transfer.attempts) == ("created", 3)
    assert len(economic(sandbox)["drafts"]) == 1


def test_products_and_stock_flow(sandboxed, sandbox, eager, django_capture_on_commit_callbacks, personas):
    connections = personas.integration.connections
    connections.update(active=True)
    products = Job.ensure_for(connections.get(flow="products"))
    products.cursor = None
    products.save()
    product = sandbox.create_product({"title": "Saddle bag", "variants": [{"sku": "BAG-S", "price": "250.00"}]})
    run(products, django_capture_on_commit_callbacks)
    created = Transfer.objects.get(entity="products", source_ref=str(product["id"]))
    assert created.status == "created", created.reason
    bag = next(p for p in economic(sandbox)["products"] if p["productNumber"] == "BAG-S")
    assert bag["salesPrice"] == 200.0  # 250 incl. 25 % VAT

    stock = Job.ensure_for(connections.get(flow="stock"))
    sandbox.set_economic_available("BIKE-RED", 7)
    run(stock, django_capture_on_commit_callbacks)
    level = Transfer.objects.get(entity="stock", source_ref="BIKE-RED")
    assert level.status == "updated", level.reason
    variant = next(v for p in sandbox.state.shopify.products for v in p["variants"] if v["sku"] == "BIKE-RED")
    assert variant["inventory_quantity"] == 7
    run(stock, django_capture_on_commit_callbacks)  # unchanged levels are not sent again
    assert Transfer.objects.filter(entity="stock", source_ref="BIKE-RED").count() == 1


def test_updated_before_created_ends_in_the_newest_state_with_one_document(
    sandboxed, sandbox, eager, django_capture_on_commit_callbacks
):
    from datetime import datetime

    from connections import pipeline

    first = sandbox.create_order({"financial_status": "paid", "line_items": [{"sku": "LOCK-U", "quantity": 1}]})
    newest = sandbox.update_order(first["id"], {"line_items": [{"sku": "LOCK-U", "quantity": 3}]})

    def deliver(order):
        with django_capture_on_commit_callbacks(execute=True):
            pipeline.receive(
                sandboxed, str(order["id"]), order["name"], datetime.fromisoformat(order["updated_at"]), order
            )

    deliver(newest)  # orders/updated overtakes orders/create
    deliver(first)
    statuses = list(Transfer.objects.order_by("id").values_list("status", "reason"))
    assert statuses == [("created", ""), ("skipped", "A newer version of this record was already transferred")]
    (draft,) = economic(sandbox)["drafts"]
    assert f"{draft['grossAmount']:.2f}" == newest["total_price"]


def test_a_system_removed_and_added_again_sends_and_counts_nothing_twice(
    sandboxed, sandbox, eager, django_capture_on_commit_callbacks, personas
):
    """Issue 21 (6): removing e-conomic and adding it again made order #1014 "Created" twice and counted it twice.
    What IEX made is kept by the accounts it was made between, and comes back with the system."""
    owner = personas.client(personas.owner)
    number = personas.integration.number
    for module in personas.integration.modules.all():  # the tests name the accounts the modules reach
        owner.post(reverse("test_module", args=[number, module.code]))
    job = Job.ensure_for(sandboxed)
    job.start_now()
    order = sandbox.create_order({"financial_status": "paid"})
    run(job, django_capture_on_commit_callbacks)
    first = Transfer.objects.get()
    assert first.status == "created", first.reason

    books = personas.integration.modules.get(kind="economic")
    owner.post(reverse("remove_module", args=[number, books.code]))
    owner.post(reverse("add_system", args=[number]), {"kind": "economic"})
    again = personas.integration.modules.get(kind="economic")
    # Connected to the same agreement (a new grant token for it), through the page a merchant uses.
    owner.post(
        reverse("connect_module", args=[number, again.code]),
        {
            "app_secret_token": "sandbox-app-secret",
            "agreement_grant_token": "sandbox-grant",
            "base_url": f"{sandbox.url}/economic",
        },
    )
    orders = personas.integration.connections.get(flow="orders")
    orders.active = True
    orders.save()
    job = Job.ensure_for(orders)
    job.start_now()
    sandbox.update_order(order["id"], {"note": "changed after the system came back"})
    run(job, django_capture_on_commit_callbacks)

    second = Transfer.objects.exclude(pk=first.pk).get()
    assert (second.status, second.action, second.target_ref) == ("updated", "updated", first.target_ref)
    assert len(economic(sandbox)["drafts"]) == 1
    usage = Usage.of(personas.integration)
    assert (usage.used, usage.reserved) == (1, 0)


def test_another_shop_behind_the_same_system_does_not_take_the_first_ones_documents(
    sandboxed, sandbox, eager, django_capture_on_commit_callbacks, personas
):
    """A mapping is of two accounts: once Shopify reaches another shop, the first shop's documents are put aside
    (a shop's order ids are its own), and come back when it reaches the first shop again."""
    from connections.models import Mapping

    shop = personas.integration.modules.get(kind="shopify")
    books = personas.integration.modules.get(kind="economic")
    for module, account in ((shop, "sandbox.myshopify.com"), (books, "1")):
        module.identified(account)
    Mapping.objects.create(connection=sandboxed, source_ref="450789469", target_ref="7")
    shop.identified("another-shop.myshopify.com")
    assert not sandboxed.mappings.exists()
    shop.identified("sandbox.myshopify.com")
    assert sandboxed.mappings.get().target_ref == "7"
