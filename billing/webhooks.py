"""Stripe's webhooks: verified, handled once per event id, and never trusted for money state on their own —
the object is read again from Stripe, and a state only moves forwards (a paid pack stays paid)."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import stripe
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from billing import metering, stripe_api, subscriptions
from billing.models import Pack, StripeEvent, Subscription

logger = logging.getLogger(__name__)


@csrf_exempt
@require_POST
def stripe_webhook(request: HttpRequest) -> HttpResponse:
    try:
        event = stripe_api.construct_event(request.body, request.headers.get("Stripe-Signature", ""))
    except stripe.SignatureVerificationError:
        return HttpResponse("Invalid signature\n", status=401, content_type="text/plain")
    except ValueError:
        return HttpResponse("Invalid JSON\n", status=400, content_type="text/plain")
    with transaction.atomic():
        _, new = StripeEvent.objects.get_or_create(event_id=event.id, defaults={"type": event.type})
        if new:
            # An error rolls the event back too: Stripe sends it again, and it is handled then.
            handle(event.type, event.data.object)
    return HttpResponse("ok" if new else "duplicate", content_type="text/plain")


def handle(kind: str, obj: Any) -> None:
    if kind in ("payment_intent.succeeded", "payment_intent.payment_failed", "payment_intent.processing"):
        _payment_intent(stripe_api.field(obj, "id"))
    elif kind in ("invoice.paid", "invoice.payment_succeeded", "invoice.payment_failed"):
        if subscription := stripe_api.invoice_subscription(obj):
            _subscription(subscription)
    elif kind.startswith("customer.subscription."):
        _subscription(stripe_api.field(obj, "id"))
    elif kind == "checkout.session.completed" and stripe_api.field(obj, "mode") == "setup":
        _card_saved_in_checkout(stripe_api.field(obj, "id"), stripe_api.field(obj, "customer"))


def _payment_intent(intent_id: str) -> None:
    intent = stripe_api.retrieve_payment_intent(intent_id)
    code = stripe_api.field(stripe_api.field(intent, "metadata") or {}, "pack", "")
    packs = Pack.objects.select_related("integration")
    pack = packs.filter(payment_intent=intent_id).first() or (
        packs.filter(code=code).first() if _uuid(code) else None
    )
    if pack is None:
        logger.info("payment intent %s is not one of our packs", intent_id)
        return
    payment = stripe_api.payment_of(intent)
    metering.apply_payment(pack, payment.status, payment.message, intent_id)


def _uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def _subscription(subscription_id: str) -> None:
    sub = Subscription.objects.select_related("integration").filter(stripe_subscription=subscription_id).first()
    if sub is not None:
        subscriptions.refresh_from_stripe(sub)


def _card_saved_in_checkout(session_id: str, customer_id: str) -> None:
    """A card the owner saved on Stripe's page, also when their browser never came back to card_done."""
    sub = Subscription.objects.select_related("integration").filter(stripe_customer=customer_id).first()
    if sub is None:
        return
    payment_method = stripe_api.setup_session_card(session_id, customer_id)  # read again from Stripe
    if payment_method and payment_method != sub.payment_method:
        subscriptions.set_card(sub, payment_method)
