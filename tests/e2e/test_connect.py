"""A merchant connects Shopify and e-conomic the way each offers, in a browser, as on `make run`: IEX is installed
on the (sandbox's) shop's own page, and added to the e-conomic agreement on e-conomic's request access page; no
token is copied by hand."""

from playwright.sync_api import expect

from connections.models import Module
from iex.models import Integration
from tests.conftest import make_user
from tests.e2e.test_systems import sign_in


def test_install_iex_in_shopify_and_add_it_to_economic(
    context, site, sandbox, screenshot, transactional_db, settings
):
    settings.DEBUG, settings.SANDBOX_URL = True, sandbox.url  # `make run`: a system added points at the sandbox
    owner = make_user("owner@shop.example")
    Integration.create_for(owner, "Nordic Bikes")
    page = context()
    sign_in(page, site, "owner@shop.example")

    page.get_by_role("navigation").get_by_role("link", name="Systems").click()
    page.get_by_role("button", name="Add Shopify").click()
    expect(page.get_by_label("Access token")).to_be_hidden()  # a custom app's token: the alternative, folded
    page.get_by_label("Your shop's myshopify.com address").fill("sandbox")
    page.get_by_role("button", name="Install IEX in your Shopify shop").click()
    expect(page.get_by_role("heading", name="Install IEX on sandbox.myshopify.com?")).to_be_visible()
    page.get_by_role("button", name="Install").click()
    expect(page.get_by_text("Test connection succeeded: Connected to Sandbox Shop")).to_be_visible()
    expect(page.get_by_text("Connected through your Shopify login")).to_be_visible()
    screenshot(page, "16-shopify-installed")

    page.get_by_role("navigation").get_by_role("link", name="Systems").click()
    page.get_by_role("button", name="Add e-conomic").click()
    page.get_by_role("button", name="Connect to e-conomic").click()
    expect(page.get_by_role("heading", name="Add IEX to Sandbox ApS?")).to_be_visible()
    page.get_by_role("button", name="Add app").click()
    expect(
        page.get_by_text("Test connection succeeded: Connected to agreement 654321 (Sandbox ApS)")
    ).to_be_visible()
    screenshot(page, "17-economic-granted")

    shop, books = Module.objects.get(kind="shopify"), Module.objects.get(kind="economic")
    assert (
        shop.get_credentials()["access_token"].startswith("shpat_")
        and "app_secret_token" not in books.get_credentials()
    )
