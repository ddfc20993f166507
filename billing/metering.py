"""Metering by IEX's rule, order packs and automatic top-up.

An order counts when the receiving system confirms a create; updates do not count; each receiving system counts;
the month is the calendar month in UTC. Before a create the pipeline reserves one unit under the lock of the
integration's usage row for the month (`reserve`); when the send ends the unit is either used or given back
(`settle`). The reservation is marked on the transfer in the same transaction, so a transfer whose worker died
holds at most one unit, and takes it over when it runs again.

When nothing is left, automatic top-up buys one pack while holding that lock: fifty creates racing for the last
five units buy one pack, not forty-five. The payment's idempotency key comes from (integration, month, payment
number); a payment whose answer was lost rolls the transaction back, and the next attempt asks Stripe again
with the same key, which replays the first answer.
"""

from __future__ import annotations

import logging
from datetime import date

from django.db import transaction
from django.db.models import Max
from django.urls import reverse
from django.utils import timezone

from billing import stripe_api
from billing.models import Pack, Subscription, Usage, kroner, month_of
from iex.lib import emails
from iex.models import Integration
from transferlog.models import Status, Transfer

logger = logging.getLogger(__name__)


def usage_of(integration: Integration, month: date | None = None, *, lock: bool = False) -> Usage:
    """The month's usage row (made on first use with the plan's orders); locked for update when asked."""
    month = month or month_of(timezone.now())
    usage, _ = Usage.objects.get_or_create(
        integration=integration,
        month=month,
        defaults={"included": Subscription.of(integration).plan.included_orders},
    )
    if lock:
        usage = Usage.objects.select_for_update().get(pk=usage.pk)
    usage.integration = integration
    return usage


def reserve(transfer: Transfer) -> str:
    """Reserve one unit for the create this transfer is about to make. Returns "" when reserved (or already
    holding one), else why the transfer is held. Raises StripeError when Stripe could not be asked about a pack:
    nothing is changed then, and the transfer is retried."""
    if transfer.reserved_month:
        return ""
    integration = transfer.integration
    with transaction.atomic():
        usage = usage_of(integration, lock=True)
        if usage.available <= 0 and (reason := _top_up(usage)):
            return reason
        usage.reserved += 1
        usage.save(update_fields=["reserved"])
        Transfer.objects.filter(pk=transfer.pk).update(reserved_month=usage.month)
        transfer.reserved_month = usage.month
    return ""


def settle(transfer: Transfer, created: bool) -> None:
    """End the transfer's reservation: a confirmed create uses the unit, anything else gives it back."""
    month = transfer.reserved_month
    if not month:
        return
    with transaction.atomic():
        usage = usage_of(transfer.integration, month, lock=True)
        usage.reserved = max(0, usage.reserved - 1)
        fields = ["reserved"]
        if created:
            usage.used += 1
            fields += ["used", *_warnings(usage)]
        usage.save(update_fields=fields)
        Transfer.objects.filter(pk=transfer.pk).update(reserved_month=None)
        transfer.reserved_month = None


def _warnings(usage: Usage) -> list[str]:
    """Tell the owners at 80% and at 100% of the allowance, once a month each. Returns the fields changed."""
    if not usage.allowance:
        return []
    if not usage.warned_100 and usage.used >= usage.allowance:
        usage.warned_100 = usage.warned_80 = True
        _notify_usage(usage, 100)
        return ["warned_100", "warned_80"]
    if not usage.warned_80 and usage.used >= 0.8 * usage.allowance:
        usage.warned_80 = True
        _notify_usage(usage, 80)
        return ["warned_80"]
    return []


def _notify_usage(usage: Usage, percent: int) -> None:
    integration = usage.integration
    sub = Subscription.of(integration)
    after = (
        "Automatic top-up buys a pack of "
        f"{sub.plan.pack_orders} orders for {kroner(sub.plan.pack_price)} when they run out "
        f"(at most {sub.topup_cap} a month)."
        if sub.topup_enabled
        else "Automatic top-up is off: orders beyond the allowance are held until you buy a pack."
    )
    notify(
        integration,
        f"{integration.name} has used {percent}% of this month's orders",
        [
            f"The integration {integration.name} (no. {integration.number}) has used {usage.used} of "
            f"{usage.allowance} orders in {usage.month:%B %Y}.",
            after,
        ],
    )


def notify(integration: Integration, subject: str, paragraphs: list[str], link_label: str = "") -> None:
    """Email the owners about billing, once the transaction commits, with a link to the Subscription page."""
    context = {
        "integration": integration,
        "subject": subject,
        "paragraphs": paragraphs,
        "link": reverse("subscription", args=[integration.number]),
        "link_label": link_label or "Open the Subscription page",
    }
    transaction.on_commit(lambda: emails.send("billing_notice", integration.owner_emails(), context))


# --- packs ------------------------------------------------------------------------------------------------


def _top_up(usage: Usage) -> str:
    """Buy one pack automatically for a create that found nothing left; "" when paid, else why not."""
    integration = usage.integration
    sub = Subscription.of(integration)
    if not sub.topup_enabled or _auto_packs(usage) >= sub.topup_cap:
        why = (
            "automatic top-up is off" if not sub.topup_enabled else f"the cap of {sub.topup_cap} packs is reached"
        )
        _tell_held_once(usage, why)
        return f"No orders left this month and {why}"
    if not sub.has_card:
        _tell_held_once(usage, "there is no card on file for automatic top-up")
        return "No orders left this month and there is no card on file for automatic top-up"
    last = Pack.objects.filter(integration=integration, month=usage.month).order_by("-seq").first()
    if last and last.status != Pack.Status.PAID and (sub.card_updated is None or last.created > sub.card_updated):
        # Do not try the same card again for every order: the owner's new card (or a pack bought) releases these.
        return f"No orders left this month; the last order pack could not be paid: {last.failure}"
    pack = pay(usage, sub, 1, Pack.Source.AUTOMATIC)
    if pack.status != Pack.Status.PAID:
        return f"No orders left this month; paying for an order pack failed: {pack.failure}"
    return ""


def _auto_packs(usage: Usage) -> int:
    return Pack.objects.filter(
        integration=usage.integration, month=usage.month, source=Pack.Source.AUTOMATIC, status=Pack.Status.PAID
    ).count()


def _tell_held_once(usage: Usage, why: str) -> None:
    if usage.warned_held:
        return
    usage.warned_held = True
    usage.save(update_fields=["warned_held"])
    integration = usage.integration
    notify(
        integration,
        f"Orders for {integration.name} are held: no orders left this month",
        [
            f"The integration {integration.name} (no. {integration.number}) has used all {usage.allowance} orders "
            f"of {usage.month:%B %Y}, and {why}.",
            "New orders are held, not lost: they are transferred as soon as you buy a pack, change your plan or "
            "the next month starts.",
        ],
        "Buy orders",
    )


def next_seq(integration: Integration, month: date) -> int:
    found = Pack.objects.filter(integration=integration, month=month).aggregate(last=Max("seq"))["last"]
    return (found or 0) + 1


def pay(usage: Usage, sub: Subscription, packs: int, source: str) -> Pack:
    """Charge the card on file for `packs` packs; called with the usage row locked. A paid pack grows the
    allowance at once. Raises StripeError if Stripe's answer was lost (nothing is recorded; retry)."""
    integration = usage.integration
    plan = sub.plan
    pack = Pack(
        integration=integration,
        month=usage.month,
        seq=next_seq(integration, usage.month),
        packs=packs,
        orders=packs * plan.pack_orders,
        amount=packs * plan.pack_price,
        source=source,
    )
    payment = stripe_api.charge(
        sub.stripe_customer,
        sub.payment_method,
        pack.amount,
        f"IEX order pack{'s' if packs > 1 else ''}: {pack.orders} orders for {integration.name} "
        f"(no. {integration.number}), {usage.month:%B %Y}",
        pack.idempotency_key,
        {"integration": integration.number, "pack": pack.idempotency_key},
    )
    pack.payment_intent = payment.payment_intent
    pack.failure = payment.message
    pack.save()
    apply_payment(pack, payment.status, usage=usage, sub=sub)
    pack.refresh_from_db(fields=["status", "paid_at"])
    return pack


def apply_payment(pack: Pack, status: str, *, usage: Usage | None = None, sub: Subscription | None = None) -> bool:
    """Move a pack to what Stripe says about its payment, never backwards (a paid pack stays paid).
    Returns True when it became paid now. Takes the usage lock unless the caller holds it."""
    integration = pack.integration
    with transaction.atomic():
        usage = usage or usage_of(integration, pack.month, lock=True)
        pack = Pack.objects.select_for_update().get(pk=pack.pk)
        pack.integration = integration
        sub = sub or Subscription.of(integration)
        if pack.status == Pack.Status.PAID or (status == pack.status and pack.status != Pack.Status.PENDING):
            return False
        if status == "paid":
            pack.status, pack.paid_at = Pack.Status.PAID, timezone.now()
            pack.save(update_fields=["status", "paid_at"])
            usage.bought += pack.orders
            usage.warned_held = False
            usage.save(update_fields=["bought", "warned_held"])
            if sub.payment_problem:
                Subscription.objects.filter(pk=sub.pk).update(payment_problem="")
                sub.payment_problem = ""
            _receipt(pack)
            transaction.on_commit(lambda: release_held(integration, "a paid order pack"))
            return True
        if status == "pending":
            return False
        pack.status = Pack.Status.FAILED if status == "failed" else Pack.Status.ACTION_REQUIRED
        pack.save(update_fields=["status", "failure"])
        problem = f"Paying for an order pack failed: {pack.failure}"
        Subscription.objects.filter(pk=sub.pk).update(payment_problem=problem[:300])
        sub.payment_problem = problem
        notify(
            integration,
            f"Payment for an order pack failed: orders for {integration.name} are held",
            [
                f"We tried to buy {pack.orders} more orders for {integration.name} (no. {integration.number}) "
                f"for {pack.amount_display} with your card, and the payment did not go through: {pack.failure}.",
                "New orders are held, not lost. Update the card or buy a pack by hand, and they are transferred.",
            ],
            "Update the card or buy orders",
        )
    return False


def _receipt(pack: Pack) -> None:
    integration = pack.integration
    notify(
        integration,
        f"Receipt: {pack.orders} orders for {integration.name}",
        [
            f"Paid {pack.amount_display} for {pack.packs} order pack{'s' if pack.packs > 1 else ''} "
            f"({pack.orders} orders) for {integration.name} (no. {integration.number}), {pack.month:%B %Y}.",
            f"{pack.get_source_display()} on {timezone.now():%d %B %Y %H:%M} UTC; payment reference "
            f"{pack.payment_intent or pack.idempotency_key}.",
        ],
    )


def buy_by_hand(integration: Integration, packs: int, seq: int) -> Pack | None:
    """The owner buys packs. `seq` is the payment number the page offered: a second submit of the same form
    finds it taken and buys nothing (None)."""
    sub = Subscription.of(integration)
    with transaction.atomic():
        usage = usage_of(integration, lock=True)
        if seq != next_seq(integration, usage.month):
            return None
        return pay(usage, sub, packs, Pack.Source.MANUAL)


# --- releasing held transfers ------------------------------------------------------------------------------


def release_held(integration: Integration, because: str) -> int:
    """Queue the integration's held transfers again (oldest first); each reserves again when it runs."""
    from connections import pipeline

    released = 0
    held = Transfer.objects.filter(integration=integration, status=Status.HELD).order_by("created", "id")
    for transfer in held.only("pk")[:10_000]:
        if transfer.retry(because):
            pipeline.enqueue(transfer.pk)
            released += 1
    return released


def release_where_possible() -> int:
    """Release held transfers wherever orders are available again (a new month, a pack paid elsewhere)."""
    released = 0
    ids = Transfer.objects.filter(status=Status.HELD).values_list("integration_id", flat=True).distinct()
    for integration in Integration.objects.filter(pk__in=list(ids), active=True):
        if usage_of(integration).available > 0:
            with transaction.atomic():
                released += release_held(integration, "orders available again")
    return released
