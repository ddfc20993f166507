"""Run inside the fault stack's Django (`Stack.python("tests.faults.inside:...")`), never in the test process."""

from __future__ import annotations

from django.db.models import Count


def pack_due(integration_id: int) -> None:
    """Basic plan, billing information and a Visa test card in Stripe, top-up on: and this month's orders used up,
    so the next order needs a pack."""
    from billing import stripe_api, subscriptions
    from billing.models import Plan, Subscription, Usage
    from iex.models import Integration

    integration = Integration.objects.get(pk=integration_id)
    sub = Subscription.of(integration)
    sub.plan = Plan.objects.get(code="basic")
    sub.topup_enabled, sub.topup_cap = True, 5
    sub.save()
    subscriptions.save_billing_info(
        sub,
        {
            "company": "Pack Shop ApS",
            "address": "Pakkevej 1",
            "postcode": "8000",
            "city": "Aarhus C",
            "country": "DK",
            "vat_number": "DK12345678",
            "invoice_email": "owner@pack.test",
        },
    )
    subscriptions.set_card(sub, stripe_api.test_card("4242424242424242", 12, 2030, "123"))
    usage = Usage.of(integration)
    usage.included = usage.used = sub.plan.included_orders
    usage.save()


def packs(integration_id: int) -> dict[str, int]:
    """The integration's order packs by status."""
    from billing.models import Pack

    return dict(
        Pack.objects.filter(integration_id=integration_id).values_list("status").annotate(n=Count("pk")).order_by()
    )
