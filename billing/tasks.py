"""Billing's background work; beat's jobs here are also management commands (billing/management/commands/)."""

from celery import shared_task

from billing import packs, subscriptions, usage
from billing.models import Subscription


@shared_task
def sync_subscription_items(integration_id: int) -> None:
    """Modules were added or removed: keep the Stripe subscription's items in step."""
    sub = Subscription.objects.select_related("integration").filter(integration_id=integration_id).first()
    if sub is not None:
        subscriptions.sync_items(sub)


@shared_task
def roll_periods() -> int:
    return subscriptions.roll_periods()


@shared_task
def release_held() -> int:
    return usage.release_where_possible()


@shared_task
def ask_again_about_packs() -> int:
    return packs.ask_again_about_lost_payments() + packs.invoice_paid_packs()
