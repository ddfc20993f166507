"""Stripe's webhooks: verified, handled once per event id, and never trusted for money state on their own —
the object is read again from Stripe, and a state only moves forwards (a paid pack stays paid)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import stripe
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from billing import invoices, packs, stripe_api, subscriptions
from billing.models import Pack, StripeEvent, Subscription
from iex.lib.ids import is_uuid

logger = logging.getLogger(__name__)


@csrf_exempt
@require_POST
def receive_stripe_event(request: HttpRequest) -> HttpResponse:
    try:
        event = stripe_api.construct_event(request.body, request.headers.get("Stripe-Signature", ""))
    except stripe.SignatureVerificationError:
        return HttpResponse("Invalid signature\n", status=401, content_type="text/plain")
    except ValueError:
        return HttpResponse("Invalid JSON\n", status=400, content_type="text/plain")
    try:
        event_id, kind, obj = str(event["id"]), str(event["type"]), event["data"]["object"]
        with transaction.atomic():
            _, new = StripeEvent.objects.get_or_create(event_id=event_id, defaults={"type": kind})
            if new:
                # An error rolls the event back too: Stripe sends it again, and it is handled then.
                handle(kind, obj)
    except (KeyError, TypeError, AttributeError) as exc:
        # Signed by Stripe's secret but not an event IEX can read: nothing is kept, and it is said once, here.
        logger.warning("Stripe event %r is malformed: %r", event.get("id") if hasattr(event, "get") else "", exc)
        return HttpResponse("Malformed event\n", status=400, content_type="text/plain")
    return HttpResponse("ok" if new else "duplicate", content_type="text/plain")


def handle(kind: str, obj: Any) -> None:
    """Dispatch an event on its type; events IEX does not handle are answered 2xx and forgotten."""
    if handler := HANDLERS.get(kind):
        handler(obj)


def _payment_intent(event_object: Any) -> None:
    intent_id = stripe_api.field(event_object, "id")
    intent = stripe_api.retrieve_payment_intent(intent_id)  # read again from Stripe
    code = stripe_api.field(stripe_api.field(intent, "metadata") or {}, "pack", "")
    found = Pack.objects.select_related("integration")
    pack = found.filter(payment_intent=intent_id).first() or (
        found.filter(code=code).first() if is_uuid(code) else None
    )
    if pack is None:
        logger.info("payment intent %s is not one of our packs", intent_id)
        return
    payment = stripe_api.payment_of(intent)
    packs.apply_payment(pack, payment.status, payment.message, intent_id)


def _invoice(invoice: Any) -> None:
    customer = stripe_api.field(invoice, "customer")
    if isinstance(customer, str) and (sub := Subscription.objects.filter(stripe_customer=customer).first()):
        invoices.forget(sub)  # its status changed: the page lists it as it is now
    if subscription_id := stripe_api.invoice_subscription(invoice):
        _refresh_subscription(subscription_id)


def _subscription(subscription: Any) -> None:
    _refresh_subscription(stripe_api.field(subscription, "id"))


def _refresh_subscription(subscription_id: str) -> None:
    sub = Subscription.objects.select_related("integration").filter(stripe_subscription=subscription_id).first()
    if sub is not None:
        subscriptions.refresh_from_stripe(sub)  # read again from Stripe


def _checkout_session(session: Any) -> None:
    """A card the owner saved on Stripe's page (setup mode), also when their browser never came back to card_done."""
    if stripe_api.field(session, "mode") != "setup":
        return
    customer_id = stripe_api.field(session, "customer")
    sub = Subscription.objects.select_related("integration").filter(stripe_customer=customer_id).first()
    if sub is None:
        return
    payment_method = stripe_api.setup_session_card(stripe_api.field(session, "id"), customer_id)  # read again
    if payment_method and payment_method != sub.payment_method:
        subscriptions.set_card(sub, payment_method)


# The events IEX acts on, by type; every handler reads its object again from Stripe before money state changes.
HANDLERS: dict[str, Callable[[Any], None]] = {
    "payment_intent.succeeded": _payment_intent,
    "payment_intent.payment_failed": _payment_intent,
    "payment_intent.processing": _payment_intent,
    "invoice.paid": _invoice,
    "invoice.payment_succeeded": _invoice,
    "invoice.payment_failed": _invoice,
    "invoice.finalized": _invoice,
    "invoice.voided": _invoice,
    "customer.subscription.created": _subscription,
    "customer.subscription.updated": _subscription,
    "customer.subscription.deleted": _subscription,
    "customer.subscription.paused": _subscription,
    "customer.subscription.resumed": _subscription,
    "customer.subscription.trial_will_end": _subscription,
    "customer.subscription.pending_update_applied": _subscription,
    "customer.subscription.pending_update_expired": _subscription,
    "checkout.session.completed": _checkout_session,
}
