"""What billing tells the owners by email: a subject, a few paragraphs and a link (the Subscription page, or a
page of Stripe's such as an invoice)."""

from __future__ import annotations

from django.conf import settings
from django.db import transaction
from django.urls import reverse

from iex.lib import emails
from iex.models import Integration


def notify(
    integration: Integration,
    subject: str,
    paragraphs: list[str],
    link_label: str = "",
    anchor: str = "",
    url: str = "",
) -> None:
    """Email the owners about billing, once the transaction commits, with a link to `url` (else the Subscription
    page at `anchor`)."""
    page = settings.SITE_URL.rstrip("/") + reverse("subscription", args=[integration.number]) + anchor
    context = {
        "integration": integration,
        "subject": subject,
        "paragraphs": paragraphs,
        "link": url or page,
        "link_label": link_label or "Open the Subscription page",
    }
    transaction.on_commit(lambda: emails.send("billing_notice", integration.owner_emails(), context))
