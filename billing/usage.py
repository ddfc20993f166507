"""Metering by IEX's rule, and what needs the owners' action about it.

An order counts when the receiving system confirms a create; updates do not count; each receiving system counts;
the month is the calendar month in UTC. Before a create the pipeline reserves one unit under the lock of the
integration's usage row for the month (`reserve`); when the send ends the unit is either used or given back
(`settle`). The reservation is marked on the transfer in the same transaction (a conditional UPDATE), so a transfer
holds at most one unit, takes it over when its worker died and it runs again, and settles it once. When nothing is
left, automatic top-up buys a pack (billing/packs.py) or the transfer is held.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone

from billing import packs
from billing.models import Pack, Subscription, Usage, kroner, month_of
from billing.notices import notify
from iex.lib import sql
from iex.models import Integration
from transferlog.models import HeldFor, Status, Transfer


def reserve(transfer: Transfer) -> str:
    """Reserve one unit for the create this transfer is about to make. Returns "" when reserved (or already
    holding one), else why the transfer is held. Raises PackInFlight while another create pays for a pack, and
    StripeError when Stripe's answer was lost (the pack stays pending; the transfer is retried)."""
    if transfer.reserved_month:
        return ""
    month = month_of(timezone.now())
    with transaction.atomic():
        # The common case, a unit left, in two statements and no read: mark the transfer, then take the unit. The
        # UPDATE waits for the usage row's lock and checks what is left under it, so two creates never take the
        # last unit both. Nothing left (or no row yet this month): undone, and decided under the lock below.
        if transfer.take_reservation(month):
            left = "integration_id = %s AND month = %s AND included + bought - used - reserved > 0"
            if sql.update(Usage, left, [transfer.integration_id, month], reserved=sql.Add(1)):
                return ""
            transaction.set_rollback(True)
            transfer.reserved_month = None
    integration = transfer.integration
    for _ in range(3):
        with transaction.atomic():
            usage = Usage.of(integration, lock=True)
            if usage.available > 0:
                if transfer.take_reservation(usage.month):
                    usage.reserved += 1
                    usage.save(update_fields=["reserved"])
                transfer.reserved_month = usage.month
                return ""
            pack = packs.top_up(usage)
            if isinstance(pack, str):
                return pack
        # The pending pack is committed and the lock let go: Stripe is asked outside it.
        packs.pay_or_ask_again_soon(pack)
        if pack.status != Pack.Status.PAID:
            return f"No orders left this month; paying for an order pack failed: {pack.failure}"
    raise packs.PackInFlight  # the packs paid were used up by other creates meanwhile: take a turn again shortly


def settle(transfer: Transfer, created: bool) -> None:
    """End the transfer's reservation: a confirmed create uses the unit, anything else gives it back. Once."""
    month = transfer.reserved_month
    if not month:
        return
    # Part of the transaction that records the transfer's outcome, when there is one (no savepoint of its own).
    with transaction.atomic(savepoint=False):
        if not transfer.give_up_reservation(month):
            return  # settled already (the same task ran twice)
        # One statement under the row's lock, returning the counts the warnings need: no read for update first.
        table = Usage._meta.db_table
        (usage,) = Usage.objects.raw(
            f"UPDATE {table} SET reserved = reserved - 1, used = used + %s "  # noqa: S608 (our table)
            "WHERE integration_id = %s AND month = %s RETURNING *",
            [int(created), transfer.integration_id, month],
        )
        usage.integration = transfer.integration
        if created and (fields := _warnings(usage)):
            usage.save(update_fields=fields)


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
        f"Integration no. {integration.number} has used {percent}% of this month's orders",
        [
            f"The integration {integration.name} (no. {integration.number}) has used {usage.used} of "
            f"{usage.allowance} orders in {usage.month:%B %Y}.",
            after,
        ],
    )


def release_where_possible() -> int:
    """Release held transfers wherever orders are available again (a new month, a pack paid elsewhere)."""
    released = 0
    held = Transfer.objects.filter(status=Status.HELD, held_for=HeldFor.ORDERS)
    ids = held.values_list("integration_id", flat=True).distinct()
    for integration in Integration.objects.filter(pk__in=list(ids), active=True):
        if Usage.of(integration).available > 0:
            with transaction.atomic():
                released += Transfer.release_held(integration, "orders available again")
    return released


def banners(integration: Integration) -> dict[str, Any]:
    """What needs action about orders and payments, for the banners on Home and Subscription."""
    sub = Subscription.of(integration)
    held = Transfer.objects.filter(integration=integration, status=Status.HELD).aggregate(
        orders=Count("id", filter=Q(held_for=HeldFor.ORDERS)),
        settings=Count("id", filter=Q(held_for=HeldFor.SETTINGS)),
    )
    return {
        "held": held["orders"],
        # Held until a setting of the receiving system can book them (a VAT rate): nothing to buy.
        "held_for_settings": held["settings"],
        "payment_problem": sub.payment_problem,
        # A pack the bank wants the card holder to confirm: the owner can, from the Subscription page.
        "to_confirm": Pack.objects.filter(
            integration=integration, month=month_of(timezone.now()), status=Pack.Status.ACTION_REQUIRED
        ).exists(),
        "past_due": sub.status == Subscription.Status.PAST_DUE,
        # The payment that failed was a purchase by hand: the banner says to update the card, not to buy by hand.
        "declined_by_hand": Pack.objects.filter(integration=integration, month=month_of(timezone.now()))
        .values_list("source", "status")
        .first()
        == (Pack.Source.MANUAL, Pack.Status.FAILED),
        "stripe_down": stripe_waits(sub),
    }


# Stripe answers a payment in seconds: a pack pending this long without any answer waits for Stripe.
STRIPE_SILENT = timedelta(minutes=1)


def stripe_waits(sub: Subscription) -> bool:
    """Whether billing actions wait for Stripe to answer (a pack's payment, or the subscription a saved card
    starts), read from our rows only: Home asks this without calling Stripe."""
    if sub.payment_method and not sub.stripe_subscription and sub.status != Subscription.Status.CANCELED:
        return True
    return Pack.objects.filter(
        integration=sub.integration,
        status=Pack.Status.PENDING,
        payment_intent="",
        created__lte=timezone.now() - STRIPE_SILENT,
    ).exists()
