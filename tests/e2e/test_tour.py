"""A tour of every page of the menu, and a Log line folded out, as owner, admin and viewer on a desktop and a phone:
each page answers 200 without console or page errors, is no wider than the window, and leaves a screenshot
under var/screenshots/tour/<role>-<width>-<page>.png."""

from collections import Counter
from itertools import product

import pytest
from playwright.sync_api import expect

from scheduling.models import Job
from scheduling.tasks import run_job
from tests.e2e.conftest import SCREENSHOTS
from tests.e2e.test_systems import sign_in
from transferlog.models import Transfer

WIDTHS = {"desktop": {"width": 1280, "height": 860}, "phone": {"width": 390, "height": 844}}
PAGES = {
    "home": "",
    "systems": "systems/",
    "schedule": "schedule/",
    "connections": "connections/",
    "subscription": "subscription/",
    "settings": "settings/",
    "log": "log/",
}


@pytest.fixture
def shop(personas, invitation, sandbox, sandboxed, transactional_db):
    """The personas' integration with an invitation out and Shopify and e-conomic (the sandbox) connected. Its
    orders job has run twice: orders created, one skipped for its state, then a change e-conomic refused."""
    Job.ensure_all(personas.integration)
    orders = [
        sandbox.create_order({"financial_status": s, "country": "DK"}) for s in ("paid", "paid", "paid", "pending")
    ]
    run_job(sandboxed.job.pk)
    sandbox.update_order(orders[0]["id"], {"shipping_lines": [{"price": "49.00"}]})
    refusal = {"path_contains": "/economic/invoices/drafts/", "status": 400}
    sandbox.configure({"faults": [{**refusal, "body": '{"message": "Layout 19 does not exist"}'}]})
    run_job(sandboxed.job.pk)
    assert Counter(Transfer.objects.values_list("status", flat=True)) == {"created": 3, "skipped": 1, "failed": 1}
    return personas


def visit(page, errors: list[str], shot: str, screenshot, url: str | None = None) -> list[str]:
    """Open url (or take the page as it is), save its screenshot as tour/<shot>, and say what is wrong with it."""
    problems = []
    if url:
        response = page.goto(url)
        if response is None or response.status != 200:
            problems.append(f"answered {response and response.status}, not 200")
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    if overflow > 1:
        problems.append(f"{overflow}px wider than the window")
    screenshot(page, f"tour/{shot}")
    problems += errors
    errors.clear()
    return [f"{shot}: {problem}" for problem in problems]


@pytest.mark.parametrize(
    ("role", "width"),
    [pytest.param(r, w, id=f"{r}-{w}") for r, w in product(("owner", "admin", "viewer"), WIDTHS)],
)
def test_tour(role, width, shop, context, site, screenshot):
    (SCREENSHOTS / "tour").mkdir(parents=True, exist_ok=True)
    page = context()
    page.set_viewport_size(WIDTHS[width])
    errors = []
    page.on("console", lambda message: message.type == "error" and errors.append(f"console: {message.text}"))
    page.on("pageerror", lambda error: errors.append(f"page error: {error}"))
    base = f"{site}/i/{shop.integration.number}/"
    sign_in(page, site, getattr(shop, role).email)
    page.wait_for_url(base)

    problems = []
    for name, path in PAGES.items():
        problems += visit(page, errors, f"{role}-{width}-{name}", screenshot, base + path)
        if name == "subscription":  # every member reads it; only the owner gets its forms
            expect(page.get_by_text("Only owners can change")).to_have_count(0 if role == "owner" else 1)
            expect(page.get_by_role("button", name="Buy", exact=True)).to_have_count(1 if role == "owner" else 0)

    # Every role folds out a failed line of the Log and may retry it.
    line = page.locator("details.log-row.status-failed")
    line.locator("summary").click()
    expect(line.locator(".formats pre")).to_have_count(2)  # as received from Shopify, as sent to e-conomic
    expect(line.get_by_role("button", name="Retry this transfer")).to_be_visible()
    problems += visit(page, errors, f"{role}-{width}-log-line", screenshot)
    assert not problems, "\n".join(problems)
