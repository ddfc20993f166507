"""The Log page: search, filters in the URL, keyset pages, the fold-out, retry of one and of all failed."""

import io
import json
import re
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from connections.systems import webshop
from transferlog.models import Transfer

pytestmark = pytest.mark.django_db


def make(connection, n, status="created", minutes_ago=0, **fields):
    return Transfer.objects.create(
        integration=connection.integration,
        connection=connection,
        connection_label=connection.label,
        entity=connection.entity,
        source_ref=str(5_500_000_000_000 + n),
        reference=f"#{n}",
        status=status,
        created=timezone.now() - timedelta(minutes=minutes_ago),
        **fields,
    )


def log(personas, user=None, **params):
    client = personas.client(user or personas.viewer)
    return client.get(reverse("log", args=[personas.integration.number]), params).content.decode()


def refs(body):
    import re

    return re.findall(r'class="log-ref">(#\d+)<', body)


def test_newest_first_with_connection_status_and_reason(personas, connected):
    make(connected, 1041, minutes_ago=5)
    make(connected, 1042, status="skipped", reason="Order not in allowed states (financial status: pending)")
    body = log(personas)
    assert refs(body) == ["#1042", "#1041"]
    assert "Shopify &gt; e-conomic: orders" in body
    assert "Order not in allowed states (financial status: pending)" in body


def test_search_by_order_number_exact_and_prefix(personas, connected):
    for n in (1040, 1042, 1100):
        make(connected, n)
    assert refs(log(personas, q="#1042")) == ["#1042"]
    assert refs(log(personas, q="#104")) == ["#1042", "#1040"]
    assert refs(log(personas, q="5500000001100")) == ["#1100"]  # the shop's own id


PAYLOADS = Path(__file__).parent / "payloads"
SEARCHED = ("search_terms", "search_email")


def received(connection, payload):
    """A webshop's order as the pipeline receives it (a webhook's or a run's record)."""
    from connections import pipeline

    order = json.loads((PAYLOADS / payload).read_text())
    shop = webshop(connection.source.kind).transforms
    return pipeline.receive(connection, *shop.order_ref(order), order)


@pytest.fixture
def woo(connected):
    """WooCommerce beside Shopify, its orders connection to the same e-conomic."""
    from connections.models import Connection, Module

    Module.objects.create(integration=connected.integration, kind="woocommerce")
    Connection.ensure_for(connected.integration)
    return connected.integration.connections.get(flow="orders", source__kind="woocommerce")


def test_search_finds_an_order_number_as_merchants_type_it(personas, connected):
    for n, minutes_ago in ((1003, 3), (10031, 2), (1100, 1)):
        make(connected, n, minutes_ago=minutes_ago)
    assert refs(log(personas, q="#1003")) == ["#10031", "#1003"]
    assert refs(log(personas, q="1003")) == ["#10031", "#1003"]  # without its "#"
    assert refs(log(personas, q="100")) == ["#10031", "#1003"]  # the start of it
    assert refs(log(personas, q=" # 1100 ")) == ["#1100"]
    assert refs(log(personas, q="5500000001003")) == ["#1003"]  # the shop's own id
    assert refs(log(personas, q="#")) == []  # the start of every number finds nothing, not everything


def test_search_finds_the_document_made_in_the_accounting_system(personas, connected):
    make(connected, 7, target_ref="31", minutes_ago=2)
    make(connected, 8, target_ref="312", minutes_ago=1)
    assert refs(log(personas, q="31")) == ["#7"]  # exactly: an invoice number is not the start of another
    assert refs(log(personas, q="312")) == ["#8"]


def test_search_finds_shopify_and_woocommerce_orders_by_their_customer(personas, connected, woo):
    shopify = received(connected, "shopify_order_450789469.json")  # #1001, Bob Norman
    woocommerce = received(woo, "woocommerce_order_727.json")  # #727, John Doe
    assert (shopify.search_terms, shopify.search_email) == ("bob norman", "bob.norman@mail.example.com")
    assert (woocommerce.search_terms, woocommerce.search_email) == ("john doe", "john.doe@example.com")
    assert refs(log(personas, q="Bob Norman")) == ["#1001"]
    assert refs(log(personas, q="norman  BOB")) == ["#1001"]  # any order, any case
    assert refs(log(personas, q="Doe")) == ["#727"]
    assert refs(log(personas, q="John.Doe@example.com")) == ["#727"]
    assert refs(log(personas, q="bob.nor")) == ["#1001"]  # the start of an email
    assert "No transfers match this search" in log(personas, q="Bob Doe")


def test_search_never_finds_another_integrations_transfers(personas, connected):
    make(connected, 1)
    Transfer.objects.create(
        integration=personas.other,
        connection_label="Shopify > e-conomic: orders",
        entity="orders",
        source_ref="5500000001003",
        reference="#1003",
        target_ref="31",
        search_terms="bob norman",
        search_email="bob@example.com",
    )
    for q in ("#1003", "1003", "10", "5500000001003", "31", "bob norman", "bob@example.com"):
        assert "No transfers match this search" in log(personas, q=q), q


@pytest.mark.parametrize("q", ["%", "_", "%%%", "' OR '1'='1", "\\", "1%"])
def test_what_is_typed_is_searched_for_never_run(personas, connected, q):
    make(connected, 1001, search_terms="bob norman", search_email="bob@example.com")
    body = log(personas, q=q)
    assert "No transfers match this search" in body  # a LIKE wildcard is a character here, SQL is text


def test_orders_received_before_are_found_by_their_customer_too(personas, connected, woo):
    shopify, woocommerce = (
        received(connected, "shopify_order_450789469.json"),
        received(woo, "woocommerce_order_727.json"),
    )
    gone = make(connected, 9, source_data=json.loads((PAYLOADS / "woocommerce_order_727.json").read_text()))
    Transfer.objects.filter(pk=gone.pk).update(connection=None, connection_label="WooCommerce > e-conomic: orders")
    Transfer.objects.update(search_terms="", search_email="")  # as before the search read them
    call_command("fill_search_terms", stdout=io.StringIO())
    assert {pk: (names, email) for pk, names, email in Transfer.objects.values_list("pk", *SEARCHED)} == {
        shopify.pk: ("bob norman", "bob.norman@mail.example.com"),
        woocommerce.pk: ("john doe", "john.doe@example.com"),
        gone.pk: ("john doe", "john.doe@example.com"),  # its module removed since: its label names the shop
    }
    assert refs(log(personas, q="john doe")) == ["#9", "#727"]


def test_filters_by_status_connection_entity_and_date(personas, connected):
    make(connected, 1, status="failed", minutes_ago=3 * 24 * 60)
    make(connected, 2, status="created")
    products = personas.integration.connections.get(flow="products")
    make(products, 3, status="failed")
    assert refs(log(personas, status="failed")) == ["#3", "#1"]
    assert refs(log(personas, connection=str(connected.code))) == ["#2", "#1"]
    assert refs(log(personas, entity="products")) == ["#3"]
    today = timezone.now().date()
    assert refs(log(personas, **{"from": str(today)})) == ["#3", "#2"]
    assert refs(log(personas, to=str(today - timedelta(days=1)))) == ["#1"]
    assert "No transfers match this search" in log(personas, connection="not-a-uuid")


def test_keyset_pages_lose_nothing_when_new_transfers_arrive(personas, connected):
    for n in range(120):
        make(connected, n, minutes_ago=200 - n)
    first = log(personas)
    assert refs(first)[0] == "#119" and len(refs(first)) == 50
    import re

    older = re.search(r'before=([^"]+)"', first).group(1).replace("&amp;", "&")
    for n in range(500, 505):  # arrive between the pages
        make(connected, n)
    client = personas.client(personas.viewer)
    second = client.get(reverse("log", args=[personas.integration.number]) + "?before=" + older).content.decode()
    assert refs(second) == [f"#{n}" for n in range(69, 19, -1)]
    newer = re.search(r'after=([^"]+)"', second).group(1)
    back = client.get(reverse("log", args=[personas.integration.number]) + "?after=" + newer).content.decode()
    assert refs(back) == [f"#{n}" for n in range(119, 69, -1)]  # the same first page, not the new arrivals


def test_filters_stay_in_the_paging_links(personas, connected):
    for n in range(60):
        make(connected, n, status="failed", minutes_ago=100 - n)
    body = log(personas, status="failed")
    assert "?status=failed&amp;before=" in body


def test_fold_out_shows_both_formats_and_every_state(personas, connected):
    transfer = make(connected, 7, source_data={"id": 7, "name": "#7", "total_price": "10.00"})
    transfer.record("transformed", {"total": "10.00"}, "In IEX's common format")
    transfer.record("sent", {"method": "POST", "path": "invoices/drafts", "body": {"currency": "DKK"}}, "POST")
    transfer.record("answer", {"draftInvoiceNumber": 31}, "saved")
    transfer.save_states()
    client = personas.client(personas.viewer)
    url = reverse("transfer_detail", args=[personas.integration.number, transfer.code])
    fold = client.get(url, HTTP_HX_REQUEST="true").content.decode()
    assert "As received from Shopify" in fold and "As sent to e-conomic" in fold
    assert "&quot;total_price&quot;: &quot;10.00&quot;" in fold and "&quot;currency&quot;: &quot;DKK&quot;" in fold
    assert "<html" not in fold  # a partial
    assert "draftInvoiceNumber" in fold
    page = client.get(url).content.decode()
    assert "<html" in page and "As received from Shopify" in page


def test_viewer_retries_a_failed_transfer_as_a_new_attempt(personas, connected, monkeypatch):
    queued = []
    monkeypatch.setattr(Transfer, "enqueue", lambda self, countdown=0: queued.append(self.pk))
    transfer = make(connected, 9, status="failed", attempts=6, reason="e-conomic answered 503")
    response = personas.client(personas.viewer).post(
        reverse("retry_transfer", args=[personas.integration.number, transfer.code])
    )
    assert response.status_code == 302
    transfer.refresh_from_db()
    assert (transfer.status, transfer.attempts_before_retry, transfer.run_attempts) == ("pending", 6, 0)
    assert queued == [transfer.pk]
    assert transfer.states.get(kind="retry").note == "Retry requested by viewer@shop.example"


def test_only_failed_or_held_transfers_are_retried(personas, connected, monkeypatch):
    monkeypatch.setattr(Transfer, "enqueue", lambda self, countdown=0: None)
    transfer = make(connected, 9, status="created")
    response = personas.client(personas.owner).post(
        reverse("retry_transfer", args=[personas.integration.number, transfer.code]), follow=True
    )
    assert "Only failed or held transfers can be retried" in response.content.decode()
    transfer.refresh_from_db()
    assert transfer.status == "created"


def test_retry_all_failed_in_the_filter_runs_in_the_background(
    personas, connected, monkeypatch, django_capture_on_commit_callbacks
):
    from iex.celery import app

    queued = []
    monkeypatch.setattr(Transfer, "enqueue", lambda self, countdown=0: queued.append(self.pk))
    a = make(connected, 1, status="failed")
    make(connected, 2, status="failed")
    make(connected, 3, status="created")
    app.conf.task_always_eager = True
    try:
        with django_capture_on_commit_callbacks(execute=True):
            response = personas.client(personas.viewer).post(
                reverse("retry_failed_transfers", args=[personas.integration.number]), {"q": "#1"}, follow=True
            )
    finally:
        app.conf.task_always_eager = False
    assert "1 failed transfer queued for retry" in response.content.decode()
    assert queued == [a.pk]
    assert response.redirect_chain[-1][0].endswith("?q=%231")


def test_a_retried_transfer_gets_a_fresh_retry_budget(connected):
    from connections import pipeline

    transfer = make(connected, 9, status="failed", attempts=pipeline.MAX_ATTEMPTS)
    assert transfer.retry(by="x")
    transfer.refresh_from_db()
    assert transfer.run_attempts == 0


@pytest.mark.parametrize("name", ["retry_transfer"])
def test_retry_rejects_get(personas, connected, name):
    transfer = make(connected, 9, status="failed")
    url = reverse(name, args=[personas.integration.number, transfer.code])
    assert personas.client(personas.owner).get(url).status_code == 405


def test_log_rejects_post_and_retry_failed_rejects_get(personas, connected):
    client = personas.client(personas.owner)
    assert client.post(reverse("log", args=[personas.integration.number])).status_code == 405
    assert client.get(reverse("retry_failed_transfers", args=[personas.integration.number])).status_code == 405


def test_a_transfer_of_another_integration_is_404(personas, connected):
    transfer = make(connected, 9, status="failed")
    client = personas.client(personas.outsider)
    other = personas.other.number
    assert client.get(reverse("transfer_detail", args=[other, transfer.code])).status_code == 404
    assert client.post(reverse("retry_transfer", args=[other, transfer.code])).status_code == 404
    transfer.refresh_from_db()
    assert transfer.status == "failed"


def test_export_streams_the_current_filter_as_csv(personas, connected):
    import csv
    import io

    make(connected, 1, status="failed", reason='e-conomic said "no", twice')
    make(connected, 2, status="created")
    response = personas.client(personas.viewer).get(
        reverse("export_log", args=[personas.integration.number]), {"status": "failed"}
    )
    assert response.streaming
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert f"iex-{personas.integration.number}-log-" in response["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0][:6] == ["time_utc", "connection", "entity", "reference", "source_id", "status"]
    assert [(r[3], r[5], r[6]) for r in rows[1:]] == [("#1", "failed", 'e-conomic said "no", twice')]


def test_the_page_says_how_long_entries_are_kept(personas, connected):
    assert "Entries are kept 90 days; failed ones 180 days." in log(personas)


def test_purge_deletes_past_retention_in_batches_keeping_failed_twice_as_long(personas, connected, capsys):
    from django.core.management import call_command

    from transferlog.models import TransferState, purge

    old = make(connected, 1, minutes_ago=91 * 24 * 60)
    old.record("sent", {"x": 1})
    old.save_states()
    old_failed = make(connected, 2, status="failed", minutes_ago=91 * 24 * 60)
    ancient_failed = make(connected, 3, status="failed", minutes_ago=181 * 24 * 60)
    recent = make(connected, 4, minutes_ago=89 * 24 * 60)
    call_command("purge_transfers", "--dry-run")
    assert "would delete 2 transfers (kept 90 days by the integrations' plans; failed ones twice as long)" in (
        capsys.readouterr().out
    )
    assert Transfer.objects.count() == 4
    assert purge(timezone.now(), batch=1, pause=0) == 2
    assert set(Transfer.objects.values_list("pk", flat=True)) == {old_failed.pk, recent.pk}
    assert not TransferState.objects.filter(transfer_id=old.pk).exists()
    assert not Transfer.objects.filter(pk=ancient_failed.pk).exists()


def test_purge_keeps_unfinished_transfers_and_misses_none_created_at_the_same_moment(personas, connected):
    """Held transfers are never dropped (they wait for a pack); batches that end inside a run of equal times go on."""
    from transferlog.models import purge

    same_moment = timezone.now() - timedelta(days=100)
    done = [make(connected, n, minutes_ago=0) for n in range(5)]
    unfinished = [
        make(connected, 10 + n, status=s) for n, s in enumerate(["held", "pending", "retrying", "running"])
    ]
    Transfer.objects.filter(pk__in=[t.pk for t in done + unfinished]).update(created=same_moment)
    assert purge(timezone.now(), batch=2, pause=0) == 5
    assert set(Transfer.objects.values_list("pk", flat=True)) == {t.pk for t in unfinished}


def test_retention_follows_each_integrations_plan(personas, connected):
    """Basic keeps 30 days, Standard 90: the same 31-day-old transfer goes in one integration, stays in the other."""
    from billing.models import Plan, Subscription
    from transferlog.models import purge

    Subscription.of(personas.integration, Plan.objects.get(code="basic"))
    assert "Entries are kept 30 days; failed ones 60 days." in log(personas)
    gone = make(connected, 1, minutes_ago=31 * 24 * 60)
    kept_failed = make(connected, 2, status="failed", minutes_ago=31 * 24 * 60)
    other = Transfer.objects.create(
        integration=personas.other, connection_label="x", entity="orders", source_ref="9", status="created"
    )
    Transfer.objects.filter(pk=other.pk).update(created=timezone.now() - timedelta(days=31))
    Subscription.of(personas.other, Plan.objects.get(code="standard"))
    assert purge(timezone.now(), pause=0) == 1
    assert set(Transfer.objects.values_list("pk", flat=True)) == {kept_failed.pk, other.pk}
    assert not Transfer.objects.filter(pk=gone.pk).exists()


@pytest.mark.parametrize(
    "status", ["created", "updated", "skipped", "held", "warning", "failed", "retrying", "pending"]
)
def test_fold_out_for_each_status(personas, connected, status):
    transfer = make(connected, 5, status=status, reason=f"because {status}", source_data={"id": 5})
    transfer.record(status, {"detail": status}, f"because {status}")
    transfer.save_states()
    fold = (
        personas.client(personas.viewer)
        .get(reverse("transfer_detail", args=[personas.integration.number, transfer.code]), HTTP_HX_REQUEST="true")
        .content.decode()
    )
    assert f"<strong>{status.capitalize()}</strong> because {status}" in fold
    assert ("Retry this transfer" in fold) == (status in ("failed", "held"))


def test_a_log_page_costs_the_same_few_queries_however_many_lines(
    personas, connected, django_assert_max_num_queries
):
    for n in range(30):
        make(connected, n, source_data={"id": n})
    client = personas.client(personas.viewer)
    url = reverse("log", args=[personas.integration.number])
    client.get(url)
    with django_assert_max_num_queries(10):
        body = client.get(url).content.decode()
    assert body.count('class="log-row') == 30


def test_a_retried_line_follows_its_transfer_until_it_settles(personas, connected, monkeypatch):
    monkeypatch.setattr(Transfer, "enqueue", lambda self, countdown=0: None)
    transfer = make(connected, 9, status="failed", reason="e-conomic answered 503")
    client = personas.client(personas.viewer)
    row = reverse("transfer_row", args=[personas.integration.number, transfer.code])
    polling = f'hx-get="{row}?asked=1" hx-trigger="every 2s" hx-target="this" hx-swap="outerHTML"'
    assert row not in log(personas)  # a settled line asks nothing
    client.post(reverse("retry_transfer", args=[personas.integration.number, transfer.code]))
    page = log(personas)
    line = page[page.index(f'id="t-{transfer.code}"') :]
    assert polling in line  # pending: the line asks for itself again
    assert "Pending" in line[: line.index("</summary>")] and "503" not in line[: line.index("</summary>")]

    pending = client.get(row).content.decode()
    assert pending.lstrip().startswith("<summary") and polling in pending and "<html" not in pending
    Transfer.claim(transfer.pk)
    assert polling in client.get(row).content.decode()  # running
    # Each ask waits twice as long as the one before, up to a minute: a page of lines waiting out an outage is quiet.
    assert f'hx-get="{row}?asked=3" hx-trigger="every 8s"' in client.get(row, {"asked": 2}).content.decode()
    assert 'hx-trigger="every 60s"' in client.get(row, {"asked": 9}).content.decode()
    Transfer.objects.get(pk=transfer.pk).finish("created")
    settled = client.get(row).content.decode()
    assert ">Created</span>" in settled and "hx-trigger" not in settled  # the answer that stops the asking


def test_a_waiting_line_asks_less_often(personas, connected):
    transfer = make(connected, 9, status="retrying", reason="e-conomic has not answered since 10:32")
    row = reverse("transfer_row", args=[personas.integration.number, transfer.code])
    assert 'hx-trigger="every 10s"' in personas.client(personas.viewer).get(row).content.decode()


def test_a_line_of_another_integration_is_404_and_only_read(personas, connected):
    transfer = make(connected, 9)
    row = reverse("transfer_row", args=[personas.integration.number, transfer.code])
    assert personas.client(personas.outsider).get(row).status_code == 404
    other = reverse("transfer_row", args=[personas.other.number, transfer.code])
    assert personas.client(personas.outsider).get(other).status_code == 404
    assert personas.client(personas.viewer).post(row).status_code == 405


def test_the_status_filter_says_homes_words_and_lists_what_is_not_done_yet(personas, connected):
    for n, status in enumerate(["pending", "running", "retrying", "held", "created", "failed"]):
        make(connected, n, status=status)
    body = log(personas)
    done = body[body.index('<optgroup label="Done">') : body.index("</optgroup>")]
    assert re.findall(r">([^<]+)</option>", done) == ["Created", "Updated", "Skipped", "Warning", "Failed"]
    waiting = body[body.index('<optgroup label="Not done yet">') :]
    assert re.findall(r">([^<]+)</option>", waiting[: waiting.index("</optgroup>")]) == [
        "Not done yet (all)", "Pending", "Retrying", "Running", "Held",
    ]  # fmt: skip
    assert sorted(refs(log(personas, status="waiting"))) == ["#0", "#1", "#2", "#3"]
