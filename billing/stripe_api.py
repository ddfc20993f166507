"""Every call IEX makes to Stripe goes through this module.

One client (timeouts and network retries from the SDK); every call that moves money takes an idempotency key
built from our own row, so a lost answer followed by a retry is replayed by Stripe instead of charging twice.
In development and tests STRIPE_API_BASE points the SDK at localstripe.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any

import stripe
from django.conf import settings

from billing.models import kroner

StripeError = stripe.StripeError
CardError = stripe.CardError


def field(obj: Any, name: str, default: Any = None) -> Any:
    """A field of a Stripe object (or of a plain dict, as events carry them); `default` when absent."""
    if isinstance(obj, dict):
        return obj.get(name, default)
    return getattr(obj, name, default)


@cache
def client() -> Any:  # a stripe.StripeClient; its objects are read as dicts here, as Stripe documents them
    base: Any = {"api": settings.STRIPE_API_BASE} if settings.STRIPE_API_BASE else None
    return stripe.StripeClient(
        settings.STRIPE_SECRET_KEY,
        base_addresses=base,
        max_network_retries=2,  # the SDK retries a lost answer with the same idempotency key
        http_client=stripe.RequestsClient(timeout=10),
    )


def is_local_fake() -> bool:
    """localstripe takes raw card numbers; real Stripe takes cards only through Checkout or Elements."""
    return bool(settings.STRIPE_API_BASE)


def ensure_plan(plan_id: str, name: str, amount: int) -> str:
    """A monthly price in DKK, made on first use. (Stripe's Plan objects: localstripe has no /v1/prices.)"""
    try:
        client().v1.plans.retrieve(plan_id)
    except stripe.InvalidRequestError:
        client().v1.plans.create(
            params={
                "id": plan_id,
                "amount": amount,
                "currency": "dkk",
                "interval": "month",
                "product": {"name": name},
            }
        )
    return plan_id


def save_customer(customer_id: str, fields: dict[str, Any], integration_number: str) -> str:
    """Create or update the integration's customer; returns its id."""
    params: dict[str, Any] = {
        "name": fields["company"],
        "email": fields["invoice_email"],
        "address": {
            "line1": fields["address"],
            "postal_code": fields["postcode"],
            "city": fields["city"],
            "country": fields["country"],
        },
        "metadata": {"integration": integration_number, "vat_number": fields["vat_number"]},
    }
    if customer_id:
        client().v1.customers.update(customer_id, params=params)
        return customer_id
    return client().v1.customers.create(params=params).id


def customer_exists(customer_id: str) -> bool:
    try:
        customer = client().v1.customers.retrieve(customer_id)
    except stripe.InvalidRequestError:
        return False
    return not getattr(customer, "deleted", False)


@dataclass(frozen=True)
class Card:
    payment_method: str
    brand: str
    last4: str
    expires: str


def test_card(number: str, exp_month: int, exp_year: int, cvc: str) -> str:
    """A payment method from a raw test card number: only where the Stripe API is the local fake."""
    assert is_local_fake(), "raw card numbers are for the local fake only"
    card = {"number": number, "exp_month": exp_month, "exp_year": exp_year, "cvc": cvc}
    return client().v1.payment_methods.create(params={"type": "card", "card": card}).id


def attach_card(customer_id: str, payment_method: str) -> Card:
    """Attach the card and make it the customer's default for invoices and packs."""
    pm = client().v1.payment_methods.attach(payment_method, params={"customer": customer_id})
    client().v1.customers.update(customer_id, params={"invoice_settings": {"default_payment_method": pm.id}})
    card = pm.card
    assert card is not None
    return Card(pm.id, card.brand, card.last4, f"{card.exp_month:02d}/{card.exp_year}")


def setup_session(customer_id: str, success_url: str, cancel_url: str) -> str:
    """Stripe Checkout in setup mode: the card holder enters the card on Stripe's page. Returns its URL."""
    session = client().v1.checkout.sessions.create(
        params={
            "mode": "setup",
            "customer": customer_id,
            "payment_method_types": ["card"],
            "success_url": success_url + "?session_id={CHECKOUT_SESSION_ID}",
            "cancel_url": cancel_url,
        }
    )
    assert session.url
    return session.url


def setup_session_card(session_id: str, customer_id: str) -> str:
    """The payment method a finished setup session saved for this customer; "" when it saved none."""
    session = client().v1.checkout.sessions.retrieve(session_id, params={"expand": ["setup_intent"]})
    intent = field(session, "setup_intent")
    if field(session, "customer") != customer_id or not intent or isinstance(intent, str):
        return ""
    pm = field(intent, "payment_method")
    return pm if isinstance(pm, str) else field(pm, "id") or ""


def create_subscription(
    customer_id: str, plan_id: str, trial_end: int | None, integration_number: str, key: str
) -> tuple:
    """A subscription with the plan as its first item; returns (subscription id, plan item id, period end)."""
    params: dict[str, Any] = {
        "customer": customer_id,
        "items": [{"plan": plan_id}],
        "metadata": {"integration": integration_number},
    }
    if trial_end:
        params["trial_end"] = trial_end
    sub = client().v1.subscriptions.create(
        params=params,
        options={"idempotency_key": key},
    )
    return sub.id, sub["items"].data[0].id, period_end(sub)


def existing_subscription(customer_id: str, integration_number: str) -> tuple | None:
    """A live subscription IEX made for this integration's customer before, as create_subscription returns it: a
    create whose answer was lost is taken up, not made twice (its key may have expired, or its request changed)."""
    found = client().v1.subscriptions.list(params={"customer": customer_id, "limit": 10})
    for sub in found.data:
        ours = field(field(sub, "metadata") or {}, "integration") == integration_number
        if ours and field(sub, "status") in ("trialing", "active", "incomplete", "past_due", "unpaid"):
            return sub.id, sub["items"].data[0].id, period_end(sub)
    return None


def add_item(subscription_id: str, plan_id: str, key: str) -> str:
    """One more item (a module) on the subscription, prorated by Stripe's default."""
    item = client().v1.subscription_items.create(
        params={"subscription": subscription_id, "plan": plan_id},
        options={"idempotency_key": key},
    )
    return item.id


def remove_item(item_id: str) -> None:
    try:
        client().v1.subscription_items.delete(item_id)
    except stripe.InvalidRequestError as exc:
        if exc.http_status != 404:
            raise


def change_plan(
    subscription_id: str,
    item_id: str,
    plan_id: str,
    *,
    prorate: bool | None,
    key: str,
    proration_date: int | None = None,
) -> str:
    """Replace the plan item. Prorated: the difference for the rest of the period is invoiced and charged at once
    (`always_invoice`: Stripe's default would only add it to the next renewal's invoice), counted from
    `proration_date` when given, so the charge is the one the owner was shown. Not prorated: nothing now, the next
    period is billed at the new plan's price. None: Stripe's default, for a trial, where there is nothing to
    prorate. Returns the plan item's id (a new one where the API replaces the item)."""
    params: dict[str, Any] = {"items": [{"id": item_id, "plan": plan_id}]}
    if prorate:
        params["proration_behavior"] = "always_invoice"
        if proration_date:
            params["proration_date"] = proration_date
    elif prorate is False:
        params["proration_behavior"] = "none"
    sub = client().v1.subscriptions.update(subscription_id, params=params, options={"idempotency_key": key})
    for item in sub["items"].data:
        if item.plan and item.plan.id == plan_id:
            return item.id
    return item_id


def preview_plan_change(
    customer_id: str, subscription_id: str, item_id: str, plan_id: str, proration_date: int
) -> int:
    """What `change_plan(prorate=True, proration_date=...)` would charge now, in øre: the proration lines of
    Stripe's invoice preview (credit for the unused time of the old plan, the new plan for the rest of the
    period). Lines of the next period, if the preview holds them, are not charged now."""
    preview = client().v1.invoices.create_preview(
        params={
            "customer": customer_id,
            "subscription": subscription_id,
            "subscription_details": {
                "items": [{"id": item_id, "plan": plan_id}],
                "proration_behavior": "always_invoice",
                "proration_date": proration_date,
            },
        }
    )
    lines = field(field(preview, "lines") or {}, "data") or []
    return charged_now([(field(line, "amount") or 0, is_proration(line)) for line in lines])


def charged_now(lines: list[tuple[int, bool]]) -> int:
    """The sum of the proration lines (amount in øre, is a proration) of a preview."""
    return sum(amount for amount, proration in lines if proration)


def is_proration(line: Any) -> bool:
    """An invoice line for part of a period: `proration` in older API versions, under `parent` since 2025."""
    if field(line, "proration"):
        return True
    parent = field(line, "parent") or {}
    details = field(parent, "subscription_item_details") or field(parent, "invoice_item_details") or {}
    return bool(field(details, "proration"))


def set_cancel_at_period_end(subscription_id: str, cancel: bool) -> None:
    client().v1.subscriptions.update(subscription_id, params={"cancel_at_period_end": cancel})


def period_end(subscription: Any) -> int | None:
    """When the paid period ends: on the subscription in older API versions, on its items since 2025."""
    if end := field(subscription, "current_period_end"):
        return end
    items = field(field(subscription, "items") or {}, "data") or []
    return max((field(item, "current_period_end") or 0 for item in items), default=None) or None


def invoice_subscription(invoice: Any) -> str:
    """The subscription an invoice bills: `subscription` in older API versions, under `parent` since 2025."""
    if subscription := field(invoice, "subscription"):
        return subscription if isinstance(subscription, str) else field(subscription, "id")
    details = field(field(invoice, "parent") or {}, "subscription_details") or {}
    return field(details, "subscription") or ""


def retrieve_subscription(subscription_id: str) -> Any:
    return client().v1.subscriptions.retrieve(subscription_id)


def retrieve_payment_intent(payment_intent_id: str) -> Any:
    return client().v1.payment_intents.retrieve(payment_intent_id)


@dataclass(frozen=True)
class Payment:
    status: str  # "paid", "failed", "action_required" or "pending"
    payment_intent: str = ""
    message: str = ""
    bank_url: str = ""  # on-session: the bank's page where the card holder confirms, then comes back


ASKS_THE_HOLDER = "The bank asks the card holder to confirm the payment"


def charge(
    customer_id: str,
    payment_method: str,
    amount: int,
    description: str,
    key: str,
    metadata: dict,
    return_url: str = "",
) -> Payment:
    """Charge the card on file. Without `return_url` off-session (automatic top-up: nobody is there to confirm);
    with it on-session (the owner is buying): a bank that asks the card holder to confirm gives a page to send them
    to, and they come back to `return_url`. Declines and cards needing their holder are answers, not errors;
    a network failure after the SDK's retries raises StripeError (the caller retries with the same key)."""
    params: dict[str, Any] = {
        "amount": amount,
        "currency": "dkk",
        "customer": customer_id,
        "payment_method": payment_method,
        "confirm": True,
        "metadata": {**metadata, "description": description},
    }
    if not return_url:
        params["off_session"] = True
    elif not is_local_fake():  # localstripe predates return_url (and has no 3-D Secure)
        params["return_url"] = return_url
    return _answer(lambda: client().v1.payment_intents.create(params=params, options={"idempotency_key": key}))


def confirm(payment_intent_id: str, payment_method: str, return_url: str) -> Payment:
    """Confirm, on-session, a payment the bank wanted the card holder for. A payment intent succeeds once at most,
    so confirming twice never charges twice."""
    params = {"payment_method": payment_method}
    if not is_local_fake():
        params["return_url"] = return_url
    return _answer(lambda: client().v1.payment_intents.confirm(payment_intent_id, params=params))


def _answer(call: Callable[[], Any]) -> Payment:
    try:
        intent = call()
    except stripe.CardError as exc:
        error = exc.error
        intent_id = ""
        if error is not None and error.payment_intent is not None:
            intent_id = error.payment_intent.id
        if exc.code == "authentication_required":
            return Payment("action_required", intent_id, ASKS_THE_HOLDER)
        decline_code = error.decline_code if error is not None else None
        return Payment("failed", intent_id, why_declined(exc.code, decline_code))
    except (stripe.APIConnectionError, stripe.RateLimitError, stripe.IdempotencyError):
        raise  # no answer (or not yet, or the same key is in use right now): ask again later with the same key
    except stripe.StripeError as exc:
        # An answer that asking again with the same key would only repeat (Stripe replays even a 500).
        return Payment("failed", "", f"Stripe refused the payment: {exc.user_message or exc}")
    return payment_of(intent)


def payment_of(intent: Any) -> Payment:
    status, intent_id = field(intent, "status"), field(intent, "id")
    if status == "succeeded":
        return Payment("paid", intent_id)
    if status in ("requires_action", "requires_confirmation"):
        next_action = field(intent, "next_action") or {}
        bank_url = field(field(next_action, "redirect_to_url") or {}, "url") or ""
        return Payment("action_required", intent_id, ASKS_THE_HOLDER, bank_url)
    if status == "processing":
        return Payment("pending", intent_id)
    error = field(intent, "last_payment_error") or {}
    if field(error, "code") == "authentication_required":
        # An off-session payment the bank wants the card holder for: not a decline, it can still be confirmed.
        return Payment("action_required", intent_id, ASKS_THE_HOLDER)
    return Payment("failed", intent_id, why_declined(field(error, "code"), field(error, "decline_code")))


# Why a card was declined, in IEX's words, by Stripe's decline code, then its error code. Stripe advises telling the
# card holder no more than "declined" for a lost or stolen card (or fraud): those fall to the default.
DECLINED_BECAUSE = {
    "insufficient_funds": "the card has insufficient funds",
    "expired_card": "the card has expired",
    "incorrect_cvc": "the card's security code (CVC) is wrong",
    "incorrect_number": "the card number is wrong",
    "card_velocity_exceeded": "the card's spending limit is reached",
    "withdrawal_count_limit_exceeded": "the card's spending limit is reached",
    "processing_error": "the card could not be processed just now",
    "currency_not_supported": "the card cannot pay in Danish kroner",
    "card_not_supported": "the card does not accept this kind of payment",
}
DECLINED = "the bank declined the card"


def why_declined(code: str | None, decline_code: str | None = None) -> str:
    return DECLINED_BECAUSE.get(decline_code or "") or DECLINED_BECAUSE.get(code or "") or DECLINED


@dataclass(frozen=True)
class Invoice:
    id: str
    number: str
    created: datetime
    total: int  # in øre
    status: str  # Stripe's: draft, open, paid, uncollectible, void
    what: str
    url: str  # the hosted invoice page
    pdf: str

    @property
    def total_display(self) -> str:
        return kroner(self.total)


# What an invoice bills, by Stripe's `billing_reason`; IEX's own (packs) are "manual".
BILLED_FOR = {
    "subscription_create": "Subscription, first period",
    "subscription_cycle": "Subscription period",
    "subscription_update": "Plan change",
    "manual": "Order pack",
}


def invoice_of(inv: Any) -> Invoice:
    return Invoice(
        id=field(inv, "id"),
        number=field(inv, "number") or field(inv, "id"),
        created=datetime.fromtimestamp(field(inv, "created"), UTC),
        total=field(inv, "total") or 0,
        status=field(inv, "status") or "",
        what=BILLED_FOR.get(field(inv, "billing_reason") or "", "Invoice"),
        url=field(inv, "hosted_invoice_url") or "",
        pdf=field(inv, "invoice_pdf") or "",
    )


def invoices(customer_id: str, limit: int, starting_after: str = "") -> tuple[list[Invoice], str]:
    """The customer's invoices, newest first, a page at a time: (invoices, the id to read the older ones after, ""
    when none follow). Drafts are left out: they are not a charge yet and have no number."""
    params: dict[str, Any] = {"customer": customer_id, "limit": limit}
    if starting_after:
        params["starting_after"] = starting_after
    found = client().v1.invoices.list(params=params)
    listed = [invoice_of(inv) for inv in found.data]
    older = listed[-1].id if listed and field(found, "has_more") else ""
    return [inv for inv in listed if inv.status != "draft"], older


def draft_pack_invoice(customer_id: str, description: str, metadata: dict, key: str) -> str:
    """The draft of a pack's invoice; returns its id. It takes no pending items of the subscription (a proration
    waiting for the renewal stays there) and is never charged by Stripe: the pack's payment is attached to it."""
    inv = client().v1.invoices.create(
        params={
            "customer": customer_id,
            "currency": "dkk",
            "auto_advance": False,
            "collection_method": "charge_automatically",
            "pending_invoice_items_behavior": "exclude",
            "description": description,
            "metadata": metadata,
        },
        options={"idempotency_key": key},
    )
    return inv.id


def complete_pack_invoice(
    invoice_id: str, customer_id: str, amount: int, description: str, payment_intent: str, key: str
) -> Invoice:
    """Take a pack's invoice from where it is to paid: its line, finalized (numbered, with its PDF), then the pack's
    payment attached (a succeeded payment pays it at once). Each step is done only if Stripe has not done it yet,
    so a run cut off halfway is finished by the next one."""
    inv = client().v1.invoices.retrieve(invoice_id)
    if field(inv, "status") == "draft":
        if not field(inv, "total"):
            client().v1.invoice_items.create(
                params={
                    "customer": customer_id,
                    "invoice": invoice_id,
                    "amount": amount,
                    "currency": "dkk",
                    "description": description,
                },
                options={"idempotency_key": f"{key}-line"},
            )
        inv = client().v1.invoices.finalize_invoice(
            invoice_id, params={"auto_advance": False}, options={"idempotency_key": f"{key}-finalize"}
        )
    if field(inv, "status") == "open":
        inv = client().v1.invoices.attach_payment(
            invoice_id, params={"payment_intent": payment_intent}, options={"idempotency_key": f"{key}-attach"}
        )
    return invoice_of(inv)


def construct_event(payload: bytes, signature: str) -> Any:
    """Verify Stripe's signature (raises stripe.SignatureVerificationError or ValueError) and parse the event."""
    return stripe.Webhook.construct_event(payload, signature, settings.STRIPE_WEBHOOK_SECRET)
