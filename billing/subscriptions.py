"""The subscription's life: trial, billing information, card, the Stripe subscription and its items, plan changes,
cancellation and the end of a period. Our row says what the merchant has; Stripe is asked before it changes."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from billing import invoices, stripe_api
from billing.models import Plan, Subscription, SystemPrice, Usage, kroner, month_of
from billing.notices import notify
from iex.lib.numbers import count
from iex.models import Integration
from transferlog.models import Transfer

logger = logging.getLogger(__name__)

BILLING_FIELDS = ("company", "address", "postcode", "city", "country", "vat_number", "invoice_email")


def _at(timestamp: int | None) -> datetime | None:
    return datetime.fromtimestamp(timestamp, UTC) if timestamp else None


def save_billing_info(sub: Subscription, fields: dict[str, Any]) -> None:
    """Store the billing information and keep the Stripe customer in step (made here on first save)."""
    sub.stripe_customer = stripe_api.save_customer(sub.stripe_customer, fields, sub.integration.number)
    for name in BILLING_FIELDS:
        setattr(sub, name, fields[name])
    sub.save(update_fields=[*BILLING_FIELDS, "stripe_customer"])


def set_card(sub: Subscription, payment_method: str) -> None:
    """Make this card the one on file; start the Stripe subscription if there is none; release transfers held
    because the last card could not pay."""
    if not sub.stripe_customer or not stripe_api.customer_exists(sub.stripe_customer):
        sub.stripe_customer = stripe_api.save_customer("", billing_fields(sub), sub.integration.number)
        sub.stripe_subscription, sub.stripe_items = "", {}
    card = stripe_api.attach_card(sub.stripe_customer, payment_method)
    sub.payment_method, sub.card_brand, sub.card_last4, sub.card_expires = (
        card.payment_method,
        card.brand,
        card.last4,
        card.expires,
    )
    sub.card_updated = timezone.now()
    sub.payment_problem = ""
    if sub.status == Subscription.Status.CANCELED:
        # Subscribing again: a new Stripe subscription, paid from today (the old one has ended).
        sub.status, sub.cancel_at_period_end, sub.stripe_subscription, sub.stripe_items = (
            Subscription.Status.ACTIVE,
            False,
            "",
            {},
        )
    sub.save()
    try:
        ensure_stripe_subscription(sub)
    except stripe_api.StripeError as exc:
        # The card is on file (Stripe holds it too); the hourly roll starts the subscription when Stripe answers.
        logger.warning("the subscription of integration %s waits to start: %s", sub.integration.number, exc)
    transaction.on_commit(lambda: Transfer.release_held(sub.integration, "a new card on file"))


def billing_fields(sub: Subscription) -> dict[str, Any]:
    return {name: getattr(sub, name) for name in BILLING_FIELDS}


def ensure_stripe_subscription(sub: Subscription) -> None:
    """A Stripe subscription with the plan and one item per module, once there is a customer with a card."""
    if not sub.stripe_customer or not sub.payment_method or sub.status == Subscription.Status.CANCELED:
        return
    if not sub.stripe_subscription:
        plan_id = stripe_api.ensure_plan(sub.plan.stripe_plan_id, f"IEX {sub.plan.name}", sub.plan.monthly_price)
        trial_end = int(sub.trial_ends.timestamp()) if sub.in_trial and sub.trial_ends > timezone.now() else None
        # One subscription per card saved: asked again (the answer lost), the same key; subscribing again after a
        # cancellation comes with a new card on file, so a new key.
        key = f"iex-subscription-{sub.integration.number}-{sub.stripe_customer}-{sub.card_updated:%Y%m%d%H%M%S%f}"
        number = sub.integration.number
        sub.stripe_subscription, plan_item, period_end = stripe_api.existing_subscription(
            sub.stripe_customer, number
        ) or stripe_api.create_subscription(sub.stripe_customer, plan_id, trial_end, number, key)
        sub.stripe_items = {"plan": plan_item}
        sub.current_period_end = sub.trial_ends if trial_end else _at(period_end)
        if not trial_end:
            sub.status = Subscription.Status.ACTIVE
        sub.save(update_fields=["stripe_subscription", "stripe_items", "current_period_end", "status"])
    sync_items(sub)


def sync_items(sub: Subscription) -> None:
    """Make the subscription's module items match the integration's modules: add the missing, remove the gone."""
    if not sub.stripe_subscription:
        return
    with transaction.atomic():
        # One sync at a time per subscription: two at once could each miss the other's change.
        locked = Subscription.objects.select_for_update().select_related("integration").get(pk=sub.pk)
        _sync_items(locked)
    sub.stripe_items = locked.stripe_items


def _sync_items(sub: Subscription) -> None:
    modules = {str(m.code): m.kind for m in sub.integration.modules.all()}
    prices = {p.kind: p for p in SystemPrice.objects.filter(kind__in=set(modules.values()))}
    items = dict(sub.stripe_items)
    for code, kind in modules.items():
        if code not in items and kind in prices:
            price = prices[kind]
            plan_id = stripe_api.ensure_plan(price.stripe_plan_id, f"IEX module: {kind}", price.monthly_price)
            items[code] = stripe_api.add_item(sub.stripe_subscription, plan_id, f"iex-item-{code}")
    for code in [c for c in items if c != "plan" and c not in modules]:
        stripe_api.remove_item(items.pop(code))
    if items != sub.stripe_items:
        sub.stripe_items = items
        sub.save(update_fields=["stripe_items"])


def monthly_total(sub: Subscription) -> tuple[list[dict[str, Any]], int]:
    """The lines of the monthly price: the plan, then each module. Returns (lines, total in øre)."""
    lines: list[dict[str, Any]] = [{"label": f"{sub.plan.name} plan", "amount": sub.plan.monthly_price}]
    prices = {p.kind: p.monthly_price for p in SystemPrice.objects.all()}
    for module in sub.integration.modules.all():
        lines.append({"label": f"{module.system.label} module", "amount": prices.get(module.kind, 0)})
    return lines, sum(line["amount"] for line in lines)


@dataclass(frozen=True)
class PlanChange:
    """What changing to `new` does, as the owner is asked to confirm it."""

    current: Plan
    new: Plan
    when: str  # "stay", "now", "at renewal", or "take back" (a waiting downgrade goes first; see preview)
    starts: datetime  # when the new plan (or staying) takes effect
    charged_now: int  # in øre, invoiced and charged at once
    paid_until: datetime | None  # the end of the period (or trial) the charge covers; the new price from then
    in_trial: bool
    proration_date: int  # the instant Stripe prorates from: the one confirmed is the one charged
    orders_this_month: int
    new_orders_from: date  # the first day of the month that counts the new plan's orders

    @property
    def charged_now_display(self) -> str:
        return kroner(self.charged_now)


def preview_plan_change(sub: Subscription, plan: Plan, now: datetime | None = None) -> PlanChange:
    """What `change_plan` would do and charge, without changing anything: an upgrade's charge now is Stripe's
    invoice preview of the prorated difference (nothing during the trial or before the Stripe subscription starts);
    a downgrade waits for the renewal and charges nothing now.

    A downgrade already waiting is told to Stripe (the next period's plan), so Stripe cannot preview an upgrade from
    the plan this period was paid for: the owner takes the downgrade back first (free), then sees the upgrade's
    price ("take back")."""
    now = now or timezone.now()
    usage = Usage.peek(sub.integration, month_of(now))
    at = int(now.timestamp())
    upgrade = plan.included_orders > sub.plan.included_orders
    paying = bool(sub.stripe_subscription) and not sub.in_trial
    starts, charged, this_month, new_from = now, 0, max(usage.included, plan.included_orders), usage.month
    if plan == sub.plan:
        when, this_month = "stay", usage.included
    elif not upgrade and paying:
        when, starts, this_month = "at renewal", sub.current_period_end or now, usage.included
        new_from = _next_month(month_of(starts))
    elif paying and sub.next_plan is not None:
        when = "take back"
    else:
        when = "now"
        if not upgrade:  # this month keeps the bigger plan's orders
            new_from = _next_month(usage.month)
        if paying:
            plan_id = stripe_api.ensure_plan(plan.stripe_plan_id, f"IEX {plan.name}", plan.monthly_price)
            charged = stripe_api.preview_plan_change(
                sub.stripe_customer, sub.stripe_subscription, sub.stripe_items["plan"], plan_id, at
            )
    return PlanChange(
        current=sub.plan,
        new=plan,
        when=when,
        starts=starts,
        charged_now=charged,
        paid_until=sub.trial_ends if sub.in_trial else sub.current_period_end,
        in_trial=sub.in_trial,
        proration_date=at,
        orders_this_month=this_month,
        new_orders_from=new_from,
    )


def _next_month(day: date) -> date:
    """The first day of the month after `day`'s."""
    return (day.replace(day=1) + timedelta(days=32)).replace(day=1)


def plan_summary(sub: Subscription, usage: Usage) -> str:
    """The plan in one sentence, the same on the page and in the message after a change: the plan, the plan from
    the next period, and the included orders of each (and of this month, where it keeps a bigger plan's)."""
    plan, following = sub.plan, sub.next_plan
    if following is not None and sub.current_period_end:
        end = f"{sub.current_period_end:%-d %B %Y}"
        return (
            f"{plan.name} until {end}, {count(plan.included_orders)} orders a month; "
            f"{following.name} from {end}, {count(following.included_orders)} orders a month."
        )
    text = f"{plan.name}, {count(plan.included_orders)} orders a month."
    if usage.included > plan.included_orders:
        text += (
            f" {usage.month:%B} keeps the {count(usage.included)} orders it started with; "
            f"{plan.name}'s {count(plan.included_orders)} count from {_next_month(usage.month):%-d %B %Y}."
        )
    return text


def change_plan(sub: Subscription, plan: Plan, proration_date: int | None = None) -> str:
    """An upgrade applies at once (Stripe invoices the prorated difference from `proration_date`, the instant the
    owner was shown) and releases held orders; a downgrade waits for the end of the paid period (Stripe is told
    now, to bill the next period at the new price and credit nothing). During the trial both apply at once.
    Returns what happened, for the owner, in the words of the page."""
    downgrade_waiting = sub.next_plan is not None and bool(sub.stripe_subscription)
    if plan == sub.plan:
        if sub.stripe_subscription:
            # The next period is billed at this plan again: a downgrade taken back, or one whose answer was lost.
            _stripe_plan(sub, plan, prorate=False)
        sub.next_plan = None
        sub.save(update_fields=["next_plan"])
        return f"You stay on {plan.name}: {plan_summary(sub, Usage.of(sub.integration))}"
    upgrade = plan.included_orders > sub.plan.included_orders
    if not upgrade and sub.stripe_subscription and not sub.in_trial:
        _stripe_plan(sub, plan, prorate=False)
        sub.next_plan = plan
        sub.save(update_fields=["next_plan"])
        when = f" on {sub.current_period_end:%-d %B %Y}" if sub.current_period_end else " at the end of the period"
        return f"Your plan changes to {plan.name}{when}: {plan_summary(sub, Usage.of(sub.integration))}"
    if downgrade_waiting:
        # Back to the plan this period was paid for first, so the upgrade is prorated from what was paid.
        _stripe_plan(sub, sub.plan, prorate=False)
    # The trial is free: Stripe has nothing to prorate, and is left to its default.
    _apply_plan(sub, plan, prorate=None if sub.in_trial else True, proration_date=proration_date)
    return f"Your plan is now {plan.name}: {plan_summary(sub, Usage.of(sub.integration))}"


def _stripe_plan(
    sub: Subscription, plan: Plan, *, prorate: bool | None, proration_date: int | None = None
) -> None:
    """Put the Stripe subscription on `plan`. The key is built from our row: a call whose answer was lost is sent
    again with the same key, and a later change (`plan_changes` moved on) gets a new one."""
    plan_id = stripe_api.ensure_plan(plan.stripe_plan_id, f"IEX {plan.name}", plan.monthly_price)
    key = (
        f"iex-plan-{sub.integration.number}-{sub.plan_changes}-{plan.code}-{'next' if prorate is False else 'now'}"
    )
    item = stripe_api.change_plan(
        sub.stripe_subscription, sub.stripe_items["plan"], plan_id, prorate=prorate, key=key,
        proration_date=proration_date,
    )  # fmt: skip
    invoices.forget(sub)
    sub.stripe_items = {**sub.stripe_items, "plan": item}
    sub.plan_changes += 1
    sub.save(update_fields=["stripe_items", "plan_changes"])


def _apply_plan(
    sub: Subscription, plan: Plan, *, prorate: bool | None = True, proration_date: int | None = None
) -> None:
    if sub.stripe_subscription:
        _stripe_plan(sub, plan, prorate=prorate, proration_date=proration_date)
    sub.plan, sub.next_plan = plan, None
    sub.save(update_fields=["plan", "next_plan"])
    with transaction.atomic():
        # This month keeps what it was sold (a downgrade counts from next month); an upgrade adds at once.
        usage = Usage.of(sub.integration, lock=True)
        usage.included = max(usage.included, plan.included_orders)
        usage.save(update_fields=["included"])
    transaction.on_commit(lambda: Transfer.release_held(sub.integration, f"the {plan.name} plan"))


def set_cancel(sub: Subscription, cancel: bool) -> None:
    """Cancel at the end of the period (or take that back). In the trial there is no Stripe subscription yet."""
    if sub.stripe_subscription:
        stripe_api.set_cancel_at_period_end(sub.stripe_subscription, cancel)
    sub.cancel_at_period_end = cancel
    sub.save(update_fields=["cancel_at_period_end"])


def end(sub: Subscription, why: str) -> None:
    """The subscription is over: deactivate the integration and tell the owners. Safe to call twice."""
    with transaction.atomic():
        locked = Subscription.objects.select_for_update().get(pk=sub.pk)
        if locked.status == Subscription.Status.CANCELED:
            return
        locked.status = Subscription.Status.CANCELED
        locked.save(update_fields=["status"])
        integration: Integration = locked.integration
        integration.active = False
        integration.active_changed_at = timezone.now()
        integration.active_changed_by = None
        integration.save(update_fields=["active", "active_changed_at", "active_changed_by"])
        notify(
            integration,
            f"Integration no. {integration.number} is deactivated: {why}",
            [
                f"The integration {integration.name} (no. {integration.number}) is deactivated because {why}. "
                "Nothing is transferred and no more is charged.",
                "Your settings and the Log are kept. To continue, add a card and activate the integration.",
            ],
        )


def roll_periods(now: datetime | None = None) -> int:
    """Hourly: start the Stripe subscriptions a saved card is still waiting for, end trials without a card, apply
    downgrades and cancellations whose period has ended. A subscription Stripe fails on waits for the next hour;
    the others go on. Returns how many were rolled."""
    now = now or timezone.now()
    live = Subscription.objects.exclude(status=Subscription.Status.CANCELED).select_related("integration", "plan")
    steps = [
        (live.exclude(payment_method="").filter(stripe_subscription=""), ensure_stripe_subscription),
        (live.filter(status=Subscription.Status.TRIALING, trial_ends__lt=now), _end_trial),
        (live.filter(current_period_end__lt=now).select_related("next_plan"), _end_period),
    ]
    done = 0
    for subs, step in steps:
        for sub in subs:
            try:
                step(sub)
            except stripe_api.StripeError as exc:
                logger.warning(
                    "Stripe failed on the subscription of integration %s: %s", sub.integration.number, exc
                )
            else:
                done += 1
    return done


def _end_trial(sub: Subscription) -> None:
    if not sub.has_card:
        end(sub, "the trial has ended and there is no card on file")
        return
    sub.status = Subscription.Status.ACTIVE
    sub.save(update_fields=["status"])
    refresh_from_stripe(sub)


def _end_period(sub: Subscription) -> None:
    if sub.cancel_at_period_end:
        end(sub, "the subscription was cancelled and its period has ended")
        return
    if sub.next_plan:
        # Stripe was told when the downgrade was asked for; told again (it changes nothing there), so that a call
        # that failed halfway, or whose answer was lost, never leaves our plan and Stripe's apart.
        _apply_plan(sub, sub.next_plan, prorate=False)
    refresh_from_stripe(sub)


def refresh_from_stripe(sub: Subscription) -> None:
    """Re-read the subscription from Stripe and take its period and state; never moves the period backwards."""
    if not sub.stripe_subscription:
        return
    remote = stripe_api.retrieve_subscription(sub.stripe_subscription)
    period_end = _at(stripe_api.period_end(remote))
    fields = []
    if period_end and (sub.current_period_end is None or period_end > sub.current_period_end):
        sub.current_period_end = period_end
        fields.append("current_period_end")
    status = stripe_api.field(remote, "status")
    if status in ("past_due", "unpaid") and sub.status == Subscription.Status.ACTIVE:
        sub.status = Subscription.Status.PAST_DUE
        fields.append("status")
    elif status == "active" and sub.status == Subscription.Status.PAST_DUE:
        sub.status = Subscription.Status.ACTIVE
        fields.append("status")
    if fields:
        sub.save(update_fields=fields)
    if status == "canceled":
        end(sub, "the subscription has ended")
