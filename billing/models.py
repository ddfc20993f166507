"""What an integration pays for and what it has used: plans, its subscription, monthly usage and order packs.

Money is kept as Stripe counts it: whole øre (1/100 DKK), in integers.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from django.db import models
from django.utils import timezone

from iex.models import Integration

TRIAL_DAYS = 14
TRIAL_PLAN = "standard"  # the plan of a trial started without a choice (an integration made before billing)


def month_of(at: datetime) -> date:
    """The calendar month (UTC) an instant falls in, as its first day."""
    return at.astimezone(UTC).date().replace(day=1)


def kroner(ore: int) -> str:
    """299900 -> '2,999.00 kr.'; exact at any size (Decimal, never a float)."""
    return f"{Decimal(ore).scaleb(-2):,.2f} kr."


class Plan(models.Model):
    code = models.SlugField(unique=True)
    name = models.CharField(max_length=50)
    included_orders = models.PositiveIntegerField(help_text="Orders a month included in the price.")
    monthly_price = models.PositiveIntegerField(help_text="In øre (1/100 DKK), excluding VAT.")
    retention_days = models.PositiveIntegerField(help_text="How long the Log keeps transfers (failed: twice).")
    member_limit = models.PositiveIntegerField(help_text="Members and pending invitations at most.")
    pack_orders = models.PositiveIntegerField(default=100, help_text="Orders in one order pack.")
    pack_price = models.PositiveIntegerField(help_text="Price of one order pack, in øre.")
    position = models.PositiveSmallIntegerField(default=0)
    available = models.BooleanField(default=True, help_text="Offered to new and changing subscriptions.")

    class Meta:
        ordering = ["position", "included_orders"]

    def __str__(self) -> str:
        return self.name

    @property
    def price_display(self) -> str:
        return kroner(self.monthly_price)

    @property
    def pack_price_display(self) -> str:
        return kroner(self.pack_price)

    @property
    def stripe_plan_id(self) -> str:
        # A price change makes a new Stripe plan: existing prices in Stripe are immutable.
        return f"iex-plan-{self.code}-{self.monthly_price}"


class SystemPrice(models.Model):
    """The monthly price of one connected system (a module) of this kind."""

    kind = models.CharField(max_length=20, unique=True)
    monthly_price = models.PositiveIntegerField(help_text="In øre (1/100 DKK), excluding VAT.")

    def __str__(self) -> str:
        return f"{self.kind}: {kroner(self.monthly_price)}"

    @property
    def price_display(self) -> str:
        return kroner(self.monthly_price)

    @property
    def stripe_plan_id(self) -> str:
        return f"iex-module-{self.kind}-{self.monthly_price}"


class Subscription(models.Model):
    class Status(models.TextChoices):
        TRIALING = "trialing", "Trial"
        ACTIVE = "active", "Active"
        PAST_DUE = "past_due", "Payment overdue"
        CANCELED = "canceled", "Cancelled"

    integration = models.OneToOneField(Integration, models.CASCADE, related_name="subscription")
    plan = models.ForeignKey(Plan, models.PROTECT, related_name="+")
    # A downgrade waits for the end of the paid period.
    next_plan = models.ForeignKey(Plan, models.PROTECT, null=True, blank=True, related_name="+")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.TRIALING)
    trial_ends = models.DateTimeField()
    current_period_end = models.DateTimeField(null=True, blank=True)
    cancel_at_period_end = models.BooleanField(default=False)

    stripe_customer = models.CharField(max_length=255, blank=True)
    stripe_subscription = models.CharField(max_length=255, blank=True)
    # Subscription item ids in Stripe: {"plan": "si_…", "<module code>": "si_…"}.
    stripe_items = models.JSONField(default=dict, blank=True)
    # Plan changes sent to Stripe so far: part of each change's idempotency key.
    plan_changes = models.PositiveIntegerField(default=0, editable=False)

    payment_method = models.CharField(max_length=255, blank=True)
    card_brand = models.CharField(max_length=20, blank=True)
    card_last4 = models.CharField(max_length=4, blank=True)
    card_expires = models.CharField(max_length=7, blank=True)
    card_updated = models.DateTimeField(null=True, blank=True)

    company = models.CharField(max_length=100, blank=True)
    address = models.CharField("Street address", max_length=200, blank=True)
    postcode = models.CharField(max_length=20, blank=True)
    city = models.CharField(max_length=100, blank=True)
    country = models.CharField(max_length=2, default="DK", help_text="Two-letter country code.")
    vat_number = models.CharField("VAT number", max_length=20, blank=True)
    invoice_email = models.EmailField(blank=True)

    topup_enabled = models.BooleanField("Automatic top-up", default=True)
    topup_cap = models.PositiveSmallIntegerField(
        "Most packs a month", default=5, help_text="Automatic top-up buys at most this many packs a month."
    )
    # Why automatic top-up cannot pay; shown as a banner until a pack is paid or the card changes.
    payment_problem = models.CharField(max_length=300, blank=True)
    created = models.DateTimeField(default=timezone.now, editable=False)

    def __str__(self) -> str:
        return f"{self.integration}: {self.plan} ({self.status})"

    @classmethod
    def of(cls, integration: Integration, plan: Plan | None = None) -> Subscription:
        """The integration's subscription; an integration made before billing existed starts a trial here."""
        try:
            return integration.subscription
        except cls.DoesNotExist:
            pass
        plan = plan or Plan.objects.get(code=TRIAL_PLAN)
        sub, _ = cls.objects.get_or_create(
            integration=integration,
            defaults={"plan": plan, "trial_ends": timezone.now() + timedelta(days=TRIAL_DAYS)},
        )
        integration.subscription = sub
        return sub

    @property
    def has_card(self) -> bool:
        return bool(self.payment_method)

    @property
    def in_trial(self) -> bool:
        return self.status == self.Status.TRIALING


class Usage(models.Model):
    """One integration's orders in one calendar month (UTC). Changed only under its row lock."""

    integration = models.ForeignKey(Integration, models.CASCADE, related_name="usage")
    month = models.DateField(help_text="The first day of the month.")
    included = models.PositiveIntegerField(help_text="The plan's orders this month.")
    bought = models.PositiveIntegerField(default=0, help_text="Orders from packs paid this month.")
    used = models.PositiveIntegerField(default=0, help_text="Creates confirmed by a receiving system.")
    reserved = models.PositiveIntegerField(default=0, help_text="Creates in flight.")
    warned_80 = models.BooleanField(default=False)
    warned_100 = models.BooleanField(default=False)
    # The owners were told that orders are held because top-up is off, capped or has no card.
    warned_held = models.BooleanField(default=False)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["integration", "month"], name="usage_once_a_month")]

    def __str__(self) -> str:
        return f"{self.integration} {self.month:%Y-%m}: {self.used}/{self.allowance}"

    @classmethod
    def of(cls, integration: Integration, month: date | None = None, *, lock: bool = False) -> Usage:
        """The month's usage row (made on first use with the plan's orders; a trial starts for an integration
        without a subscription); locked for update when asked."""
        month = month or month_of(timezone.now())
        rows = cls.objects.filter(integration=integration, month=month)
        usage = (rows.select_for_update() if lock else rows).first()
        if usage is None:
            Subscription.of(integration)
            cls.objects.get_or_create(
                integration=integration, month=month, defaults={"included": integration.included_orders()}
            )
            usage = (rows.select_for_update() if lock else rows).get()
        usage.integration = integration
        return usage

    @classmethod
    def peek(cls, integration: Integration, month: date) -> Usage:
        """The month's usage, read and never made (for reports and pages that change nothing). A month without its
        row yet has used none of the plan's orders: the row `of` would start, unsaved, with the orders of the plan
        a trial would start on when there is no subscription."""
        if usage := Usage.objects.filter(integration=integration, month=month).first():
            return usage
        if hasattr(integration, "subscription"):
            included = integration.included_orders()
        else:
            trial = Plan.objects.filter(code=TRIAL_PLAN).first()
            included = trial.included_orders if trial else 0
        return Usage(integration=integration, month=month, included=included)

    @property
    def allowance(self) -> int:
        return self.included + self.bought

    @property
    def available(self) -> int:
        return self.allowance - self.used - self.reserved

    @property
    def percent_used(self) -> int:
        return min(100, round(100 * self.used / self.allowance)) if self.allowance else 100


class Pack(models.Model):
    """Order packs bought in one payment, automatically (one) or by hand (one or more).

    The row is committed, pending, before Stripe is asked, and its code is the payment's idempotency key: a payment
    whose answer was lost is asked again with the same key and the same amount, and Stripe replays its first answer.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        ACTION_REQUIRED = "action_required", "Needs the card holder"
        FAILED = "failed", "Declined"
        PAID = "paid", "Paid"

    class Source(models.TextChoices):
        AUTOMATIC = "automatic", "Automatic top-up"
        MANUAL = "manual", "Bought by hand"

    # For a pack bought by hand, the token of the form that asked for it: sent twice, it buys once.
    code = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    integration = models.ForeignKey(Integration, models.CASCADE, related_name="packs")
    month = models.DateField()
    packs = models.PositiveSmallIntegerField(default=1)
    orders = models.PositiveIntegerField()
    amount = models.PositiveIntegerField(help_text="In øre.")
    source = models.CharField(max_length=10, choices=Source.choices)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    # The card on file when the pack was made: every attempt of its keyed payment asks with the same card.
    payment_method = models.CharField(max_length=255, blank=True)
    payment_intent = models.CharField(max_length=255, blank=True)
    failure = models.CharField(max_length=300, blank=True)
    created = models.DateTimeField(default=timezone.now)
    # When Stripe was last asked: a pending pack not asked for a while is asked again, with the same key.
    attempted = models.DateTimeField(default=timezone.now)
    paid_at = models.DateTimeField(null=True, blank=True)
    # The Stripe invoice made for the paid pack (the document for the accountant), and its page for the receipt.
    invoice = models.CharField(max_length=255, blank=True)
    invoice_url = models.URLField(max_length=500, blank=True)
    bank_url = ""  # not stored: the bank's page, when it asks the card holder to confirm this payment now

    class Meta:
        ordering = ["-created"]
        constraints = [
            # One payment in flight per integration: the others wait for it rather than pay again.
            models.UniqueConstraint(
                fields=["integration"], condition=models.Q(status="pending"), name="pack_one_pending"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.integration} {self.month:%Y-%m}: {self.orders} orders ({self.status})"

    @property
    def idempotency_key(self) -> str:
        return f"iex-pack-{self.code}"

    @property
    def amount_display(self) -> str:
        return kroner(self.amount)


class StripeEvent(models.Model):
    """A Stripe webhook event handled: Stripe sends events more than once."""

    event_id = models.CharField(max_length=255, unique=True)
    type = models.CharField(max_length=100)
    received = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.event_id} {self.type}"
