"""The Systems and Connections pages: add, connect (and test), settings, activate, disconnect, remove."""

import pytest
import responses
from django.urls import reverse

from connections.models import Connection, Module

pytestmark = pytest.mark.django_db

SHOP_API = "https://nordic-bikes.myshopify.com/admin/api/2025-01"


def url(name, personas, *args):
    return reverse(name, args=[personas.integration.number, *args])


def add(personas, kind, user=None):
    client = personas.client(user or personas.admin)
    return client.post(url("add_system", personas), {"kind": kind})


def test_systems_page_lists_the_catalogue(personas):
    body = personas.client(personas.viewer).get(url("systems", personas)).content.decode()
    assert "No systems yet" in body
    assert "Add Shopify" not in body  # viewers cannot add
    body = personas.client(personas.admin).get(url("systems", personas)).content.decode()
    assert "Add Shopify" in body and "Add e-conomic" in body


def test_adding_both_systems_creates_their_connections_inactive(personas):
    response = add(personas, "shopify")
    module = personas.integration.modules.get()
    assert response.status_code == 302 and response.url == module.get_absolute_url()
    add(personas, "economic")
    flows = sorted(personas.integration.connections.values_list("flow", "active"))
    assert flows == [("credit_notes", False), ("orders", False), ("products", False), ("stock", False)]
    add(personas, "shopify")  # twice is once
    assert personas.integration.modules.count() == 2


def test_on_the_embedded_defaults_a_new_system_points_at_the_sandbox(personas, settings):
    add(personas, "economic")
    assert personas.integration.modules.get().base_url == ""  # production: the system itself
    settings.DEBUG = True  # `make run`
    add(personas, "dinero")
    assert personas.integration.modules.get(kind="dinero").base_url == f"{settings.SANDBOX_URL}/dinero"


def test_unknown_kind_is_refused(personas):
    add(personas, "sap")
    assert not personas.integration.modules.exists()


def test_viewer_cannot_add(personas):
    assert add(personas, "shopify", personas.viewer).status_code == 403
    assert not personas.integration.modules.exists()


@responses.activate
def test_connect_saves_encrypted_credentials_and_tests_them(personas):
    add(personas, "shopify")
    module = personas.integration.modules.get()
    responses.get(f"{SHOP_API}/shop.json", json={"shop": {"name": "Nordic Bikes", "domain": "nordicbikes.dk"}})
    client = personas.client(personas.admin)
    response = client.post(
        url("connect_module", personas, module.code),
        {
            "shop_domain": "https://Nordic-Bikes.myshopify.com/",
            "access_token": " shpat_secret ",
            "webhook_secret": "whsec",
        },
        follow=True,
    )
    body = response.content.decode()
    assert "Test connection succeeded: Connected to Nordic Bikes" in body
    assert "shpat_secret" not in body and "whsec" not in body  # never shown again
    module.refresh_from_db()
    assert "shpat_secret" not in module.credentials  # encrypted at rest
    assert module.get_credentials() == {
        "shop_domain": "nordic-bikes.myshopify.com",
        "access_token": "shpat_secret",
        "webhook_secret": "whsec",
    }
    assert responses.calls[0].request.headers["X-Shopify-Access-Token"] == "shpat_secret"

    # Saving again with the secrets left empty keeps them.
    client.post(url("connect_module", personas, module.code), {"shop_domain": "nordic-bikes.myshopify.com"})
    module.refresh_from_db()
    assert module.get_credentials()["access_token"] == "shpat_secret"


@responses.activate
def test_failed_test_says_what_failed_in_iexs_words(personas, connected):
    """Never the answering server's own words: an address a merchant entered must not show them what a server says,
    nor which of its ports are open. (The Log keeps the system's answer for the merchant's own transfers.)"""
    shop = personas.integration.modules.get(kind="shopify")
    test = url("test_module", personas, shop.code)
    for status, said in [
        (401, "Shopify refused the credentials (401): check them"),
        (404, "nothing Shopify knows answered at this address (404): check it"),
        (502, "Shopify answered with an error (502): test again later"),
        (418, "Shopify refused the request (418)"),
    ]:
        responses.get(f"{SHOP_API}/shop.json", status=status, json={"errors": "internal: db01.corp password=x"})
        page = personas.client(personas.viewer).post(test, follow=True).content.decode()
        assert f"Test connection failed: {said}" in page and "db01" not in page
        responses.reset()
    responses.get(f"{SHOP_API}/shop.json", body="<html>a router's login page</html>")
    page = personas.client(personas.viewer).post(test, follow=True).content.decode()
    assert "Test connection failed: the address answered, but not as Shopify does" in page


def test_bad_credentials_form_shows_errors_next_to_fields(personas):
    add(personas, "shopify")
    module = personas.integration.modules.get()
    response = personas.client(personas.admin).post(
        url("connect_module", personas, module.code), {"shop_domain": "not a domain"}
    )
    assert response.status_code == 400
    body = response.content.decode()
    assert "Enter the shop&#x27;s domain" in body and "This field is required." in body
    module.refresh_from_db()
    assert not module.connected


def test_settings_are_saved_and_validated(personas, connected):
    books = personas.integration.modules.get(kind="economic")
    client = personas.client(personas.admin)
    data = {**books.settings_values(), "rounding_threshold": "0.25", "document_type": "booked"}
    data = {k: v for k, v in data.items() if v is not False}
    assert client.post(url("save_module_settings", personas, books.code), data).status_code == 302
    books.refresh_from_db()
    assert books.settings_values()["rounding_threshold"] == "0.25"
    assert books.settings_values()["document_type"] == "booked"
    assert books.settings_values()["update_drafts"] is True

    response = client.post(url("save_module_settings", personas, books.code), {**data, "rounding_threshold": "-1"})
    assert response.status_code == 400
    assert "greater than or equal to 0" in response.content.decode()


def test_viewer_cannot_change_a_module(personas, connected):
    shop = personas.integration.modules.get(kind="shopify")
    client = personas.client(personas.viewer)
    for name in [
        "connect_module",
        "save_module_settings",
        "set_module_active",
        "disconnect_module",
        "remove_module",
        "rotate_webhook_address",
    ]:
        assert client.post(url(name, personas, shop.code)).status_code == 403, name
    shop.refresh_from_db()
    assert shop.connected and shop.active


def test_deactivate_disconnect_and_remove(personas, connected):
    shop = personas.integration.modules.get(kind="shopify")
    client = personas.client(personas.admin)
    client.post(url("set_module_active", personas, shop.code), {"next": url("settings", personas)})
    shop.refresh_from_db()
    assert not shop.active
    assert connected.skip_reason() == "Shopify is inactive"

    client.post(url("disconnect_module", personas, shop.code))
    shop.refresh_from_db()
    connected.refresh_from_db()
    assert not shop.connected and not connected.active

    # Removing a system changes the price: owners only (ROLE_HELP), and the admin is told so on the page
    assert client.post(url("remove_module", personas, shop.code)).status_code == 403
    assert "Owners remove systems" in client.get(url("module", personas, shop.code)).content.decode()
    personas.client(personas.owner).post(url("remove_module", personas, shop.code))
    assert not personas.integration.modules.filter(kind="shopify").exists()
    assert not Connection.objects.filter(source=shop.pk).exists()


def test_module_active_never_redirects_off_site(personas, connected):
    shop = personas.integration.modules.get(kind="shopify")
    response = personas.client(personas.admin).post(
        url("set_module_active", personas, shop.code), {"next": "https://evil.example/"}
    )
    assert response.url == shop.get_absolute_url()


def test_webhook_address_is_shown_and_can_be_rotated(personas, connected):
    shop = personas.integration.modules.get(kind="shopify")
    client = personas.client(personas.admin)
    assert shop.webhook_url in client.get(shop.get_absolute_url()).content.decode()
    old = shop.webhook_token
    client.post(url("rotate_webhook_address", personas, shop.code))
    shop.refresh_from_db()
    assert shop.webhook_token != old and len(shop.webhook_token) >= 32


@pytest.mark.parametrize("name", ["systems", "connections"])
def test_pages_reject_post(personas, name):
    assert personas.client(personas.owner).post(url(name, personas)).status_code == 405


@pytest.mark.parametrize(
    "name",
    [
        "add_system",
        "connect_module",
        "test_module",
        "save_module_settings",
        "set_module_active",
        "disconnect_module",
        "remove_module",
        "rotate_webhook_address",
    ],
)
def test_changes_reject_get(personas, connected, name):
    shop = personas.integration.modules.get(kind="shopify")
    args = [] if name == "add_system" else [shop.code]
    assert personas.client(personas.owner).get(url(name, personas, *args)).status_code == 405


# /i/<number>/connections/


def test_connections_page_activates_and_sets_the_trigger(personas, connected):
    products = personas.integration.connections.get(flow="products")
    client = personas.client(personas.admin)
    body = client.get(url("connections", personas)).content.decode()
    assert "Shopify &gt; e-conomic: orders" in body and "e-conomic &gt; Shopify: stock" in body
    client.post(url("update_connection", personas, products.code), {"active": "on"})
    client.post(url("update_connection", personas, products.code), {"trigger": "webhook"})
    products.refresh_from_db()
    assert products.active and products.trigger == "webhook"
    client.post(url("update_connection", personas, products.code), {"active": "off"})
    products.refresh_from_db()
    assert not products.active


def test_a_connection_needs_both_systems_connected(personas, connected):
    personas.integration.modules.get(kind="economic").disconnect()
    products = personas.integration.connections.get(flow="products")
    response = personas.client(personas.admin).post(
        url("update_connection", personas, products.code), {"active": "on"}, follow=True
    )
    assert "Connect e-conomic before activating" in response.content.decode()
    products.refresh_from_db()
    assert not products.active


def test_viewer_cannot_change_a_connection(personas, connected):
    response = personas.client(personas.viewer).post(url("update_connection", personas, connected.code), {})
    assert response.status_code == 403
    connected.refresh_from_db()
    assert connected.active


def test_connection_update_rejects_get(personas, connected):
    assert (
        personas.client(personas.admin).get(url("update_connection", personas, connected.code)).status_code == 405
    )


def test_credentials_never_reach_the_admin(personas, connected, staff_client):
    shop = Module.objects.get(kind="shopify")
    response = staff_client.get(f"/admin/connections/module/{shop.pk}/change/")
    assert response.status_code == 200
    assert (
        "nordic-bikes" not in response.content.decode() and shop.credentials[:20] not in response.content.decode()
    )


def test_modules_are_switched_from_the_settings_page_too(personas, connected):
    client = personas.client(personas.admin)
    page = client.get(url("settings", personas)).content.decode()
    assert "Deactivate Shopify" in page and "Deactivate e-conomic" in page
    shop = personas.integration.modules.get(kind="shopify")
    response = client.post(
        url("set_module_active", personas, shop.code), {"next": url("settings", personas) + "#systems"}
    )
    assert response.url == url("settings", personas) + "#systems"
    shop.refresh_from_db()
    assert not shop.active


def test_credentials_saved_under_an_old_key_can_be_entered_again(personas, connected, settings):
    from cryptography.fernet import Fernet

    settings.CREDENTIALS_KEYS = [Fernet.generate_key().decode()]  # the old key is gone
    shop = personas.integration.modules.get(kind="shopify")
    client = personas.client(personas.admin)
    page = client.get(shop.get_absolute_url()).content.decode()
    assert "cannot be decrypted with the configured keys" in page
    client.post(
        url("connect_module", personas, shop.code),
        {"shop_domain": "nordic-bikes.myshopify.com", "access_token": "shpat_new", "webhook_secret": "w"},
    )
    shop.refresh_from_db()
    assert shop.get_credentials()["access_token"] == "shpat_new"


@responses.activate
def test_the_badge_says_what_the_last_answer_said(personas, connected):
    """A failed test no longer leaves "Connected" in the heading and the Systems list."""
    shop = personas.integration.modules.get(kind="shopify")
    client = personas.client(personas.admin)

    def badges():
        page = client.get(url("module", personas, shop.code)).content.decode()
        listed = client.get(url("systems", personas)).content.decode()
        return page.split("</h1>")[0].split("<h1>")[1], listed

    responses.get(f"{SHOP_API}/shop.json", status=404, json={"errors": "Not Found"})
    client.post(url("test_module", personas, shop.code))
    heading, listed = badges()
    assert "Test failed" in heading and "Connected" not in heading and "Test failed" in listed
    responses.replace(responses.GET, f"{SHOP_API}/shop.json", status=401, json={"errors": "Invalid API key"})
    client.post(url("test_module", personas, shop.code))
    heading, listed = badges()
    assert "Refused" in heading and "Refused" in listed
    responses.replace(
        responses.GET, f"{SHOP_API}/shop.json", json={"shop": {"name": "Nordic Bikes", "domain": "x"}}
    )
    client.post(url("test_module", personas, shop.code))
    heading, _ = badges()
    assert "Connected" in heading and "Refused" not in heading and "Test failed" not in heading


def test_a_secret_is_said_saved_only_when_one_was(personas, connected):
    """Issue 21 (1): the webhook secret said "Saved" though none was entered."""
    shop = personas.integration.modules.get(kind="shopify")
    client = personas.client(personas.admin)

    def secret_field():
        page = client.get(url("module", personas, shop.code)).content.decode()
        return page.split('name="webhook_secret"')[1].split(">")[0]

    assert "Saved" in secret_field()
    shop.set_credentials({"shop_domain": "nordic-bikes.myshopify.com", "access_token": "shpat_secret"})
    shop.save()
    assert "Saved" not in secret_field()
