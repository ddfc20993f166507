"""Billing against localstripe with the real stripe SDK: customer, card, subscription, packs by hand and
automatically, a declined card holding transfers and their release; metering across the month boundary; the paths
localstripe lacks (idempotent replay, authentication required, invoice.paid) with the SDK's answer faked."""

import hashlib
import hmac
import html
import json
import re
import time
from datetime import UTC, datetime, timedelta
from unittest.mock import Mock
from uuid import uuid4

import pytest
import stripe as stripe_sdk
import time_machine
from django.core import mail
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from billing import packs, stripe_api, subscriptions, tasks
from billing.models import Pack, Plan, StripeEvent, Subscription, Usage, month_of
from billing.usage import reserve, settle
from iex.models import Integration
from transferlog.models import HeldFor, Status, Transfer

pytestmark = pytest.mark.django_db

BILLING = {
    "company": "Nordic Bikes ApS",
    "address": "Cykelvej 2",
    "postcode": "8000",
    "city": "Aarhus C",
    "country": "dk",
    "vat_number": "DK 12 34 56 78",
    "invoice_email": "books@shop.example",
}


@pytest.fixture
def committed(django_capture_on_commit_callbacks):
    """Tests never commit: run what waits for the commit (emails, releases) when the block ends."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


def url(name, personas):
    return reverse(name, args=[personas.integration.number])


def card_on_file(personas, number="4242424242424242"):
    client = personas.client(personas.owner)
    assert client.post(url("save_billing_info", personas), BILLING).status_code == 302
    response = client.post(url("save_card", personas), {"number": number, "expiry": "12/30", "cvc": "123"})
    assert response.status_code == 302, response.content.decode()[:2000]
    return Subscription.objects.get(integration=personas.integration)


def buy(client, personas, packs, code=None, follow=True):
    """Buy packs by hand as the page does: the amount shown, then confirmed."""
    code = code or uuid4()
    preview = client.post(url("preview_packs", personas), {"packs": packs, "code": code})
    assert preview.status_code == 200, preview.content.decode()[:2000]
    amount = re.search(r'name="amount" value="(\d+)"', preview.content.decode())[1]
    return client.post(url("buy_packs", personas), {"packs": packs, "code": code, "amount": amount}, follow=follow)


def order_transfer(connection, n=1):
    return Transfer.objects.create(
        integration=connection.integration,
        connection=connection,
        connection_label=connection.label,
        entity="orders",
        source_ref=str(n),
        reference=f"#{n}",
        status=Status.RUNNING,
        source_data={"id": n},
    )


def use_up(integration, used, included=None):
    usage = Usage.of(integration)
    usage.used = used
    if included is not None:
        usage.included = included
    usage.save()
    return usage


def sign(payload: bytes, secret: str = "whsec_localstripe") -> str:
    t = int(time.time())
    digest = hmac.new(secret.encode(), f"{t}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={t},v1={digest}"


def post_event(client, event: dict):
    body = json.dumps(event).encode()
    return client.post(
        reverse("receive_stripe_event"), body, content_type="application/json", HTTP_STRIPE_SIGNATURE=sign(body)
    )


# --- customer, card, subscription ----------------------------------------------------------------------------


def test_billing_information_card_and_subscription_with_one_item_per_module(personas, connected, stripe):
    sub = card_on_file(personas)
    customer = stripe.v1.customers.retrieve(sub.stripe_customer)
    assert (customer.name, customer.email) == ("Nordic Bikes ApS", "books@shop.example")
    assert customer.address.city == "Aarhus C" and customer.address.country == "DK"
    assert customer.metadata["vat_number"] == "DK12345678"
    assert customer.invoice_settings.default_payment_method == sub.payment_method
    assert (sub.card_brand, sub.card_last4, sub.card_expires) == ("visa", "4242", "12/2030")
    # The plan and one item per module (Shopify, e-conomic), ids kept on our row.
    assert sub.stripe_subscription.startswith("sub_")
    modules = {str(m.code) for m in personas.integration.modules.all()}
    assert set(sub.stripe_items) == {"plan", *modules}
    assert stripe.v1.plans.retrieve(sub.plan.stripe_plan_id).amount == sub.plan.monthly_price
    assert sub.status == "trialing"  # the trial runs on; Stripe's subscription ends its trial with ours

    # A module removed: its item goes; added again: a new item.
    shop = personas.integration.modules.get(kind="shopify")
    shop_item = sub.stripe_items[str(shop.code)]
    shop.delete()
    subscriptions.sync_items(sub)
    assert str(shop.code) not in sub.stripe_items
    with pytest.raises(stripe_sdk.InvalidRequestError):
        stripe.v1.subscription_items.retrieve(shop_item)


def test_billing_form_errors_are_shown_next_to_the_field_and_nothing_is_saved(personas, stripe):
    client = personas.client(personas.owner)
    response = client.post(url("save_billing_info", personas), {**BILLING, "country": "D1", "company": ""})
    body = response.content.decode()
    assert response.status_code == 400
    assert "Use the two-letter country code" in body and "This field is required." in body
    assert Subscription.of(personas.integration).stripe_customer == ""


def test_a_card_declined_when_attached_is_an_error_on_the_form(personas, stripe):
    client = personas.client(personas.owner)
    client.post(url("save_billing_info", personas), BILLING)
    response = client.post(
        url("save_card", personas), {"number": "4000000000000002", "expiry": "12/30", "cvc": "123"}
    )
    assert response.status_code == 400
    assert "card" in response.content.decode().lower()
    assert not Subscription.of(personas.integration).has_card


# --- packs -----------------------------------------------------------------------------------------------


def test_a_pack_bought_by_hand_grows_the_allowance_and_a_second_submit_buys_nothing(personas, stripe, committed):
    sub = card_on_file(personas)
    client = personas.client(personas.owner)
    page = client.get(url("subscription", personas)).content.decode()
    code = re.search(r'name="code" value="([0-9a-f-]{36})"', page)[1]
    with committed():
        response = buy(client, personas, 2, code)
    assert "Bought 200 orders for 158.00 kr." in response.content.decode()
    again = buy(client, personas, 2, code)
    assert "already made; nothing more was charged" in again.content.decode()
    pack = Pack.objects.get()
    assert (pack.status, pack.orders, pack.amount, pack.source) == ("paid", 200, 15800, "manual")
    intent = stripe.v1.payment_intents.retrieve(pack.payment_intent)
    assert (intent.status, intent.amount, intent.currency, intent.customer) == (
        "succeeded",
        15800,
        "dkk",
        sub.stripe_customer,
    )
    assert str(pack.code) == code == intent.metadata["pack"]
    assert Usage.of(personas.integration).bought == 200
    receipts = [m for m in mail.outbox if m.subject.startswith("Receipt")]
    assert len(receipts) == 1 and "158.00 kr." in receipts[0].body and receipts[0].to == ["owner@shop.example"]


def test_the_owner_sees_stripes_invoices_with_links_to_open_and_download(personas, stripe, monkeypatch):
    """localstripe makes no invoices for a trial: Stripe's answer is faked, shaped as its API documents it."""
    card_on_file(personas)
    invoice = {
        "id": "in_1", "object": "invoice", "number": "IEX-0001", "created": 1_795_000_000, "total": 69800,
        "status": "paid", "hosted_invoice_url": "https://invoice.stripe.com/i/acct_1/test_1",
        "invoice_pdf": "https://pay.stripe.com/invoice/acct_1/test_1/pdf",
    }  # fmt: skip
    asked = []

    def invoices(params):
        asked.append(params)
        return stripe_sdk.ListObject.construct_from({"object": "list", "data": [invoice]}, "sk_test")

    monkeypatch.setattr(stripe.v1.invoices, "list", invoices)
    page = personas.client(personas.owner).get(url("subscription", personas)).content.decode()
    assert asked[0]["customer"] == Subscription.of(personas.integration).stripe_customer
    assert "IEX-0001" in page and "698.00 kr." in page and "Paid" in page
    assert 'href="https://invoice.stripe.com/i/acct_1/test_1"' in page
    assert 'href="https://pay.stripe.com/invoice/acct_1/test_1/pdf"' in page
    viewer = personas.client(personas.viewer).get(url("subscription", personas)).content.decode()
    assert "IEX-0001" not in viewer  # invoices are the owners'


def test_without_a_card_buying_is_refused_with_a_reason(personas, stripe):
    response = personas.client(personas.owner).post(url("preview_packs", personas), {"packs": 1, "code": uuid4()})
    assert response.status_code == 400 and "Add a card before buying orders." in response.content.decode()
    assert not Pack.objects.exists()


def test_automatic_top_up_buys_one_pack_when_nothing_is_left(personas, connected, stripe, committed):
    card_on_file(personas)
    use_up(personas.integration, used=1000)
    transfer = order_transfer(connected)
    with committed():
        assert reserve(transfer) == ""
    [receipt] = [m for m in mail.outbox if m.subject.startswith("Receipt")]
    assert "Paid 79.00 kr. for 1 order pack (100 orders)" in receipt.body and "Automatic top-up" in receipt.body
    usage = Usage.objects.get()
    assert (usage.bought, usage.reserved, usage.used) == (100, 1, 1000)
    settle(transfer, created=True)
    usage.refresh_from_db()
    assert (usage.used, usage.reserved) == (1001, 0)
    pack = Pack.objects.get()
    assert (pack.source, pack.status, pack.amount) == ("automatic", "paid", 7900)
    # A settled transfer holds nothing; settling again changes nothing.
    settle(transfer, created=True)
    assert Usage.objects.get().used == 1001


def test_top_up_off_holds_and_tells_the_owners_once(personas, connected, stripe, committed):
    sub = card_on_file(personas)
    sub.topup_enabled = False
    sub.save()
    use_up(personas.integration, used=1000)
    mail.outbox.clear()
    with committed():
        reasons = [reserve(order_transfer(connected, n)) for n in (1, 2)]
    assert reasons == ["No orders left this month and automatic top-up is off"] * 2
    held = [m for m in mail.outbox if "held" in m.subject]
    assert len(held) == 1 and "buy a pack" in held[0].body
    assert not Pack.objects.exists()


def test_the_monthly_cap_stops_automatic_packs(personas, connected, stripe):
    sub = card_on_file(personas)
    sub.topup_cap = 1
    sub.save()
    use_up(personas.integration, used=1000)
    assert reserve(order_transfer(connected, 1)) == ""
    use_up(personas.integration, used=1100)
    Usage.objects.update(reserved=0)
    assert reserve(order_transfer(connected, 2)) == ("No orders left this month and the cap of 1 packs is reached")
    assert Pack.objects.count() == 1


def test_a_declined_card_holds_transfers_until_a_new_card_and_a_pack_bought_by_hand(
    personas, connected, stripe, committed
):
    """pm_card_chargeCustomerFail attaches, then every charge is declined."""
    sub = card_on_file(personas)
    subscriptions.set_card(sub, "pm_card_chargeCustomerFail")
    use_up(personas.integration, used=1000)
    mail.outbox.clear()
    from connections import pipeline

    transfer = pipeline.receive(connected, "7001", "#7001", timezone.now(), {"id": 7001})
    with committed():
        pipeline.process(transfer.pk)
    transfer.refresh_from_db()
    assert transfer.status == Status.HELD
    assert transfer.reason.startswith("No orders left this month; paying for an order pack failed:")
    assert transfer.source_data == {"id": 7001}  # its data kept
    pack = Pack.objects.get()
    assert pack.status == "failed" and pack.failure
    failed = [m for m in mail.outbox if m.subject.startswith("Automatic top-up could not pay for 100 orders")]
    assert (
        len(failed) == 1 and "/subscription/" in failed[0].body and failed[0].subject.endswith("orders are held")
    )
    page = personas.client(personas.owner).get(url("home", personas)).content.decode()
    assert "1 transfer held" in page and "Automatic top-up could not pay for an order pack" in page

    # The same card is not charged again for the next order.
    second = pipeline.receive(connected, "7002", "#7002", timezone.now(), {"id": 7002})
    pipeline.process(second.pk)
    assert Pack.objects.count() == 1
    assert Transfer.objects.get(pk=second.pk).status == Status.HELD

    # A working card, then a pack by hand: the held transfers are queued again.
    client = personas.client(personas.owner)
    with committed():
        client.post(url("save_card", personas), {"number": "4242424242424242", "expiry": "12/30", "cvc": "123"})
    assert set(Transfer.objects.values_list("status", flat=True)) == {Status.PENDING}  # the new card released them
    Transfer.objects.update(status=Status.HELD, held_for=HeldFor.ORDERS)  # as if they had been held again
    with committed():
        buy(client, personas, 1)
    assert Pack.objects.filter(status="paid").count() == 1
    assert set(Transfer.objects.values_list("status", flat=True)) == {Status.PENDING}
    assert Subscription.of(personas.integration).payment_problem == ""


@pytest.fixture
def first_answers_lost(stripe, monkeypatch):
    """Each payment's first answer is lost after Stripe made it. localstripe ignores Idempotency-Key: this keeps
    Stripe's promise (a repeated key gets the first answer). Returns the keys asked with, in order."""
    create = stripe.v1.payment_intents.create
    answers, keys = {}, []

    def flaky_create(params, options):
        key = options["idempotency_key"]
        keys.append(key)
        if key not in answers:
            answers[key] = create(params=params, options=options)
            raise stripe_sdk.APIConnectionError("connection reset after the charge")
        return answers[key]

    monkeypatch.setattr(stripe.v1.payment_intents, "create", flaky_create)
    return keys


def test_a_lost_answer_is_retried_with_the_same_key_and_buys_one_pack(
    personas, connected, stripe, first_answers_lost
):
    card_on_file(personas)
    keys = first_answers_lost
    use_up(personas.integration, used=1000)
    transfer = order_transfer(connected)
    with pytest.raises(stripe_sdk.StripeError):
        reserve(transfer)
    pack = Pack.objects.get()
    assert pack.status == "pending" and Usage.objects.get().bought == 0  # committed, unanswered
    # While a create is asking Stripe, the others wait rather than pay again...
    asked = Pack.objects.get().attempted
    Pack.objects.update(attempted=timezone.now())
    with pytest.raises(packs.PackInFlight):
        reserve(order_transfer(connected, 2))
    # ...but the call that lost its answer is over: a few seconds on, it is asked again, same key and amount.
    Pack.objects.update(attempted=asked)
    assert asked <= timezone.now() - packs.STALE_PAYMENT + packs.ASK_AGAIN_AFTER
    with pytest.raises(packs.PackInFlight):
        reserve(transfer)
    with time_machine.travel(timezone.now() + packs.ASK_AGAIN_AFTER):
        assert reserve(transfer) == ""
    assert keys == [f"iex-pack-{pack.code}"] * 2
    assert Pack.objects.get().status == "paid" and Usage.objects.get().bought == 100
    customer = Subscription.of(personas.integration).stripe_customer
    intents = stripe.v1.payment_intents.list(params={"limit": 100}).data
    assert len([i for i in intents if i.customer == customer]) == 1


def test_a_pack_bought_by_hand_whose_answer_was_lost_is_asked_about_again(
    personas, stripe, first_answers_lost, committed
):
    """The owner is not told "nothing was changed" (Stripe may have charged), and the beat asks again, same key."""
    card_on_file(personas)
    keys = first_answers_lost
    client = personas.client(personas.owner)
    response = buy(client, personas, 1)
    page = response.content.decode()
    assert "Stripe did not confirm the payment yet" in page and "Nothing was changed" not in page
    pack = Pack.objects.get()
    assert pack.status == "pending" and Usage.of(personas.integration).bought == 0
    again = buy(client, personas, 1)
    assert "being paid for right now" in again.content.decode() and Pack.objects.count() == 1
    assert packs.ask_again_about_lost_payments() == 0  # asked a moment ago
    with time_machine.travel(timezone.now() + packs.ASK_AGAIN_AFTER), committed():
        assert tasks.ask_again_about_packs() == 1
    pack.refresh_from_db()
    assert pack.status == "paid" and Usage.of(personas.integration).bought == 100
    assert keys == [pack.idempotency_key] * 2
    customer = Subscription.of(personas.integration).stripe_customer
    assert (
        len([i for i in stripe.v1.payment_intents.list(params={"limit": 100}).data if i.customer == customer]) == 1
    )
    assert len([m for m in mail.outbox if m.subject.startswith("Receipt")]) == 1
    assert packs.ask_again_about_lost_payments() == 0  # nothing pending is left


def test_the_pipeline_retries_a_transfer_when_stripe_cannot_be_reached(personas, connected, stripe, settings):
    from connections import pipeline

    card_on_file(personas)
    use_up(personas.integration, used=1000)
    settings.STRIPE_API_BASE = "http://127.0.0.1:9"
    stripe_api.client.cache_clear()
    transfer = pipeline.receive(connected, "7003", "#7003", timezone.now(), {"id": 7003})
    for _ in range(pipeline.MAX_ATTEMPTS + 1):
        Pack.objects.update(attempted=timezone.now() - packs.STALE_PAYMENT)  # Stripe asked again each time
        pipeline.process(transfer.pk)
        transfer.refresh_from_db()
        assert transfer.status == Status.RETRYING and "Stripe could not be reached" in transfer.reason
    # However long Stripe is away, the order waits (its attempts do not run out) and is never created twice.
    assert transfer.run_attempts == 0
    assert Usage.objects.get().reserved == 0 and Pack.objects.get().status == "pending"  # asked again later


def test_a_card_needing_authentication_holds_and_the_paid_webhook_releases(
    personas, connected, stripe, monkeypatch, committed
):
    """Off-session charges of 4000002760003184 fail with authentication_required (localstripe cannot say so)."""
    card_on_file(personas)
    use_up(personas.integration, used=1000)
    intent = stripe.v1.payment_intents.create(
        params={"amount": 7900, "currency": "dkk", "payment_method": "pm_card_visa", "confirm": False}
    )

    def needs_authentication(params, options):
        raise stripe_sdk.CardError(
            "This payment requires authentication",
            None,
            "authentication_required",
            json_body={"error": {"code": "authentication_required", "payment_intent": {"id": intent.id}}},
        )

    monkeypatch.setattr(stripe.v1.payment_intents, "create", needs_authentication)
    transfer = order_transfer(connected)
    assert "paying for an order pack failed: The bank asks the card holder" in reserve(transfer)
    pack = Pack.objects.get()
    assert (pack.status, pack.payment_intent) == ("action_required", intent.id)

    # The card holder confirms on Stripe's page; Stripe says so; we read the intent again before believing it.
    held = Transfer.objects.create(
        integration=personas.integration, connection=connected, connection_label="x", entity="orders",
        source_ref="h", status=Status.HELD, held_for=HeldFor.ORDERS,
    )  # fmt: skip
    paid = {"id": intent.id, "object": "payment_intent", "status": "succeeded"}
    monkeypatch.setattr(stripe_api, "retrieve_payment_intent", lambda _id: paid)
    client = personas.client(personas.viewer)
    event = {"id": "evt_1", "type": "payment_intent.succeeded", "data": {"object": {"id": intent.id}}}
    with committed():
        assert post_event(client, event).content == b"ok"
    assert post_event(client, event).content == b"duplicate"
    pack.refresh_from_db()
    assert pack.status == "paid" and Usage.objects.get().bought == 100
    assert Transfer.objects.get(pk=held.pk).status == Status.PENDING
    # A late failure event does not move a paid pack back.
    failed = {"id": intent.id, "object": "payment_intent", "status": "requires_payment_method"}
    monkeypatch.setattr(stripe_api, "retrieve_payment_intent", lambda _id: failed)
    event = {"id": "evt_2", "type": "payment_intent.payment_failed", "data": {"object": {"id": intent.id}}}
    post_event(client, event)
    assert Pack.objects.get().status == "paid" and Usage.objects.get().bought == 100


def bank_asks(intent_id, url="https://bank.example/3ds/abc"):
    """A payment intent whose bank asks the card holder to confirm (localstripe has no 3-D Secure)."""
    return {
        "id": intent_id,
        "object": "payment_intent",
        "status": "requires_action",
        "next_action": {"type": "redirect_to_url", "redirect_to_url": {"url": url}},
    }


def test_a_pack_bought_by_hand_goes_to_the_bank_when_it_asks_and_is_paid_when_back(
    personas, stripe, monkeypatch, committed
):
    card_on_file(personas)
    monkeypatch.setattr(stripe_api, "is_local_fake", lambda: False)  # Stripe itself: 3-D Secure, return_url
    sent = []

    def create(params, options):
        sent.append((params, options))
        return bank_asks("pi_3ds")

    monkeypatch.setattr(stripe.v1.payment_intents, "create", create)
    client = personas.client(personas.owner)
    response = buy(client, personas, 1, follow=False)
    assert response.status_code == 302 and response["Location"] == "https://bank.example/3ds/abc"
    pack = Pack.objects.get()
    [(params, options)] = sent
    # On-session: the bank may ask the owner, who is here; they come back to this pack's own address.
    assert "off_session" not in params and options["idempotency_key"] == pack.idempotency_key
    back = reverse("return_from_bank", args=[personas.integration.number, pack.code])
    assert params["return_url"].endswith(back)
    assert pack.status == "action_required" and not [m for m in mail.outbox if "failed" in m.subject]

    monkeypatch.setattr(stripe_api, "retrieve_payment_intent", lambda _id: {"id": _id, "status": "succeeded"})
    with committed():
        page = client.get(back, follow=True).content.decode()
    assert "Bought 100 orders" in page
    pack.refresh_from_db()
    assert pack.status == "paid" and Usage.of(personas.integration).bought == 100
    assert len([m for m in mail.outbox if m.subject.startswith("Receipt")]) == 1
    client.get(back)  # a reload buys nothing more
    assert Usage.of(personas.integration).bought == 100
    assert len([m for m in mail.outbox if m.subject.startswith("Receipt")]) == 1


def test_the_owners_are_told_when_a_retried_purchase_finds_the_bank_asking_for_them(
    personas, stripe, monkeypatch, committed
):
    """The owner who bought by hand was told "pending" and left; the retry finds the bank wants them: an email."""
    card_on_file(personas)
    monkeypatch.setattr(stripe_api, "is_local_fake", lambda: False)
    answers = iter([stripe_sdk.APIConnectionError("connection reset"), bank_asks("pi_later")])

    def create(params, options):
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    monkeypatch.setattr(stripe.v1.payment_intents, "create", create)
    client = personas.client(personas.owner)
    assert "did not confirm" in buy(client, personas, 1).content.decode()
    with time_machine.travel(timezone.now() + packs.ASK_AGAIN_AFTER), committed():
        packs.ask_again_about_lost_payments()
    assert Pack.objects.get().status == "action_required"
    [email] = [m for m in mail.outbox if m.subject.startswith("Confirm the payment for 100 orders")]
    assert "Confirm the payment" in email.body


def test_an_automatic_pack_the_bank_asks_for_is_confirmed_by_the_owner_from_the_email(
    personas, connected, stripe, monkeypatch, committed
):
    card_on_file(personas)
    monkeypatch.setattr(stripe_api, "is_local_fake", lambda: False)  # Stripe itself: 3-D Secure, return_url
    use_up(personas.integration, used=1000)

    def needs_authentication(params, options):
        assert params["off_session"] is True  # nobody is there to confirm
        raise stripe_sdk.CardError(
            "This payment requires authentication", None, "authentication_required",
            json_body={"error": {"code": "authentication_required", "payment_intent": {"id": "pi_auto"}}},
        )  # fmt: skip

    monkeypatch.setattr(stripe.v1.payment_intents, "create", needs_authentication)
    with committed():
        assert "The bank asks the card holder" in reserve(order_transfer(connected))
    pack = Pack.objects.get()
    email = next(m for m in mail.outbox if m.subject.startswith("Confirm the payment for 100 orders"))
    assert (
        "Confirm the payment" in email.body and f"/i/{personas.integration.number}/subscription/#buy" in email.body
    )
    held = order_transfer(connected, 2)
    Transfer.objects.filter(pk=held.pk).update(status=Status.HELD, held_for=HeldFor.ORDERS)
    # Stripe also says payment_failed about it: read again, it is still the card holder's to confirm, not a decline.
    failed_auth = {
        "id": "pi_auto", "object": "payment_intent", "status": "requires_payment_method",
        "last_payment_error": {"code": "authentication_required", "message": "Authentication required"},
    }  # fmt: skip
    monkeypatch.setattr(stripe_api, "retrieve_payment_intent", lambda _id: failed_auth)
    event = {"id": "evt_auth", "type": "payment_intent.payment_failed", "data": {"object": {"id": "pi_auto"}}}
    with committed():
        assert post_event(personas.client(personas.viewer), event).content == b"ok"
    pack.refresh_from_db()
    assert pack.status == "action_required"
    assert len([m for m in mail.outbox if m.subject.startswith("Confirm the payment for 100 orders")]) == 1

    confirm_url = reverse("confirm_pack", args=[personas.integration.number, pack.code])
    for other in (personas.admin, personas.viewer):
        assert personas.client(other).post(confirm_url).status_code == 403
    owner = personas.client(personas.owner)
    assert "Confirm payment" in owner.get(url("subscription", personas)).content.decode()
    confirmed = []

    def confirm(intent_id, params):
        confirmed.append((intent_id, params))
        return bank_asks(intent_id, "https://bank.example/3ds/auto")

    monkeypatch.setattr(stripe.v1.payment_intents, "confirm", confirm)
    response = owner.post(confirm_url)
    assert response.status_code == 302 and response["Location"] == "https://bank.example/3ds/auto"
    assert confirmed[0][0] == "pi_auto" and confirmed[0][1]["return_url"].endswith(f"/packs/{pack.code}/back/")

    monkeypatch.setattr(stripe_api, "retrieve_payment_intent", lambda _id: {"id": _id, "status": "succeeded"})
    with committed():
        owner.get(reverse("return_from_bank", args=[personas.integration.number, pack.code]))
    pack.refresh_from_db()
    assert pack.status == "paid" and Transfer.objects.get(pk=held.pk).status == Status.PENDING
    assert owner.post(confirm_url).status_code == 404  # paid: nothing left to confirm


def test_a_card_saved_in_checkout_is_taken_from_stripes_event_when_the_browser_never_comes_back(
    personas, stripe, monkeypatch, committed
):
    """localstripe has no Checkout: the session's answer is faked; the card and the subscription are real."""
    client = personas.client(personas.owner)
    assert client.post(url("save_billing_info", personas), BILLING).status_code == 302
    sub = Subscription.of(personas.integration)
    saved = stripe_api.test_card("4242424242424242", 12, 2030, "123")
    asked = []

    def session_card(session_id, customer_id):
        asked.append((session_id, customer_id))
        return saved if customer_id == sub.stripe_customer else ""

    monkeypatch.setattr(stripe_api, "setup_session_card", session_card)
    event = {
        "id": "evt_checkout",
        "type": "checkout.session.completed",
        "data": {
            "object": {
                "id": "cs_1",
                "object": "checkout.session",
                "mode": "setup",
                "customer": sub.stripe_customer,
            }
        },
    }
    with committed():
        assert post_event(client, event).content == b"ok"
    sub.refresh_from_db()
    assert asked == [("cs_1", sub.stripe_customer)]
    assert (sub.payment_method, sub.card_last4) == (saved, "4242") and sub.stripe_subscription
    # The browser comes back after all: nothing is saved twice.
    card_updated = sub.card_updated
    response = client.get(reverse("return_from_checkout", args=[personas.integration.number]) + "?session_id=cs_1")
    assert response.status_code == 302
    sub.refresh_from_db()
    assert sub.card_updated == card_updated


def test_stripe_webhooks_need_a_valid_signature(client, db):
    body = json.dumps({"id": "evt_x", "type": "invoice.paid", "data": {"object": {}}}).encode()
    response = client.post(
        reverse("receive_stripe_event"),
        body,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=sign(body, "wrong"),
    )
    assert response.status_code == 401 and not StripeEvent.objects.exists()
    unsigned = client.post(reverse("receive_stripe_event"), b"{", content_type="application/json")
    assert unsigned.status_code == 401 and not StripeEvent.objects.exists()
    broken = client.post(
        reverse("receive_stripe_event"), b"{", content_type="application/json", HTTP_STRIPE_SIGNATURE=sign(b"{")
    )
    assert broken.status_code == 400 and not StripeEvent.objects.exists()


def test_invoice_paid_reads_the_subscription_again_and_never_moves_its_period_back(personas, monkeypatch, client):
    sub = Subscription.of(personas.integration)
    end = datetime(2026, 12, 26, tzinfo=UTC)
    sub.stripe_subscription, sub.status, sub.current_period_end = "sub_1", "past_due", end
    sub.save()
    remote = {"id": "sub_1", "status": "active", "current_period_end": int((end + timedelta(days=31)).timestamp())}
    monkeypatch.setattr(stripe_api, "retrieve_subscription", lambda _id: remote)
    invoice = {"id": "in_1", "object": "invoice", "subscription": "sub_1"}
    post_event(client, {"id": "evt_paid", "type": "invoice.paid", "data": {"object": invoice}})
    sub.refresh_from_db()
    assert sub.status == "active" and sub.current_period_end == end + timedelta(days=31)
    # An older event arriving late, with Stripe (re-read) now saying an older period: nothing moves back.
    remote["current_period_end"] = int(end.timestamp())
    post_event(client, {"id": "evt_old", "type": "customer.subscription.updated", "data": {"object": remote}})
    sub.refresh_from_db()
    assert sub.current_period_end == end + timedelta(days=31)


# --- metering ------------------------------------------------------------------------------------------


def test_the_month_is_the_calendar_month_in_utc(personas, connected):
    with time_machine.travel(datetime(2026, 11, 30, 23, 59, 59, 999000, tzinfo=UTC), tick=False):
        last = order_transfer(connected, 1)
        assert reserve(last) == ""
        settle(last, created=True)
    with time_machine.travel(datetime(2026, 12, 1, 0, 0, 0, tzinfo=UTC), tick=False):
        first = order_transfer(connected, 2)
        assert reserve(first) == ""
        settle(first, created=True)
    usage = dict(Usage.objects.values_list("month", "used"))
    assert usage == {datetime(2026, 11, 1).date(): 1, datetime(2026, 12, 1).date(): 1}


def test_updates_and_failed_sends_do_not_count(personas, connected):
    transfer = order_transfer(connected)
    reserve(transfer)
    settle(transfer, created=False)
    assert (Usage.objects.get().used, Usage.objects.get().reserved) == (0, 0)
    # A transfer that holds a unit (its worker died) does not take a second one when it runs again.
    reserve(transfer)
    transfer.refresh_from_db()
    reserve(transfer)
    assert Usage.objects.get().reserved == 1


def test_warnings_at_80_and_100_percent_once_a_month(personas, connected, committed):
    use_up(personas.integration, used=7, included=10)
    mail.outbox.clear()
    Subscription.objects.filter(integration=personas.integration).update(topup_enabled=False)
    with committed():
        for n in range(4):
            transfer = order_transfer(connected, n)
            if reserve(transfer) == "":
                settle(transfer, created=True)
    subjects = [m.subject for m in mail.outbox]
    named = f"Integration no. {personas.integration.number}"  # no tenant-chosen text in a subject
    assert subjects.count(f"{named} has used 80% of this month's orders") == 1
    assert subjects.count(f"{named} has used 100% of this month's orders") == 1


# --- plan, cancel, period end -------------------------------------------------------------------------------


def test_an_upgrade_applies_at_once_and_releases_held_transfers(personas, connected, committed):
    Subscription.of(personas.integration, Plan.objects.get(code="basic"))
    use_up(personas.integration, used=200)
    held = order_transfer(connected)
    held.status, held.held_for = Status.HELD, HeldFor.ORDERS
    held.save()
    with committed():
        page = choose_plan(personas, "premium")
    assert "Your plan is now Premium: Premium, 5,000 orders a month." in page
    assert Usage.of(personas.integration).included == 5000
    assert Transfer.objects.get(pk=held.pk).status == Status.PENDING


@pytest.fixture
def plan_updates(stripe, monkeypatch):
    """Stripe's subscription updates, recorded. localstripe predates `proration_behavior` and `proration_date`: the
    fake keeps Stripe's answer (the item on the new plan) and leaves them out of what it forwards."""
    update, calls = stripe.v1.subscriptions.update, []

    def recording_update(subscription_id, params, options=None):
        calls.append((dict(params), options))
        forwarded = {k: v for k, v in params.items() if k not in ("proration_behavior", "proration_date")}
        return update(subscription_id, params=forwarded, options=options)

    monkeypatch.setattr(stripe.v1.subscriptions, "update", recording_update)
    return calls


def stripe_plan(stripe, sub):
    return stripe.v1.subscriptions.retrieve(sub.stripe_subscription)["items"].data[0].plan.id


def choose_plan(personas, code):
    """Change the plan as the page does: the preview, then its confirmation (the page after each, as text)."""
    client = personas.client(personas.owner)
    plan = Plan.objects.get(code=code).pk
    preview = client.post(url("preview_plan_change", personas), {"plan": plan}, follow=True).content.decode()
    token = re.search(r'name="token" value="([^"]+)"', preview)
    if token is None:
        return preview
    return client.post(url("change_plan", personas), {"token": token[1]}, follow=True).content.decode()


def test_a_downgrade_waits_for_the_end_of_the_paid_period(personas, stripe, plan_updates):
    """Stripe is told at once to bill the next period at the lower price, with nothing prorated: the period paid
    for is neither credited nor billed again at the old price."""
    sub = card_on_file(personas)
    sub.status = "active"
    sub.save()
    assert "Your plan changes to Basic on" in choose_plan(personas, "basic")
    sub.refresh_from_db()
    assert (sub.plan.code, sub.next_plan.code) == ("standard", "basic")
    [(params, options)] = plan_updates
    assert params["proration_behavior"] == "none"
    assert options["idempotency_key"] == f"iex-plan-{personas.integration.number}-0-basic-next"
    assert stripe_plan(stripe, sub) == "iex-plan-basic-19900"
    subscriptions.roll_periods(sub.current_period_end + timedelta(minutes=1))
    sub.refresh_from_db()
    assert (sub.plan.code, sub.next_plan) == ("basic", None)
    # Told again when the period ends, unprorated: our plan and Stripe's never stay apart.
    assert [p["proration_behavior"] for p, _ in plan_updates] == ["none", "none"]
    assert stripe_plan(stripe, sub) == "iex-plan-basic-19900"


@pytest.fixture
def previews(stripe, monkeypatch):
    """Stripe's invoice preview (localstripe has no /v1/invoices/create_preview), shaped as Stripe documents it
    since 2025 (`parent.subscription_item_details.proration`): the unused time of the old plan credited, the new
    plan for the rest of the period, and the next period's line, which is not charged now. Records the params."""
    asked = []

    def create_preview(params):
        asked.append(params)
        lines = [
            {
                "object": "line_item",
                "amount": -24950,
                "parent": {"subscription_item_details": {"proration": True}},
            },
            {"object": "line_item", "amount": 74950, "parent": {"subscription_item_details": {"proration": True}}},
            {
                "object": "line_item",
                "amount": 149900,
                "parent": {"subscription_item_details": {"proration": False}},
            },
        ]
        invoice = {"object": "invoice", "amount_due": 199900, "lines": {"object": "list", "data": lines}}
        return stripe_sdk.Invoice.construct_from(invoice, "sk_test")

    monkeypatch.setattr(stripe.v1.invoices, "create_preview", create_preview)
    return asked


def test_an_upgrade_shows_stripes_prorated_charge_and_confirming_charges_that_from_the_same_instant(
    personas, stripe, plan_updates, previews
):
    sub = card_on_file(personas)
    sub.status = "active"
    sub.save()
    client = personas.client(personas.owner)
    preview = client.post(url("preview_plan_change", personas), {"plan": Plan.objects.get(code="premium").pk})
    page = preview.content.decode()
    assert preview.status_code == 200 and not plan_updates  # nothing changed yet
    assert "Charged now</dt><dd><strong>500.00 kr.</strong>" in page  # -249.50 + 749.50; the next period is not
    assert f"the difference until {sub.current_period_end:%-d %B %Y}" in page
    assert "Change to Premium and pay 500.00 kr." in page
    [asked] = previews
    assert asked["subscription"] == sub.stripe_subscription and asked["customer"] == sub.stripe_customer
    assert asked["subscription_details"]["items"] == [
        {"id": sub.stripe_items["plan"], "plan": "iex-plan-premium-149900"}
    ]
    token = re.search(r'name="token" value="([^"]+)"', page)[1]
    done = client.post(url("change_plan", personas), {"token": token}, follow=True).content.decode()
    assert "Your plan is now Premium: Premium, 5,000 orders a month." in done
    [(params, _)] = plan_updates
    assert params["proration_behavior"] == "always_invoice"  # charged now, on its own invoice
    assert params["proration_date"] == asked["subscription_details"]["proration_date"]  # the charge shown
    # The same confirmation again (a second tab, a reload) changes nothing more.
    again = client.post(url("change_plan", personas), {"token": token}, follow=True).content.decode()
    assert "That price is out of date. Nothing was changed" in again and len(plan_updates) == 1


def test_a_plan_change_preview_is_confirmed_within_fifteen_minutes(personas, stripe, plan_updates, previews):
    sub = card_on_file(personas)
    sub.status = "active"
    sub.save()
    client = personas.client(personas.owner)
    page = client.post(url("preview_plan_change", personas), {"plan": Plan.objects.get(code="premium").pk})
    token = re.search(r'name="token" value="([^"]+)"', page.content.decode())[1]
    with time_machine.travel(timezone.now() + timedelta(minutes=16)):
        late = client.post(url("change_plan", personas), {"token": token}, follow=True).content.decode()
    assert "That price is out of date. Nothing was changed" in late and not plan_updates
    forged = client.post(url("change_plan", personas), {"token": token[:-2] + "xx"}, follow=True)
    assert "That price is out of date" in forged.content.decode() and not plan_updates
    assert Subscription.of(personas.integration).plan.code == "standard"


def test_after_a_downgrade_the_page_says_the_same_plan_everywhere(personas, stripe, plan_updates):
    """Issue 22: the message, the plan card and the usage card agree: the current plan until the renewal with its
    orders, the next plan from then with its orders."""
    sub = card_on_file(personas)
    Subscription.objects.filter(pk=sub.pk).update(status="active", plan=Plan.objects.get(code="premium"))
    Usage.objects.filter(integration=personas.integration).update(included=5000)
    preview = personas.client(personas.owner).post(
        url("preview_plan_change", personas), {"plan": Plan.objects.get(code="standard").pk}
    )
    page = preview.content.decode()
    end = f"{sub.current_period_end:%-d %B %Y}"
    assert "Charged now</dt><dd><strong>0.00 kr.</strong>" in page and f"from {end}" in page
    assert "Change to Standard</button>" in page
    done = choose_plan(personas, "standard")
    said = f"Premium until {end}, 5,000 orders a month; Standard from {end}, 1,000 orders a month."
    assert f"Your plan changes to Standard on {end}: {said}" in done
    assert f'<p id="plan-summary">{said}</p>' in done
    assert "<dt>Included this month</dt><dd>5,000</dd>" in done
    assert "Your plan is now" not in done


def test_a_downgrade_in_the_trial_applies_at_once_and_this_month_keeps_its_orders(personas):
    Subscription.of(personas.integration, Plan.objects.get(code="premium"))
    Usage.of(personas.integration)
    preview = personas.client(personas.owner).post(
        url("preview_plan_change", personas), {"plan": Plan.objects.get(code="standard").pk}
    )
    page = preview.content.decode()
    assert "Charged now</dt><dd><strong>0.00 kr.</strong>" in page and "Free trial" in page
    done = html.unescape(choose_plan(personas, "standard"))
    next_month = (month_of(timezone.now()) + timedelta(days=32)).replace(day=1)
    kept = (
        f"Standard, 1,000 orders a month. {timezone.now():%B} keeps the 5,000 orders it started with; "
        f"Standard's 1,000 count from {next_month:%-d %B %Y}."
    )
    assert f"Your plan is now Standard: {kept}" in done and f'<p id="plan-summary">{kept}</p>' in done


def test_a_downgrade_taken_back_or_overtaken_by_an_upgrade_bills_from_what_was_paid(
    personas, stripe, plan_updates, previews
):
    sub = card_on_file(personas)
    sub.status = "active"
    sub.save()
    choose_plan(personas, "basic")
    assert "You stay on Standard:" in choose_plan(personas, "standard")
    sub.refresh_from_db()
    assert sub.next_plan is None and stripe_plan(stripe, sub) == "iex-plan-standard-49900"
    assert [p.get("proration_behavior") for p, _ in plan_updates] == ["none", "none"]
    plan_updates.clear()
    choose_plan(personas, "basic")
    # Stripe bills Basic next: it cannot preview an upgrade from Standard, paid for. The downgrade goes first.
    taken_back = choose_plan(personas, "premium")
    assert "You stay on Standard:" in taken_back and not previews
    assert "Your plan is now Premium:" in choose_plan(personas, "premium")
    sub.refresh_from_db()
    assert (sub.plan.code, sub.next_plan) == ("premium", None)
    # Back to Standard (paid for) without proration, then Standard to Premium prorated.
    assert [(p["items"][0]["plan"], p.get("proration_behavior")) for p, _ in plan_updates] == [
        ("iex-plan-basic-19900", "none"),
        ("iex-plan-standard-49900", "none"),
        ("iex-plan-premium-149900", "always_invoice"),
    ]
    assert len({o["idempotency_key"] for _, o in plan_updates}) == 3
    assert stripe_plan(stripe, sub) == "iex-plan-premium-149900"


def test_a_plan_change_failing_halfway_leaves_our_plan_and_stripes_together_by_the_period_end(
    personas, stripe, plan_updates, monkeypatch
):
    sub = card_on_file(personas)
    sub.status = "active"
    sub.save()
    choose_plan(personas, "basic")
    recording = stripe.v1.subscriptions.update

    def fails_on_premium(subscription_id, params, options=None):
        if params["items"][0]["plan"].startswith("iex-plan-premium"):
            raise stripe_sdk.APIConnectionError("Stripe went away")
        return recording(subscription_id, params=params, options=options)

    monkeypatch.setattr(stripe.v1.subscriptions, "update", fails_on_premium)
    sub.refresh_from_db()
    with pytest.raises(stripe_sdk.APIConnectionError):  # back to Standard in Stripe, then the error
        subscriptions.change_plan(sub, Plan.objects.get(code="premium"))
    sub.refresh_from_db()
    assert (sub.plan.code, sub.next_plan.code, stripe_plan(stripe, sub)) == (
        "standard",
        "basic",
        "iex-plan-standard-49900",
    )
    subscriptions.roll_periods(sub.current_period_end + timedelta(minutes=1))
    sub.refresh_from_db()
    assert (sub.plan.code, stripe_plan(stripe, sub)) == ("basic", "iex-plan-basic-19900")


def test_a_card_saved_while_stripe_fails_to_subscribe_is_kept_and_subscribed_by_the_hourly_roll(
    personas, stripe, monkeypatch, committed
):
    create = stripe.v1.subscriptions.create
    monkeypatch.setattr(
        stripe.v1.subscriptions, "create", Mock(side_effect=stripe_sdk.APIConnectionError("Stripe is away"))
    )
    sub = card_on_file(personas)
    assert sub.has_card and not sub.stripe_subscription
    page = personas.client(personas.owner).get(url("subscription", personas)).content.decode()
    assert "ending in 4242" in page
    monkeypatch.setattr(stripe.v1.subscriptions, "create", create)
    with committed():
        assert subscriptions.roll_periods(sub.trial_ends + timedelta(hours=1)) == 2  # subscribed, trial ended
    sub.refresh_from_db()
    personas.integration.refresh_from_db()
    assert sub.stripe_subscription and sub.status == "active" and personas.integration.active
    assert not [m for m in mail.outbox if "deactivated" in m.subject]


def test_a_subscription_whose_answer_was_lost_is_taken_up_not_made_twice(personas, stripe, monkeypatch):
    create = stripe.v1.subscriptions.create

    def made_but_lost(params, options):
        create(params=params, options=options)
        raise stripe_sdk.APIConnectionError("connection reset after the subscription was made")

    monkeypatch.setattr(stripe.v1.subscriptions, "create", made_but_lost)
    sub = card_on_file(personas)
    assert not sub.stripe_subscription
    monkeypatch.setattr(stripe.v1.subscriptions, "create", Mock(side_effect=AssertionError("made twice")))
    subscriptions.roll_periods()
    sub.refresh_from_db()
    remote = stripe.v1.subscriptions.list(params={"customer": sub.stripe_customer}).data
    assert [s.id for s in remote] == [sub.stripe_subscription]


def test_the_hourly_roll_goes_on_past_a_subscription_stripe_fails_on(personas, stripe, monkeypatch, committed):
    from tests.conftest import make_user

    failing = card_on_file(personas)  # first in line: its trial ends, and Stripe fails when it is read again
    other = Integration.create_for(make_user("other@shop.example"), "Other Shop")  # its trial ends, no card
    Subscription.objects.filter(pk__in=[failing.pk, Subscription.of(other).pk]).update(
        trial_ends=timezone.now() - timedelta(hours=2)
    )
    monkeypatch.setattr(
        subscriptions, "refresh_from_stripe", Mock(side_effect=stripe_sdk.APIConnectionError("Stripe is away"))
    )
    with committed():
        assert subscriptions.roll_periods() == 1
    other.refresh_from_db()
    personas.integration.refresh_from_db()
    assert not other.active and personas.integration.active


def test_cancel_at_period_end_deactivates_and_tells_the_owners(personas, stripe, committed):
    sub = card_on_file(personas)
    sub.status = "active"
    sub.save()
    personas.client(personas.owner).post(url("cancel_subscription", personas))
    sub.refresh_from_db()
    assert sub.cancel_at_period_end
    assert stripe.v1.subscriptions.retrieve(sub.stripe_subscription).cancel_at_period_end is True
    mail.outbox.clear()
    with committed():
        subscriptions.roll_periods(sub.current_period_end + timedelta(minutes=1))
    personas.integration.refresh_from_db()
    assert not personas.integration.active and Subscription.of(personas.integration).status == "canceled"
    assert [m.subject for m in mail.outbox] == [
        f"Integration no. {personas.integration.number} is deactivated: the subscription was cancelled and its "
        "period has ended"
    ]


def test_a_trial_without_a_card_ends_the_integration(personas, committed):
    sub = Subscription.of(personas.integration)
    with committed():
        subscriptions.roll_periods(sub.trial_ends + timedelta(hours=1))
    personas.integration.refresh_from_db()
    assert not personas.integration.active
    assert "the trial has ended and there is no card on file" in mail.outbox[-1].subject


# --- access ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["save_billing_info", "save_card", "preview_packs", "buy_packs", "set_topup",
             "preview_plan_change", "change_plan", "cancel_subscription"],
)  # fmt: skip
def test_only_owners_change_the_subscription(personas, name):
    for user in (personas.admin, personas.viewer):
        assert (
            personas.client(user).post(url(name, personas), {"plan": 1, "packs": 1, "code": uuid4()}).status_code
            == 403
        )


def test_others_see_the_subscription_read_only(personas):
    body = personas.client(personas.viewer).get(url("subscription", personas)).content.decode()
    assert "Only owners can change the subscription" in body
    assert "Buy orders" not in body and "Billing information" not in body
    assert "Standard plan" in body and "of 1,000" in body


def test_top_up_settings_are_validated(personas):
    client = personas.client(personas.owner)
    response = client.post(url("set_topup", personas), {"topup_enabled": "on", "topup_cap": 500})
    assert response.status_code == 400 and "At most 100 packs a month." in response.content.decode()
    client.post(url("set_topup", personas), {"topup_cap": 3})
    sub = Subscription.of(personas.integration)
    sub.refresh_from_db()
    assert (sub.topup_enabled, sub.topup_cap) == (False, 3)


# --- usage_report ---------------------------------------------------------------------------------------------


def test_usage_report_prints_each_integration(personas, connected, capsys):
    use_up(personas.integration, used=12)
    Usage.objects.filter(integration=personas.integration).update(bought=100)
    held = order_transfer(connected)
    Transfer.objects.filter(pk=held.pk).update(status=Status.HELD, held_for=HeldFor.ORDERS)
    call_command("usage_report")
    out = capsys.readouterr().out
    number = personas.integration.number
    assert f"{number:<8} {'Nordic Bikes':<30} {1000:>9} {100:>8} {12:>8} {1:>6}" in out
    assert "usage_report: " in out and "used 12, held 1" in out
    call_command("usage_report", "--month", "2020-01")
    assert "0 integrations" in capsys.readouterr().out
    # A past month counts the orders held that were received in it, not those held today.
    last = month_of(timezone.now() - timedelta(days=31))
    Usage.objects.create(integration=personas.integration, month=last, included=1000, used=1000)
    call_command("usage_report", "--month", f"{last:%Y-%m}")
    assert "used 1000, held 0" in capsys.readouterr().out
    with pytest.raises(Exception, match="YYYY-MM"):
        call_command("usage_report", "--month", "jan")


def test_adding_and_removing_a_system_keeps_the_stripe_items_in_step(personas, stripe, committed, eager):
    sub = card_on_file(personas)
    assert set(sub.stripe_items) == {"plan"}
    client = personas.client(personas.admin)
    with committed():
        client.post(reverse("add_system", args=[personas.integration.number]), {"kind": "economic"})
    module = personas.integration.modules.get()
    sub.refresh_from_db()
    item = stripe.v1.subscription_items.retrieve(sub.stripe_items[str(module.code)])
    assert item.plan.id == "iex-module-economic-9900" and item.plan.amount == 9900
    page = personas.client(personas.owner).get(url("subscription", personas)).content.decode()
    assert "e-conomic module" in page and "598.00 kr." in page  # 499 + 99 a month
    with committed():  # removing is the owners' (it changes the price)
        personas.client(personas.owner).post(
            reverse("remove_module", args=[personas.integration.number, module.code])
        )
    sub.refresh_from_db()
    assert set(sub.stripe_items) == {"plan"}


def test_held_transfers_of_an_inactive_integration_wait_for_its_activation(personas, connected, committed):
    held = order_transfer(connected)
    Transfer.objects.filter(pk=held.pk).update(status=Status.HELD, held_for=HeldFor.ORDERS)
    personas.integration.set_active(False, personas.owner)
    assert Transfer.release_held(personas.integration, "a paid order pack") == 0  # not released into a skip
    assert Transfer.objects.get(pk=held.pk).status == Status.HELD
    with committed():
        personas.client(personas.admin).post(
            reverse("set_integration_active", args=[personas.integration.number]), {"active": "on"}
        )
    assert Transfer.objects.get(pk=held.pk).status == Status.PENDING


def test_an_ended_subscription_is_not_activated_again_without_a_card(personas, stripe):
    sub = Subscription.of(personas.integration)
    subscriptions.end(sub, "the trial has ended and there is no card on file")
    client = personas.client(personas.owner)
    response = client.post(
        reverse("set_integration_active", args=[personas.integration.number]), {"active": "on"}, follow=True
    )
    personas.integration.refresh_from_db()
    assert not personas.integration.active and "The subscription has ended" in response.content.decode()
    # A card subscribes again: a new Stripe subscription, paid from today.
    sub = card_on_file(personas)
    assert sub.status == "active" and sub.stripe_subscription.startswith("sub_")
    client.post(reverse("set_integration_active", args=[personas.integration.number]), {"active": "on"})
    personas.integration.refresh_from_db()
    assert personas.integration.active


def test_a_document_saved_before_a_failure_counts_once(personas, connected, monkeypatch):
    """e-conomic saved the draft, then booking it failed for a while: that create counts, the retry updates."""
    import dataclasses

    from connections import flows, pipeline
    from iex.lib import http

    calls = []

    def send(connection, data, mapping, record, claim):
        calls.append(mapping.target_ref)
        if not mapping.target_ref:
            mapping.target_ref = "31"
            raise http.TransientError("e-conomic answered 503 while booking")
        from connections.common import Outcome

        return Outcome("updated", "", "updated", "31")

    monkeypatch.setitem(flows.FLOWS, "orders", dataclasses.replace(flows.FLOWS["orders"], send=send))
    transfer = pipeline.receive(connected, "7004", "#7004", timezone.now(), {"id": 7004})
    pipeline.process(transfer.pk)
    assert Transfer.objects.get(pk=transfer.pk).status == Status.RETRYING
    Transfer.objects.filter(pk=transfer.pk).update(due_at=timezone.now())
    pipeline.process(transfer.pk)
    assert calls == ["", "31"]
    usage = Usage.objects.get()
    assert (usage.used, usage.reserved) == (1, 0)


def test_the_subscription_period_and_the_invoices_subscription_in_both_api_shapes():
    assert stripe_api.period_end({"current_period_end": 5}) == 5
    assert stripe_api.period_end({"items": {"data": [{"current_period_end": 7}, {"current_period_end": 9}]}}) == 9
    assert stripe_api.invoice_subscription({"subscription": "sub_1"}) == "sub_1"
    parent = {"parent": {"subscription_details": {"subscription": "sub_2"}}}
    assert stripe_api.invoice_subscription(parent) == "sub_2"
    assert stripe_api.invoice_subscription({"parent": None}) == ""


def test_held_transfers_are_released_when_orders_are_available_again(personas, connected, committed):
    """A new month (or a pack paid elsewhere): beat's release_held finds the allowance back and queues them."""
    from billing.tasks import release_held

    held = order_transfer(connected)
    Transfer.objects.filter(pk=held.pk).update(status=Status.HELD, held_for=HeldFor.ORDERS)
    use_up(personas.integration, used=1000)
    assert release_held() == 0 and Transfer.objects.get(pk=held.pk).status == Status.HELD
    next_month = month_of(timezone.now() + timedelta(days=32))
    with time_machine.travel(datetime.combine(next_month, datetime.min.time(), UTC), tick=False), committed():
        assert release_held() == 1
    assert Transfer.objects.get(pk=held.pk).status == Status.PENDING
