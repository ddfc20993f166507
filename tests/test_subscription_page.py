"""Issue 22: a Subscription page that adds up and can be handed to an accountant. Packs bought by hand show their
amount before they are charged; every charge is a Stripe invoice listed with its PDF, and a pack's receipt links
its invoice; Stripe not answering is said, not taken for "no invoices"; a declined purchase by hand says it was
declined and why, and says orders are held only when they are.

localstripe lacks the invoice endpoints a pack's invoice needs (finalize, attach_payment) and makes no invoices for
a trial: those answers are faked here, shaped as Stripe's API reference documents them, refusing what Stripe
refuses. Plan change previews are tested in test_billing.py next to the plan changes."""

import html
import re
from datetime import timedelta
from decimal import Decimal
from uuid import uuid4

import pytest
import stripe as stripe_sdk
import time_machine
from django.core import mail
from django.core.cache import cache
from django.utils import timezone
from hypothesis import given
from hypothesis import strategies as st

from billing import packs, stripe_api
from billing.models import Pack, Plan, Subscription, Usage, kroner, month_of
from tests.test_billing import buy, card_on_file, order_transfer, post_event, url
from transferlog.models import HeldFor, Status, Transfer

pytestmark = pytest.mark.django_db


@pytest.fixture
def committed(django_capture_on_commit_callbacks):
    return lambda: django_capture_on_commit_callbacks(execute=True)


# --- packs bought by hand: the amount first -------------------------------------------------------------------


def test_buying_by_hand_shows_the_amount_first_and_charges_only_when_confirmed(personas, stripe, committed):
    sub = card_on_file(personas)
    assert sub.in_trial
    client = personas.client(personas.owner)
    code = uuid4()
    preview = client.post(url("preview_packs", personas), {"packs": 2, "code": code})
    page = html.unescape(preview.content.decode())
    assert preview.status_code == 200 and not Pack.objects.exists()  # nothing charged yet
    assert "Pay 158.00 kr.</button>" in page and "Charged now</dt><dd><strong>158.00 kr.</strong>" in page
    trial_ends = f"{sub.trial_ends:%-d %B %Y}"
    assert (
        f"You are in the free trial until {trial_ends}. A pack bought now is charged at once all the same" in page
    )
    assert "it does not end the trial" in page
    amount = re.search(r'name="amount" value="(\d+)"', page)[1]
    assert amount == "15800"
    with committed():
        done = client.post(url("buy_packs", personas), {"packs": 2, "code": code, "amount": amount}, follow=True)
    assert "Bought 200 orders for 158.00 kr." in done.content.decode()
    assert Pack.objects.get().amount == 15800
    assert Subscription.of(personas.integration).in_trial  # the pack did not end the trial


def test_the_page_says_a_pack_in_the_trial_is_charged_at_once(personas):
    page = personas.client(personas.owner).get(url("subscription", personas)).content.decode()
    assert "During the free trial too a pack is charged at once; it does not end the trial." in page


def test_a_price_changed_since_it_was_shown_is_not_charged(personas, stripe):
    card_on_file(personas)
    client = personas.client(personas.owner)
    code = uuid4()
    client.post(url("preview_packs", personas), {"packs": 1, "code": code})
    Plan.objects.filter(code="standard").update(pack_price=8900)
    response = client.post(url("buy_packs", personas), {"packs": 1, "code": code, "amount": 7900})
    page = response.content.decode()
    assert response.status_code == 409 and not Pack.objects.exists()
    assert "The price changed since it was shown. Nothing was charged" in page and "Pay 89.00 kr." in page


@pytest.mark.parametrize("name", ["preview_packs", "preview_plan_change"])
def test_the_confirm_steps_are_the_owners(personas, name):
    assert personas.client(personas.outsider).post(url(name, personas), {"plan": 1, "packs": 1}).status_code == 404
    assert personas.client(personas.owner).get(url(name, personas)).status_code == 405
    for user in (personas.admin, personas.viewer):
        assert personas.client(user).post(url(name, personas), {"plan": 1, "packs": 1}).status_code == 403


def test_the_plan_change_preview_without_javascript_is_a_plain_form(personas):
    """The page's plan form posts to the preview, whose confirmation is a plain form with the token."""
    client = personas.client(personas.owner)
    page = client.get(url("subscription", personas)).content.decode()
    assert f'action="{url("preview_plan_change", personas)}"' in page
    assert f'action="{url("preview_packs", personas)}"' in page
    preview = client.post(url("preview_plan_change", personas), {"plan": Plan.objects.get(code="premium").pk})
    body = preview.content.decode()
    assert f'<form method="post" action="{url("change_plan", personas)}">' in body and 'name="token"' in body
    assert Subscription.of(personas.integration).plan.code == "standard"  # nothing changed by the preview


# --- invoices -------------------------------------------------------------------------------------------------


def stripe_invoice(n, status="paid", reason="subscription_cycle", total=69800):
    """An invoice as Stripe's API reference shows it (the fields the page reads)."""
    return {
        "id": f"in_{n:04d}", "object": "invoice", "number": None if status == "draft" else f"IEX-{n:04d}",
        "created": 1_795_000_000 + n, "total": total, "amount_due": total, "status": status,
        "billing_reason": reason, "customer": "cus_1",
        "hosted_invoice_url": None if status == "draft" else f"https://invoice.stripe.com/i/acct_1/test_{n}",
        "invoice_pdf": None if status == "draft" else f"https://pay.stripe.com/invoice/acct_1/test_{n}/pdf",
    }  # fmt: skip


@pytest.fixture
def listed(stripe, monkeypatch):
    """Stripe's invoice list: a draft and 14 invoices, newest first, `limit` at a time after `starting_after`."""
    everything = [stripe_invoice(15, status="draft", reason="manual")] + [
        stripe_invoice(n, reason="manual" if n % 2 else "subscription_cycle") for n in range(14, 0, -1)
    ]
    asked = []

    def list_invoices(params):
        asked.append(params)
        ids = [inv["id"] for inv in everything]
        start = ids.index(params["starting_after"]) + 1 if params.get("starting_after") else 0
        data = everything[start : start + params["limit"]]
        more = start + params["limit"] < len(everything)
        return stripe_sdk.ListObject.construct_from({"object": "list", "data": data, "has_more": more}, "sk_test")

    monkeypatch.setattr(stripe.v1.invoices, "list", list_invoices)
    return asked


def test_the_invoices_list_every_charge_with_its_pdf_a_page_at_a_time(personas, listed):
    card_on_file(personas)
    client = personas.client(personas.owner)
    page = client.get(url("subscription", personas)).content.decode()
    assert "IEX-0014" in page and "IEX-0004" in page and "IEX-0003" not in page
    assert "in_0015" not in page  # a draft is not a charge
    assert "Order pack" in page and "Subscription period" in page and "698.00 kr." in page
    assert 'href="https://pay.stripe.com/invoice/acct_1/test_13/pdf"' in page
    assert 'href="https://invoice.stripe.com/i/acct_1/test_13"' in page
    assert '<a href="?invoices_after=in_0004#invoices">Older invoices</a>' in page
    client.get(url("subscription", personas))
    assert len(listed) == 1  # kept a minute: the page does not ask Stripe on every view
    older = client.get(url("subscription", personas) + "?invoices_after=in_0004").content.decode()
    assert listed[-1]["starting_after"] == "in_0004"
    assert (
        "IEX-0003" in older and "IEX-0001" in older and "IEX-0014" not in older and "Older invoices" not in older
    )


def test_an_invoice_event_from_stripe_lists_the_invoices_anew(personas, listed):
    sub = card_on_file(personas)
    client = personas.client(personas.owner)
    client.get(url("subscription", personas))
    event = {
        "id": "evt_inv",
        "type": "invoice.paid",
        "data": {"object": {"id": "in_0013", "customer": sub.stripe_customer}},
    }
    assert post_event(client, event).content == b"ok"
    client.get(url("subscription", personas))
    assert len(listed) == 2


def test_stripe_not_answering_is_said_and_not_taken_for_no_invoices(personas, stripe, monkeypatch):
    card_on_file(personas)

    def down(params):
        raise stripe_sdk.APIConnectionError("Could not connect to Stripe")

    monkeypatch.setattr(stripe.v1.invoices, "list", down)
    page = html.unescape(personas.client(personas.owner).get(url("subscription", personas)).content.decode())
    assert "Invoices cannot be read from Stripe now" in page and "No invoices yet" not in page
    assert "Stripe, which takes IEX's payments, does not answer now." in page


def test_home_says_stripe_does_not_answer_while_a_payment_waits_for_it(personas):
    integration = personas.integration
    Subscription.of(integration)
    client = personas.client(personas.owner)
    pack = Pack.objects.create(
        integration=integration, month=month_of(timezone.now()), orders=100, amount=7900, source="manual"
    )
    said = "Stripe, which takes IEX's payments, does not answer now."
    assert said not in client.get(url("home", personas)).content.decode()  # a payment a second old is not late
    Pack.objects.filter(pk=pack.pk).update(created=timezone.now() - timedelta(minutes=2))
    assert said in client.get(url("home", personas)).content.decode()
    assert said in client.get(url("subscription", personas)).content.decode()
    Pack.objects.filter(pk=pack.pk).update(status="paid")
    assert said not in client.get(url("home", personas)).content.decode()


class FakeInvoices:
    """Stripe's invoice endpoints a pack's invoice uses, as documented: a draft (numbered, with a page and a PDF
    only when finalized), invoice items only on a draft, finalize only a draft, attach_payment only to an open
    invoice (a succeeded payment pays it at once). `fail` names a call to fail once with no answer."""

    def __init__(self, stripe, monkeypatch, payments):
        self.invoices, self.calls, self.fail, self.payments = {}, [], set(), payments
        monkeypatch.setattr(stripe.v1.invoices, "create", self.create)
        monkeypatch.setattr(stripe.v1.invoices, "retrieve", self.retrieve)
        monkeypatch.setattr(stripe.v1.invoices, "finalize_invoice", self.finalize_invoice)
        monkeypatch.setattr(stripe.v1.invoices, "attach_payment", self.attach_payment)
        monkeypatch.setattr(stripe.v1.invoice_items, "create", self.create_item)

    def _call(self, name, *args):
        self.calls.append((name, *args))
        if name in self.fail:
            self.fail.discard(name)
            raise stripe_sdk.APIConnectionError("connection reset")

    def _answer(self, inv):
        return stripe_sdk.Invoice.construct_from(dict(inv), "sk_test")

    def create(self, params, options):
        self._call("create", params, options)
        n = len(self.invoices) + 1
        inv = {**stripe_invoice(n, status="draft", reason="manual", total=0), "metadata": params["metadata"]}
        self.invoices[inv["id"]] = inv
        return self._answer(inv)

    def retrieve(self, invoice_id):
        self._call("retrieve", invoice_id)
        return self._answer(self.invoices[invoice_id])

    def create_item(self, params, options):
        self._call("invoice_items.create", params, options)
        inv = self.invoices[params["invoice"]]
        if inv["status"] != "draft":
            raise stripe_sdk.InvalidRequestError("You can only add invoice items to draft invoices.", "invoice")
        inv["total"] = inv["amount_due"] = inv["total"] + params["amount"]
        return stripe_sdk.InvoiceItem.construct_from({"id": "ii_1", "object": "invoiceitem"}, "sk_test")

    def finalize_invoice(self, invoice_id, params, options):
        self._call("finalize", invoice_id, params)
        inv = self.invoices[invoice_id]
        if inv["status"] != "draft":
            raise stripe_sdk.InvalidRequestError("This invoice is already finalized.", None)
        n = int(invoice_id.removeprefix("in_"))
        inv.update({k: v for k, v in stripe_invoice(n, status="open", reason="manual").items() if k != "total"})
        return self._answer(inv)

    def attach_payment(self, invoice_id, params, options):
        self._call("attach_payment", invoice_id, params)
        inv = self.invoices[invoice_id]
        if inv["status"] != "open":
            raise stripe_sdk.InvalidRequestError("The invoice is not open.", "payment_intent")
        if self.payments(params["payment_intent"]) == "succeeded":
            inv.update(status="paid", amount_due=inv["total"])
        return self._answer(inv)


@pytest.fixture
def stripe_invoices(stripe, monkeypatch):
    return FakeInvoices(stripe, monkeypatch, lambda pi: stripe.v1.payment_intents.retrieve(pi).status)


def test_a_paid_pack_gets_its_invoice_and_the_receipt_links_it(personas, stripe, stripe_invoices, committed):
    sub = card_on_file(personas)
    with committed():
        buy(personas.client(personas.owner), personas, 1)
    pack = Pack.objects.get()
    assert pack.status == "paid"
    [(_, params, options)] = [c for c in stripe_invoices.calls if c[0] == "create"]
    assert params["customer"] == sub.stripe_customer and params["metadata"]["pack"] == str(pack.code)
    # Never charged by Stripe itself, and none of the subscription's pending items swept into it.
    assert (params["auto_advance"], params["pending_invoice_items_behavior"]) == (False, "exclude")
    assert options["idempotency_key"] == f"iex-pack-invoice-{pack.code}"
    [(_, item, _)] = [c for c in stripe_invoices.calls if c[0] == "invoice_items.create"]
    assert (item["amount"], item["currency"]) == (7900, "dkk")
    [(_, invoice_id, attached)] = [c for c in stripe_invoices.calls if c[0] == "attach_payment"]
    assert attached == {"payment_intent": pack.payment_intent}
    assert stripe_invoices.invoices[invoice_id]["status"] == "paid"
    assert (pack.invoice, pack.invoice_url) == (invoice_id, "https://invoice.stripe.com/i/acct_1/test_1")
    [receipt] = [m for m in mail.outbox if m.subject.startswith("Receipt")]
    assert "Open invoice IEX-0001: https://invoice.stripe.com/i/acct_1/test_1" in receipt.body
    assert "Invoice IEX-0001 is paid. Its PDF: https://pay.stripe.com/invoice/acct_1/test_1/pdf" in receipt.body


def test_an_invoice_stripe_failed_to_make_is_finished_later_from_where_it_stopped(
    personas, stripe, stripe_invoices, committed
):
    card_on_file(personas)
    stripe_invoices.fail.add("finalize")
    with committed():
        buy(personas.client(personas.owner), personas, 1)
    pack = Pack.objects.get()
    assert pack.status == "paid" and pack.invoice and not pack.invoice_url  # the draft kept, not finished
    [receipt] = [m for m in mail.outbox if m.subject.startswith("Receipt")]
    assert "The invoice follows on the Subscription page, under Invoices." in receipt.body
    assert packs.invoice_paid_packs() == 0  # a pack just paid is left to the run that pays it
    waits = "1 paid order pack waits for its invoice from Stripe; IEX asks Stripe every minute, and it is listed here then."
    client = personas.client(personas.owner)
    assert waits in client.get(url("subscription", personas)).content.decode()
    with time_machine.travel(timezone.now() + timedelta(minutes=3)):
        assert packs.invoice_paid_packs() == 1
        assert packs.invoice_paid_packs() == 0  # done: asked no more
    pack.refresh_from_db()
    assert pack.invoice_url and stripe_invoices.invoices[pack.invoice]["status"] == "paid"
    assert waits not in client.get(url("subscription", personas)).content.decode()
    assert len([c for c in stripe_invoices.calls if c[0] == "create"]) == 1  # the same invoice, finished
    assert len([c for c in stripe_invoices.calls if c[0] == "invoice_items.create"]) == 1


# --- a declined purchase by hand ----------------------------------------------------------------------------


def declining_card(personas):
    sub = card_on_file(personas)
    from billing import subscriptions

    subscriptions.set_card(sub, "pm_card_chargeCustomerFail")  # attaches, then every charge is declined
    return sub


def test_a_declined_purchase_by_hand_says_it_was_declined_and_nothing_about_held_orders(
    personas, connected, stripe, committed
):
    """Issue 22: 8 of 1,000 orders used, a pack bought by hand declined: the email said orders were held."""
    declining_card(personas)
    Usage.objects.filter(integration=personas.integration).update(used=8)
    mail.outbox.clear()
    client = personas.client(personas.owner)
    with committed():
        page = html.unescape(buy(client, personas, 1).content.decode())
    said = "The purchase was declined: the bank declined the card. Nothing was charged. Update the card, then try again."
    assert said in page
    [email] = mail.outbox
    number = personas.integration.number
    assert email.subject == f"Your purchase of 100 orders for integration no. {number} was declined"
    assert "was declined: the bank declined the card. Nothing was charged." in email.body
    assert "Update the card, then try again." in email.body and f"/i/{number}/subscription/#card" in email.body
    assert "held" not in email.body.lower() and "held" not in email.subject.lower()
    home = html.unescape(client.get(url("home", personas)).content.decode())
    assert "Your purchase of 100 orders was declined: the bank declined the card.</strong>" in home
    assert "Update the card</a>, then try again." in home
    assert "buy orders by hand" not in home and ".." not in home.split("declined", 1)[1][:60]


def test_a_declined_purchase_by_hand_while_orders_are_held_says_they_are(personas, connected, stripe, committed):
    declining_card(personas)
    Usage.objects.filter(integration=personas.integration).update(used=1000)
    held = order_transfer(connected)
    Transfer.objects.filter(pk=held.pk).update(status=Status.HELD, held_for=HeldFor.ORDERS)
    mail.outbox.clear()
    with committed():
        buy(personas.client(personas.owner), personas, 1)
    [email] = mail.outbox
    assert email.subject.endswith("was declined: orders are held")
    assert "new orders are held, not lost" in email.body


@pytest.mark.parametrize(
    "decline_code, said",
    [
        ("insufficient_funds", "the card has insufficient funds"),
        ("expired_card", "the card has expired"),
        # Stripe advises telling no more than "declined" for these.
        ("stolen_card", "the bank declined the card"),
        ("fraudulent", "the bank declined the card"),
    ],
)
def test_why_a_card_was_declined_is_said_in_iexs_words(
    personas, stripe, monkeypatch, committed, decline_code, said
):
    card_on_file(personas)

    def declined(params, options):
        raise stripe_sdk.CardError(
            "Your card was declined.", None, "card_declined",
            json_body={"error": {"code": "card_declined", "decline_code": decline_code, "payment_intent": {"id": "pi_x"}}},
        )  # fmt: skip

    monkeypatch.setattr(stripe.v1.payment_intents, "create", declined)
    with committed():
        page = html.unescape(buy(personas.client(personas.owner), personas, 1).content.decode())
    assert f"The purchase was declined: {said}. Nothing was charged." in page
    assert Pack.objects.get().failure == said


# --- money ------------------------------------------------------------------------------------------------------


@given(st.integers(min_value=-(10**15), max_value=10**15))
def test_kroner_are_exact_at_any_size(ore):
    shown = kroner(ore)
    assert shown.endswith(" kr.") and re.fullmatch(r"-?\d{1,3}(,\d{3})*\.\d{2} kr\.", shown)
    assert Decimal(shown.removesuffix(" kr.").replace(",", "")) * 100 == ore


@given(st.lists(st.tuples(st.integers(-(10**9), 10**9), st.booleans()), max_size=20))
def test_the_charge_now_is_the_sum_of_the_proration_lines_only(lines):
    as_stripe = [
        {"amount": amount, "parent": {"subscription_item_details": {"proration": proration}}}
        for amount, proration in lines
    ]
    charged = stripe_api.charged_now([(line["amount"], stripe_api.is_proration(line)) for line in as_stripe])
    assert charged == sum(amount for amount, proration in lines if proration)
    old_shape = [{"amount": amount, "proration": proration} for amount, proration in lines]
    assert charged == stripe_api.charged_now(
        [(line["amount"], stripe_api.is_proration(line)) for line in old_shape]
    )


@given(count=st.integers(1, 50), pack_price=st.integers(0, 10**7), pack_orders=st.integers(1, 10**4))
def test_the_amount_confirmed_is_the_amount_charged(count, pack_price, pack_orders):
    plan = Plan(pack_price=pack_price, pack_orders=pack_orders)
    orders, amount = packs.price(plan, count)
    assert (orders, amount) == (count * pack_orders, count * pack_price)
    assert (
        Decimal(kroner(amount).removesuffix(" kr.").replace(",", "")) == Decimal(count) * Decimal(pack_price) / 100
    )


def test_a_quote_is_what_the_pack_costs_on_the_plan(personas):
    Subscription.of(personas.integration, Plan.objects.get(code="premium"))
    cache.clear()
    quote = packs.quote(personas.integration, 3)
    premium = Plan.objects.get(code="premium")
    assert (quote.orders, quote.amount) == (3 * premium.pack_orders, 3 * premium.pack_price)
    assert quote.trial_ends == Subscription.of(personas.integration).trial_ends
