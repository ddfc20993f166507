"""The Stripe invoices of an integration's customer (subscription periods, plan changes, order packs) for the
Subscription page: read a page at a time and kept a minute, since every view of the page would otherwise ask
Stripe; forgotten when IEX makes one, so a pack just bought is listed at once."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.core.cache import cache

from billing import stripe_api
from billing.models import Subscription

logger = logging.getLogger(__name__)

PER_PAGE = 12
KEEP_SECONDS = 60


@dataclass(frozen=True)
class Page:
    invoices: list[stripe_api.Invoice]
    older: str  # the id to read the next, older page after; "" when none follow


def page(sub: Subscription, after: str = "") -> Page | None:
    """A page of the invoices, newest first, after the invoice `after`; None when Stripe does not answer."""
    if not sub.stripe_customer:
        return Page([], "")
    key = _key(sub.stripe_customer, after)
    if (kept := cache.get(key)) is not None:
        return kept
    try:
        found, older = stripe_api.invoices(sub.stripe_customer, PER_PAGE, after)
    except stripe_api.StripeError as exc:
        logger.warning("could not list the invoices of %s: %s", sub.stripe_customer, exc)
        return None
    read = Page(found, older)
    cache.set(key, read, KEEP_SECONDS)
    return read


def forget(sub: Subscription) -> None:
    """A new invoice goes first: the first page is read again. (Older pages are read after an id: they stay.)"""
    if sub.stripe_customer:
        cache.delete(_key(sub.stripe_customer, ""))


def _key(customer: str, after: str) -> str:
    return f"iex-invoices-{customer}-{after}"
