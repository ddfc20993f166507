"""An owner sees the month's usage, fills in billing information, adds a test card, buys a pack, turns automatic
top-up off and changes plan on the Subscription page; a viewer sees the same page read-only."""

import re

from django.core import mail
from django.utils import timezone
from playwright.sync_api import expect

from billing.models import Pack, Plan, Subscription, Usage, month_of
from tests.e2e.test_systems import sign_in


def fact(page, name):
    return page.locator("#usage dt", has_text=name).locator("xpath=following-sibling::dd[1]")


def charged_now(page, step):
    return page.locator(f"{step} dt", has_text="Charged now").locator("xpath=following-sibling::dd[1]")


def test_owner_buys_a_pack_and_changes_plan_viewer_reads(
    context, site, screenshot, personas, stripe, transactional_db
):
    integration = personas.integration
    Subscription.of(integration, Plan.objects.get(code="standard"))
    Usage.objects.create(integration=integration, month=month_of(timezone.now()), included=1000, used=250)
    url = f"{site}/i/{integration.number}/subscription/"

    page = context()
    sign_in(page, site, personas.owner.email)
    page.goto(url)
    expect(page.get_by_role("heading", name="Standard plan")).to_be_visible()
    expect(page.locator("#usage .big")).to_have_text("250 of 1,000")
    meter = page.get_by_role("img", name="250 of 1,000 orders used")
    expect(meter.locator("span")).to_have_attribute("style", "width: 25%")
    expect(fact(page, "Bought this month")).to_have_text("0")
    expect(page.get_by_role("button", name="Buy", exact=True)).to_be_disabled()
    screenshot(page, "subscription-owner")

    page.get_by_label("Company").fill("Nordic Bikes ApS")
    page.get_by_label("Street address").fill("Cykelvej 1")
    page.get_by_label("Postcode").fill("8000")
    page.get_by_label("City").fill("Aarhus")
    page.get_by_label("Country").fill("DK")
    page.get_by_label("Invoice email").fill("books@shop.example")
    page.get_by_role("button", name="Save billing information").click()
    expect(page.get_by_text("Billing information saved.")).to_be_visible()

    page.get_by_label("Card number").fill("4242 4242 4242 4242")
    page.get_by_label("Expiry (MM/YY)").fill("12/30")
    page.get_by_label("CVC").fill("123")
    page.get_by_role("button", name="Add card").click()
    expect(page.get_by_text("Card ending in 4242 saved.")).to_be_visible()
    expect(page.locator("#card")).to_contain_text("ending in 4242, expires 12/2030")

    page.get_by_label("Packs", exact=True).fill("1")
    page.get_by_role("button", name="Buy", exact=True).click()
    # The amount first, and what the trial means for it; nothing is charged until it is confirmed.
    expect(page.get_by_role("heading", name="Buy 100 orders")).to_be_visible()
    expect(charged_now(page, "#confirm-packs")).to_have_text("79.00 kr. excl. VAT")
    expect(page.locator("#confirm-packs")).to_contain_text(
        "charged at once all the same, 79.00 kr. to the card on file; it does not end the trial"
    )
    screenshot(page, "subscription-pack-confirm")
    assert not Pack.objects.filter(integration=integration).exists()
    page.get_by_role("button", name="Pay 79.00 kr.").click()
    expect(
        page.get_by_text(re.compile(r"^Bought 100 orders for 79\.00 kr\..* A receipt is on its way\.$"))
    ).to_be_visible()
    expect(page.locator("#buy tbody tr")).to_have_count(1)
    expect(page.locator("#buy tbody tr").first).to_contain_text("Paid")
    expect(fact(page, "Bought this month")).to_have_text("100")
    expect(page.locator("#usage .big")).to_have_text("250 of 1,100")
    screenshot(page, "subscription-pack-bought")
    pack = Pack.objects.get(integration=integration)
    assert (pack.status, pack.orders, pack.amount) == ("paid", 100, 7900)
    receipts = [
        m for m in mail.outbox if m.subject == f"Receipt: 100 orders for integration no. {integration.number}"
    ]
    assert len(receipts) == 1 and receipts[0].to == [personas.owner.email]

    topup = page.get_by_label("Buy a pack automatically when orders run out")
    expect(topup).to_be_checked()
    topup.uncheck()
    page.get_by_role("button", name="Save top-up").click()
    expect(page.get_by_text("Automatic top-up is off. Orders beyond the allowance will be held.")).to_be_visible()
    page.reload()
    expect(page.get_by_label("Buy a pack automatically when orders run out")).not_to_be_checked()

    page.get_by_role("radio", name=re.compile(r"^Premium\b")).check()
    page.get_by_role("button", name="Change plan").click()
    # What it costs now (nothing in the trial) and from when, then the confirmation.
    expect(page.get_by_role("heading", name="Change to Premium")).to_be_visible()
    expect(charged_now(page, "#confirm-plan")).to_have_text("0.00 kr.")
    expect(page.locator("#confirm-plan")).to_contain_text("Free trial")
    screenshot(page, "subscription-plan-confirm")
    assert Subscription.objects.get(integration=integration).plan.code == "standard"
    page.get_by_role("button", name="Change to Premium").click()
    expect(
        page.get_by_text(re.compile(r"^Your plan is now Premium: Premium, 5,000 orders a month\."))
    ).to_be_visible()
    expect(page.locator("#plan-summary")).to_have_text("Premium, 5,000 orders a month.")
    expect(page.get_by_role("heading", name="Premium plan")).to_be_visible()
    expect(page.locator("#usage .big")).to_have_text("250 of 5,100")
    screenshot(page, "subscription-premium")
    sub = Subscription.objects.get(integration=integration)
    assert (sub.plan.code, sub.topup_enabled, sub.card_last4) == ("premium", False, "4242")

    viewer = context()
    sign_in(viewer, site, personas.viewer.email)
    viewer.goto(url)
    expect(viewer.get_by_role("heading", name="Premium plan")).to_be_visible()
    expect(viewer.locator("#usage .big")).to_have_text("250 of 5,100")
    expect(viewer.get_by_text("Only owners can change the subscription")).to_be_visible()
    expect(viewer.get_by_role("button", name="Buy", exact=True)).to_have_count(0)
    expect(viewer.locator("main form")).to_have_count(0)
    screenshot(viewer, "subscription-viewer")
