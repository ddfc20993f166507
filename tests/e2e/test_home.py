"""Home of the demo integration in a browser: the counts, the chart, and a failure that links to its log line."""

import json
from datetime import datetime
from io import StringIO

from django.core.management import call_command
from playwright.sync_api import expect

from connections import pipeline
from connections.models import Connection


def test_demo_home_shows_chart_counts_and_a_failure_linking_to_its_log_line(
    context, site, sandbox, screenshot, settings, transactional_db
):
    settings.SANDBOX_URL = sandbox.url
    out = StringIO()
    call_command("seed_demo", "--json", stdout=out)
    demo = json.loads(out.getvalue())
    orders = Connection.objects.get(integration__number=demo["integration"]["number"], flow="orders")
    sandbox.configure(
        {
            "faults": [
                {
                    "path_contains": "/economic/invoices/drafts",
                    "status": 400,
                    "times": 1,
                    "body": '{"message": "Layout 19 does not exist"}',
                }
            ]
        }
    )
    for _ in range(3):
        order = sandbox.create_order({"financial_status": "paid", "country": "DK"})
        pipeline.receive(
            orders, str(order["id"]), order["name"], datetime.fromisoformat(order["updated_at"]), order
        )

    page = context()
    page.goto(f"{site}/accounts/login/")
    page.locator("#id_login").fill(demo["login"]["email"])
    page.locator("#id_password").fill(demo["login"]["password"])
    page.get_by_role("button", name="Sign In").click()
    expect(page.get_by_role("heading", name="Demo Shop", exact=True)).to_be_visible()
    page.keyboard.press("Tab")  # the first stop skips the menu
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("main#main")).to_be_focused()

    orders_card = page.locator(".card", has=page.get_by_role("heading", name="Orders", exact=True))
    expect(orders_card.locator(".big")).to_have_text("3")  # two created, one failed
    chart = page.get_by_role("img", name="Transfers per day for the last 30 days")
    expect(chart).to_be_visible()
    expect(chart.locator("rect.bar-created")).to_have_count(1)
    expect(chart.locator("rect.bar-failed")).to_have_count(1)
    page.get_by_text("The numbers", exact=True).click()
    expect(page.locator(".chart-table tbody tr").first.locator("td")).to_have_text(
        ["2", "0", "0", "0", "0", "1"]
    )  # created, updated, skipped, warning, held, failed
    screenshot(page, "home-demo")

    failures = page.locator("#failures")
    expect(failures).to_contain_text("Layout 19 does not exist")
    failures.get_by_role("link").first.click()
    line = page.locator("details.log-row[open]")
    expect(line).to_have_count(1)
    expect(line.locator(".log-detail")).to_contain_text("Layout 19 does not exist")
    screenshot(page, "home-failure-in-log")
