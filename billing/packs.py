"""Order packs: automatic top-up when the month's allowance runs out, paying for a pack, the card holder's
confirmation, and packs bought by hand.

When nothing is left, automatic top-up decides under the usage row's lock: one pending Pack row is committed (a
partial unique index allows one per integration), the lock is let go, and Stripe is asked with the pack's own
idempotency key. Creates arriving meanwhile find the pending pack and wait a few seconds (`PackInFlight`) instead of
paying again: fifty creates racing for the last five units buy one pack, not forty-five. A payment whose answer was
lost stays pending; the next create asks Stripe again with the same key and amount, and Stripe replays its first
answer.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.urls import reverse
from django.utils import timezone

from billing import invoices, stripe_api
from billing.models import Pack, Plan, Subscription, Usage, kroner, month_of
from billing.notices import notify
from iex.models import Integration
from transferlog.models import HeldFor, Status, Transfer

logger = logging.getLogger(__name__)


class PackInFlight(Exception):
    """An order pack is being paid for this integration right now: try again in a few seconds."""


# A pending pack not asked about for this long lost its answer (or its worker): it is asked again, same key.
STALE_PAYMENT = timedelta(minutes=2)
ASK_AGAIN_AFTER = timedelta(seconds=5)  # after a payment call that failed


def top_up(usage: Usage) -> Pack | str:
    """Under the usage lock, with nothing left: the pack to pay for now, or why the transfer is held."""
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
    now = timezone.now()
    pending = Pack.objects.filter(integration=integration, status=Pack.Status.PENDING).first()
    if pending is not None:
        if pending.attempted > now - STALE_PAYMENT:
            raise PackInFlight
        pending.attempted = now  # its answer was lost: ask again, with the same key
        pending.save(update_fields=["attempted"])
        pending.integration = integration
        return pending
    last = Pack.objects.filter(integration=integration, month=usage.month).order_by("-created").first()
    if last and last.status != Pack.Status.PAID and (sub.card_updated is None or last.created > sub.card_updated):
        # Do not try the same card again for every order: a new card (or a pack bought by hand) releases these.
        return f"No orders left this month; the last order pack could not be paid: {last.failure}"
    return _new_pack(usage, sub, 1, Pack.Source.AUTOMATIC)


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
        f"Orders for integration no. {integration.number} are held: no orders left this month",
        [
            f"The integration {integration.name} (no. {integration.number}) has used all {usage.allowance} orders "
            f"of {usage.month:%B %Y}, and {why}.",
            "New orders are held, not lost: they are transferred as soon as you buy a pack, change your plan or "
            "the next month starts.",
        ],
        "Buy orders",
    )


def _new_pack(usage: Usage, sub: Subscription, packs: int, source: str, code: uuid.UUID | None = None) -> Pack:
    orders, amount = price(sub.plan, packs)
    pack = Pack.objects.create(
        code=code or uuid.uuid4(),
        integration=usage.integration,
        month=usage.month,
        packs=packs,
        orders=orders,
        amount=amount,
        source=source,
        payment_method=sub.payment_method,
    )
    pack.integration = usage.integration
    return pack


def pay(pack: Pack, owner_here: bool = False) -> Pack:
    """Ask Stripe to charge the card on file for a pending pack, with the pack's own key, and take the answer.
    Automatic packs are paid off-session (nobody is there); a pack bought by hand on-session: a bank asking the card
    holder to confirm leaves its page in `pack.bank_url` (`owner_here`: they are sent there, not emailed). Raises
    StripeError when the answer was lost: the pack stays pending, to be asked again."""
    integration = pack.integration
    if pack.payment_intent:
        # Stripe answered before (the payment is processing): read it; never make a second one.
        return _take(
            pack, stripe_api.payment_of(stripe_api.retrieve_payment_intent(pack.payment_intent)), owner_here
        )
    sub = Subscription.of(integration)
    payment = stripe_api.charge(
        sub.stripe_customer,
        # Nothing here may change between attempts: the same key must come with the same request (the card is the
        # one on file when the pack was made).
        pack.payment_method or sub.payment_method,
        pack.amount,
        f"IEX: {pack.orders} orders for integration no. {integration.number}, {pack.month:%B %Y}",
        pack.idempotency_key,
        {"integration": integration.number, "pack": str(pack.code)},
        bank_return_url(pack) if pack.source == Pack.Source.MANUAL else "",
    )
    return _take(pack, payment, owner_here)


def bank_return_url(pack: Pack) -> str:
    """Where the bank sends the card holder back to; the same for every attempt (part of the keyed request)."""
    path = reverse("return_from_bank", args=[pack.integration.number, pack.code])
    return settings.SITE_URL.rstrip("/") + path


def confirm(pack: Pack) -> Pack:
    """The owner confirms, on-session, a pack's payment the bank wanted the card holder for."""
    sub = Subscription.of(pack.integration)
    payment = stripe_api.confirm(pack.payment_intent, sub.payment_method, bank_return_url(pack))
    return _take(pack, payment, owner_here=True)


def read_after_bank(pack: Pack) -> Pack:
    """The card holder is back from their bank: read the payment again and take what Stripe says."""
    payment = stripe_api.payment_of(stripe_api.retrieve_payment_intent(pack.payment_intent))
    return _take(pack, payment, owner_here=True)


def _take(pack: Pack, payment: stripe_api.Payment, owner_here: bool) -> Pack:
    integration = pack.integration
    # The owner on their way to their bank is not emailed about it; anyone else is.
    tell_owners = not (owner_here and payment.bank_url)
    apply_payment(pack, payment.status, payment.message, payment.payment_intent, tell_owners=tell_owners)
    pack.refresh_from_db()
    pack.integration = integration
    pack.bank_url = payment.bank_url if owner_here else ""
    return pack


def pay_or_ask_again_soon(pack: Pack, owner_here: bool = False) -> Pack:
    """`pay`, and when Stripe's answer is lost, have the pack asked again soon rather than after STALE_PAYMENT (by
    the next create, or by `ask_again_about_lost_payments`), with the same key: Stripe answers a repeated key with
    its first answer. Meanwhile other creates wait (PackInFlight). Re-raises the StripeError."""
    try:
        return pay(pack, owner_here)
    except stripe_api.StripeError:
        Pack.objects.filter(pk=pack.pk, status=Pack.Status.PENDING).update(
            attempted=timezone.now() - STALE_PAYMENT + ASK_AGAIN_AFTER
        )
        raise


def ask_again_about_lost_payments() -> int:
    """Ask Stripe again, with the same key, about every pack whose payment's answer was lost and that no create has
    asked about since (a pack bought by hand, or top-up with no orders coming). Returns how many got an answer."""
    answered = 0
    now = timezone.now()
    lost = Pack.objects.filter(status=Pack.Status.PENDING, attempted__lte=now - STALE_PAYMENT)
    for pack in lost.select_related("integration"):
        # Claimed by moving `attempted`: a create or another sweep asking at the same time leaves it alone.
        if not Pack.objects.filter(pk=pack.pk, status=Pack.Status.PENDING, attempted=pack.attempted).update(
            attempted=now
        ):
            continue
        try:
            pay_or_ask_again_soon(pack)
        except stripe_api.StripeError as exc:
            logger.warning("Stripe still gives no answer about pack %s: %s", pack.code, exc)
            continue
        answered += 1
    return answered


def apply_payment(
    pack: Pack, status: str, failure: str = "", payment_intent: str = "", *, tell_owners: bool = True
) -> bool:
    """Move a pack to what Stripe says about its payment, never backwards (a paid pack stays paid).
    Returns True when it became paid now."""
    integration = pack.integration
    with transaction.atomic():
        usage = Usage.of(integration, pack.month, lock=True)
        pack = Pack.objects.select_for_update().get(pk=pack.pk)
        pack.integration = integration
        pack.payment_intent = payment_intent or pack.payment_intent
        if pack.status == Pack.Status.PAID or status == "pending" or status == pack.status:
            Pack.objects.filter(pk=pack.pk).update(payment_intent=pack.payment_intent)
            return False
        sub = Subscription.of(integration)
        if status == "paid":
            pack.status, pack.paid_at, pack.failure = Pack.Status.PAID, timezone.now(), ""
            pack.save(update_fields=["status", "paid_at", "failure", "payment_intent"])
            usage.bought += pack.orders
            usage.warned_held = False
            usage.save(update_fields=["bought", "warned_held"])
            Subscription.objects.filter(pk=sub.pk).update(payment_problem="")
            pack_id = pack.pk
            # Stripe is asked for the invoice after the commit, outside the usage row's lock.
            transaction.on_commit(lambda: invoice_and_receipt(pack_id))
            transaction.on_commit(lambda: Transfer.release_held(integration, "a paid order pack"))
            return True
        pack.status = Pack.Status.FAILED if status == "failed" else Pack.Status.ACTION_REQUIRED
        pack.failure = (failure or pack.failure or stripe_api.DECLINED)[:300].rstrip(".")
        pack.save(update_fields=["status", "failure", "payment_intent"])
        Subscription.objects.filter(pk=sub.pk).update(payment_problem=_problem(pack)[:300])
        if tell_owners:
            # "Held" only when orders are held: a purchase by hand is often made with orders left.
            held = (
                usage.available <= 0
                or Transfer.objects.filter(
                    integration=integration, status=Status.HELD, held_for=HeldFor.ORDERS
                ).exists()
            )
            _tell_not_paid(pack, sub, held)
    return False


def _problem(pack: Pack) -> str:
    """The banner's words for a pack not paid."""
    if pack.status == Pack.Status.ACTION_REQUIRED:
        return f"Your bank asks you to confirm the payment of {pack.amount_display} for {pack.orders} orders"
    if pack.source == Pack.Source.MANUAL:
        return f"Your purchase of {pack.orders} orders was declined: {pack.failure}"
    return f"Automatic top-up could not pay for an order pack: {pack.failure}"


def _tell_not_paid(pack: Pack, sub: Subscription, held: bool) -> None:
    """Tell the owners what happened to the pack's payment, and that orders are held only when they are."""
    integration = pack.integration
    number, card = integration.number, f"the card ending in {sub.card_last4}" if sub.card_last4 else "your card"
    what = f"{pack.orders} orders for {integration.name} (no. {number}) for {pack.amount_display}"
    if pack.status == Pack.Status.ACTION_REQUIRED:
        subject = f"Confirm the payment for {pack.orders} orders for integration no. {number}"
        happened = (
            f"Your bank asks you to confirm the payment of {what} with {card}. Nothing is charged until then."
        )
        then, label, anchor = (
            "Confirm the payment with your bank, or update the card.",
            "Confirm the payment",
            "#buy",
        )
    elif pack.source == Pack.Source.MANUAL:
        subject = f"Your purchase of {pack.orders} orders for integration no. {number} was declined"
        happened = f"Your purchase of {what} with {card} was declined: {pack.failure}. Nothing was charged."
        then, label, anchor = "Update the card, then try again.", "Update the card", "#card"
    else:
        subject = f"Automatic top-up could not pay for {pack.orders} orders for integration no. {number}"
        happened = (
            f"Automatic top-up tried to buy {what} with {card}, and the payment was declined: {pack.failure}. "
            "Nothing was charged."
        )
        then, label, anchor = "Update the card or buy a pack by hand.", "Update the card or buy orders", "#buy"
    paragraphs = [happened, then]
    if held:
        subject += ": orders are held"
        paragraphs.append(
            "No orders are left this month, so new orders are held, not lost: they are transferred as soon as a "
            "pack is paid, the plan changes or the next month starts."
        )
    notify(integration, subject, paragraphs, label, anchor)


def invoice_and_receipt(pack_id: int) -> None:
    """A pack was paid: make its invoice, then email the receipt with a link to it. When Stripe fails, the receipt
    goes without the link and the invoice is made by the next sweep (`invoice_paid_packs`), listed on the page."""
    pack = Pack.objects.select_related("integration").get(pk=pack_id)
    try:
        invoice = make_invoice(pack)
    except stripe_api.StripeError as exc:
        logger.warning("the invoice of pack %s waits: %s", pack.code, exc)
        invoice = None
    _receipt(pack, invoice)


def make_invoice(pack: Pack) -> stripe_api.Invoice:
    """The paid pack's Stripe invoice, numbered and paid by the pack's payment. Its draft's id is kept at once, so
    a run cut off halfway goes on with the same invoice; the keys make a repeated call to Stripe replay."""
    sub = Subscription.of(pack.integration)
    number = pack.integration.number
    key = f"iex-pack-invoice-{pack.code}"
    description = f"IEX: {pack.orders} orders for integration no. {number}, {pack.month:%B %Y}"
    if not pack.invoice:
        metadata = {"integration": number, "pack": str(pack.code)}
        draft = stripe_api.draft_pack_invoice(sub.stripe_customer, description, metadata, key)
        Pack.objects.filter(pk=pack.pk, invoice="").update(invoice=draft)
        pack.refresh_from_db(fields=["invoice"])
    invoice = stripe_api.complete_pack_invoice(
        pack.invoice, sub.stripe_customer, pack.amount, description, pack.payment_intent, key
    )
    Pack.objects.filter(pk=pack.pk).update(invoice_url=invoice.url)
    pack.invoice_url = invoice.url
    invoices.forget(sub)
    return invoice


# Stripe is asked for a paid pack's missing invoice for this long (each minute); the page says so meanwhile.
INVOICE_TRIES = timedelta(days=7)


def awaiting_invoice(now: datetime | None = None) -> QuerySet[Pack]:
    """Paid packs whose invoice Stripe has not made yet, and is still asked for."""
    now = now or timezone.now()
    return Pack.objects.filter(status=Pack.Status.PAID, invoice_url="", paid_at__gte=now - INVOICE_TRIES)


def invoice_paid_packs(now: datetime | None = None) -> int:
    """Make the invoices Stripe failed to make when their packs were paid (a pack just paid is left to the run that
    pays it). Returns how many were made."""
    now = now or timezone.now()
    made = 0
    for pack in awaiting_invoice(now).filter(paid_at__lte=now - STALE_PAYMENT).select_related("integration"):
        try:
            make_invoice(pack)
        except stripe_api.StripeError as exc:
            logger.warning("the invoice of pack %s still waits: %s", pack.code, exc)
            continue
        made += 1
    return made


def _receipt(pack: Pack, invoice: stripe_api.Invoice | None) -> None:
    integration = pack.integration
    paid = pack.paid_at or timezone.now()
    paragraphs = [
        f"Paid {pack.amount_display} for {pack.packs} order pack{'s' if pack.packs > 1 else ''} "
        f"({pack.orders} orders) for {integration.name} (no. {integration.number}), {pack.month:%B %Y}.",
        f"{pack.get_source_display()} on {paid:%d %B %Y %H:%M} UTC; payment reference "
        f"{pack.payment_intent or pack.idempotency_key}.",
    ]
    if invoice is None:
        paragraphs.append("The invoice follows on the Subscription page, under Invoices.")
        notify(integration, f"Receipt: {pack.orders} orders for integration no. {integration.number}", paragraphs)
        return
    paragraphs.append(f"Invoice {invoice.number} is paid." + (f" Its PDF: {invoice.pdf}" if invoice.pdf else ""))
    notify(
        integration,
        f"Receipt: {pack.orders} orders for integration no. {integration.number}",
        paragraphs,
        f"Open invoice {invoice.number}",
        url=invoice.url,
    )


class PriceChanged(Exception):
    """The amount the owner confirmed is not what the packs cost now (the plan changed meanwhile)."""


@dataclass(frozen=True)
class Quote:
    """What buying packs by hand costs now, as the owner confirms it."""

    packs: int
    orders: int
    amount: int  # in øre
    month: date  # the orders are this month's
    trial_ends: datetime | None  # in the free trial: its end (a pack is charged at once all the same)

    @property
    def amount_display(self) -> str:
        return kroner(self.amount)


def price(plan: Plan, packs: int) -> tuple[int, int]:
    """(orders, amount in øre) of `packs` packs on `plan`: what is shown, confirmed and charged."""
    return packs * plan.pack_orders, packs * plan.pack_price


def quote(integration: Integration, packs: int) -> Quote:
    sub = Subscription.of(integration)
    orders, amount = price(sub.plan, packs)
    return Quote(packs, orders, amount, month_of(timezone.now()), sub.trial_ends if sub.in_trial else None)


def buy_by_hand(integration: Integration, packs: int, code: uuid.UUID, amount: int) -> Pack | None:
    """The owner buys packs, on-session, for the `amount` they confirmed (else PriceChanged). `code` is the token of
    the form that asked: sent twice, it buys once (None)."""
    sub = Subscription.of(integration)
    with transaction.atomic():
        usage = Usage.of(integration, lock=True)
        if Pack.objects.filter(code=code).exists():
            return None
        if price(sub.plan, packs)[1] != amount:
            raise PriceChanged
        if Pack.objects.filter(integration=integration, status=Pack.Status.PENDING).exists():
            raise PackInFlight
        pack = _new_pack(usage, sub, packs, Pack.Source.MANUAL, code)
    return pay_or_ask_again_soon(pack, owner_here=True)
