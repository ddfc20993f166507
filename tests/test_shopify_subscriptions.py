"""A Shopify shop where IEX's app is installed gets its webhooks without the merchant copying anything: switching a
connection to Webhook subscribes the shop (the sandbox's, over HTTP) to the topics the connection needs at the
module's address, switching back or making a new address takes them away or moves them, a refusal leaves the
connection on its schedule and says why, and the shop's deliveries are verified with IEX's app secret. A shop
connected with the merchant's own app keeps the steps to register them by hand."""

import json
from datetime import timedelta
from pathlib import Path

import pytest
import requests
import time_machine
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape

from connections.models import Connection, Delivery, Module
from connections.systems.shopify.webhooks import signature
from tests.test_oauth_shopify import install, start_install

pytestmark = pytest.mark.django_db

ORDER = json.loads((Path(__file__).parent / "payloads" / "shopify_order.json").read_text())
ORDER_TOPICS = ["orders/create", "orders/updated", "orders/paid", "orders/cancelled", "app/uninstalled"]
APP_SECRET = "shpss_sandbox"  # the sandbox's app, IEX's in DEBUG


@pytest.fixture
def shop(sandbox, personas):
    """Shopify, IEX's app installed in the sandbox's shop by the owner, and e-conomic connected: the connections."""
    shop = Module.objects.create(
        integration=personas.integration, kind="shopify", base_url=f"{sandbox.url}/shopify"
    )
    books = Module(integration=personas.integration, kind="economic", base_url=f"{sandbox.url}/economic")
    books.set_credentials({"app_secret_token": "sandbox-app-secret", "agreement_grant_token": "sandbox-grant"})
    books.save()
    Connection.ensure_for(personas.integration)
    owner = personas.client(personas.owner)
    owner.get(install(start_install(owner, shop)))
    shop.refresh_from_db()
    assert shop.get_credentials()["scope"]
    return shop


def subscribed(shop, token=None):
    """(topic, address) of each subscription the app of `token` (IEX's, by default) has in the shop."""
    token = token or shop.get_credentials()["access_token"]
    listed = requests.get(
        f"{shop.base_url}/admin/api/2025-01/webhooks.json", headers={"X-Shopify-Access-Token": token}, timeout=5
    )
    assert listed.status_code == 200, listed.text
    return sorted((hook["topic"], hook["address"]) for hook in listed.json()["webhooks"])


def switch(client, connection, trigger):
    number = connection.integration.number
    return client.post(
        reverse("update_connection", args=[number, connection.code]), {"trigger": trigger}, follow=True
    )


def at(address, topics):
    return sorted((topic, address) for topic in topics)


def test_switching_to_webhooks_registers_the_flows_topics_in_the_shop(shop, personas):
    admin = personas.client(personas.admin)
    orders = shop.outgoing.get(flow="orders")
    page = switch(admin, orders, "webhook").content.decode()
    assert subscribed(shop) == at(shop.webhook_url, ORDER_TOPICS)
    assert "Shopify &gt; e-conomic: orders: inactive, webhook-driven." in page
    said = f"IEX registered these webhooks in your shop: {', '.join(ORDER_TOPICS)}."
    assert said in page and shop.webhook_url in page
    assert escape(shop.system.webhook_setup) not in page  # nothing for the merchant to copy
    assert said in admin.get(shop.get_absolute_url()).content.decode()

    # Credit notes too: their refunds' topic joins; the same switch twice makes nothing twice.
    credit_notes = shop.outgoing.get(flow="credit_notes")
    switch(admin, credit_notes, "webhook")
    switch(admin, credit_notes, "webhook")
    assert subscribed(shop) == at(shop.webhook_url, [*ORDER_TOPICS, "refunds/create"])


def test_switching_back_to_schedule_takes_iexs_webhooks_away(shop, personas):
    admin = personas.client(personas.admin)
    orders, products = shop.outgoing.get(flow="orders"), shop.outgoing.get(flow="products")
    switch(admin, orders, "webhook")
    switch(admin, products, "webhook")
    switch(admin, orders, "schedule")
    assert subscribed(shop) == at(shop.webhook_url, ["products/create", "products/update", "app/uninstalled"])
    page = switch(admin, products, "schedule").content.decode()
    assert subscribed(shop) == []
    assert "IEX registered these webhooks" not in page


def test_subscriptions_there_already_are_kept_and_another_apps_left_alone(shop, personas, sandbox):
    token = shop.get_credentials()["access_token"]
    api = f"{shop.base_url}/admin/api/2025-01/webhooks.json"
    made = requests.post(
        api,
        json={"webhook": {"topic": "orders/create", "address": shop.webhook_url, "format": "json"}},
        headers={"X-Shopify-Access-Token": token},
        timeout=5,
    ).json()["webhook"]
    # The merchant's own custom app subscribed the same address: IEX's app neither sees nor touches it.
    custom = {"topic": "orders/updated", "address": shop.webhook_url, "format": "json"}
    requests.post(api, json={"webhook": custom}, headers={"X-Shopify-Access-Token": "shpat_sandbox"}, timeout=5)

    admin = personas.client(personas.admin)
    orders = shop.outgoing.get(flow="orders")
    switch(admin, orders, "webhook")
    hooks = requests.get(api, headers={"X-Shopify-Access-Token": token}, timeout=5).json()["webhooks"]
    assert made["id"] in [hook["id"] for hook in hooks] and len(hooks) == len(ORDER_TOPICS)
    switch(admin, orders, "schedule")
    assert subscribed(shop) == []
    assert subscribed(shop, "shpat_sandbox") == [("orders/updated", shop.webhook_url)]


def test_a_new_address_moves_iexs_webhooks_to_it(shop, personas):
    admin = personas.client(personas.admin)
    switch(admin, shop.outgoing.get(flow="orders"), "webhook")
    before = shop.webhook_url
    number = personas.integration.number
    page = admin.post(reverse("rotate_webhook_address", args=[number, shop.code]), follow=True).content.decode()
    shop.refresh_from_db()
    assert shop.webhook_url != before
    assert subscribed(shop) == at(shop.webhook_url, ORDER_TOPICS)
    assert "The webhook address changed: IEX moved its webhooks in Shopify to it." in page


def test_a_new_address_iex_cannot_move_its_webhooks_to_leaves_the_connections_on_schedule(shop, personas, control):
    admin = personas.client(personas.admin)
    orders = shop.outgoing.get(flow="orders")
    switch(admin, orders, "webhook")
    control("config", {"faults": [{"path_contains": "/webhooks", "status": 503}]})
    number = personas.integration.number
    page = admin.post(reverse("rotate_webhook_address", args=[number, shop.code]), follow=True).content.decode()
    assert "but IEX could not move its webhooks in Shopify to it" in page and "answered 503" in page
    orders.refresh_from_db()
    assert orders.trigger == "schedule"
    shop.refresh_from_db()
    assert subscribed(shop) == []  # the second try took away those at the old address


def test_a_refused_registration_leaves_the_connection_on_schedule_and_says_why(shop, personas):
    # An install that granted orders but not products: Shopify refuses the products topics (its 422).
    shop.set_credentials({**shop.get_credentials(), "access_token": _token_for(shop, "read_orders")})
    shop.save_credentials()
    admin = personas.client(personas.admin)
    orders, products = shop.outgoing.get(flow="orders"), shop.outgoing.get(flow="products")
    switch(admin, orders, "webhook")
    page = switch(admin, products, "webhook").content.decode()
    assert (
        "IEX could not register the webhooks of Shopify &gt; e-conomic: products in Shopify: Shopify refused the "
        "webhook products/create (topic Invalid topic specified: products/create." in page
    )
    assert "It stays on a schedule." in page and "products: inactive, schedule-driven." in page
    products.refresh_from_db()
    orders.refresh_from_db()
    assert (products.trigger, orders.trigger) == ("schedule", "webhook")
    assert subscribed(shop) == at(shop.webhook_url, ORDER_TOPICS)  # the orders' webhooks are kept


def test_activating_a_webhook_connection_registers_what_the_shop_dropped(shop, personas, sandbox):
    admin = personas.client(personas.admin)
    orders = shop.outgoing.get(flow="orders")
    switch(admin, orders, "webhook")
    with sandbox.state.lock:  # Shopify deletes a subscription whose deliveries keep failing
        sandbox.state.shopify.subscriptions.clear()
    number = personas.integration.number
    admin.post(reverse("update_connection", args=[number, orders.code]), {"active": "on"})
    assert subscribed(shop) == at(shop.webhook_url, ORDER_TOPICS)


def test_shopify_itself_takes_only_an_https_address(personas, settings):
    """The real Shopify (no other address set) refuses http addresses: IEX says so without asking it."""
    shop = Module(integration=personas.integration, kind="shopify")
    shop.set_credentials({"shop_domain": "nordic-bikes.myshopify.com", "access_token": "shpat_x", "scope": "x"})
    shop.save()
    books = Module(integration=personas.integration, kind="economic")
    books.set_credentials({"app_secret_token": "a", "agreement_grant_token": "g"})
    books.save()
    Connection.ensure_for(personas.integration)
    settings.SITE_URL = "http://iex.example"
    orders = shop.outgoing.get(flow="orders")
    page = switch(personas.client(personas.admin), orders, "webhook").content.decode()
    assert (
        "Shopify posts webhooks only to https:// addresses, and IEX&#x27;s is "
        f"http://iex.example/hooks/{shop.webhook_token}/" in page
    )
    orders.refresh_from_db()
    assert orders.trigger == "schedule"


def test_a_custom_apps_shop_keeps_the_steps_and_iex_registers_nothing(sandboxed, personas, sandbox):
    shop = sandboxed.source
    admin = personas.client(personas.admin)
    page = switch(admin, sandboxed, "webhook").content.decode()
    assert "Webhooks to register" in page and escape(shop.system.webhook_setup) in page
    assert "IEX registered" not in page
    assert subscribed(shop, "shpat_sandbox") == []
    assert escape(shop.system.webhook_setup) in admin.get(shop.get_absolute_url()).content.decode()


def test_only_writers_of_the_integration_change_the_shops_webhooks(shop, personas):
    orders = shop.outgoing.get(flow="orders")
    number = personas.integration.number
    update = reverse("update_connection", args=[number, orders.code])
    rotate = reverse("rotate_webhook_address", args=[number, shop.code])
    for user, status in ((personas.viewer, 403), (personas.outsider, 404)):
        client = personas.client(user)
        assert client.post(update, {"trigger": "webhook"}).status_code == status
        assert client.post(rotate).status_code == status
    assert subscribed(shop) == []
    shop.refresh_from_db()
    assert shop.outgoing.get(flow="orders").trigger == "schedule"


# --- the deliveries: signed with IEX's app secret ------------------------------------------------------------------


def post(module, secret, event="evt-1"):
    raw = json.dumps(ORDER).encode()
    return Client().post(
        f"/hooks/{module.webhook_token}/",
        raw,
        content_type="application/json",
        HTTP_X_SHOPIFY_TOPIC="orders/create",
        HTTP_X_SHOPIFY_EVENT_ID=event,
        HTTP_X_SHOPIFY_HMAC_SHA256=signature(secret, raw),
    )


def test_iexs_app_secret_verifies_an_installed_shops_webhooks_and_no_other_shops(shop, personas):
    assert post(shop, APP_SECRET).status_code == 200
    assert post(shop, "whsec", event="evt-2").status_code == 401  # no secret of its own to sign with
    assert Delivery.objects.filter(module=shop).count() == 1
    # A shop connected with the merchant's own app signs with that app's secret, entered as the webhook secret.
    custom = Module(integration=personas.other, kind="shopify")
    custom.set_credentials(
        {"shop_domain": "elsewhere.myshopify.com", "access_token": "t", "webhook_secret": "whsec"}
    )
    custom.save()
    assert post(custom, APP_SECRET).status_code == 401
    assert post(custom, "whsec").status_code == 200


def test_installed_over_a_custom_app_its_secret_is_taken_for_an_hour_more(sandboxed, personas):
    shop = sandboxed.source
    owner = personas.client(personas.owner)
    owner.get(install(start_install(owner, shop)))
    shop.refresh_from_db()
    assert "webhook_secret" not in shop.get_credentials()
    assert post(shop, "whsec").status_code == 200  # the custom app's webhooks, until they are removed
    assert post(shop, APP_SECRET, event="evt-2").status_code == 200
    with time_machine.travel(timezone.now() + timedelta(hours=1, minutes=1)):
        assert post(shop, "whsec", event="evt-3").status_code == 401
        assert post(shop, APP_SECRET, event="evt-4").status_code == 200


def _token_for(shop, scope):
    """A token of IEX's app, installed in the sandbox's shop granting only `scope`."""
    query = {
        "client_id": "iex-sandbox",
        "scope": scope,
        "redirect_uri": "http://127.0.0.1:8000/connect/shopify/return/",
        "state": "s",
    }
    back = requests.post(f"{shop.base_url}/admin/oauth/authorize", data=query, allow_redirects=False, timeout=5)
    code = back.headers["Location"].split("code=")[1].split("&")[0]
    taken = {"client_id": "iex-sandbox", "client_secret": APP_SECRET, "code": code}
    return requests.post(f"{shop.base_url}/admin/oauth/access_token", json=taken, timeout=5).json()["access_token"]


# --- the sandbox's Shopify refuses what Shopify refuses ------------------------------------------------------------


def test_the_sandboxs_webhook_subscriptions_are_shopifys(sandbox):
    api = f"{sandbox.url}/shopify/admin/api/2025-01"
    shop = Module(base_url=f"{sandbox.url}/shopify")
    iex = {"X-Shopify-Access-Token": _token_for(shop, "read_orders")}  # IEX's app, granted orders only
    custom = {"X-Shopify-Access-Token": "shpat_sandbox"}  # the merchant's custom app: every scope

    def create(headers, **webhook):
        return requests.post(f"{api}/webhooks.json", json={"webhook": webhook}, headers=headers, timeout=5)

    address = "https://iex.example/hooks/abc/"
    made = create(iex, topic="orders/create", address=address, format="json")
    assert made.status_code == 201
    hook = made.json()["webhook"]
    assert {key: hook[key] for key in ("topic", "address", "format", "api_version")} == {
        "topic": "orders/create",
        "address": address,
        "format": "json",
        "api_version": "2025-01",
    }
    refusals = [
        (
            create(iex, topic="orders/create", address=address),
            {"address": ["for this topic has already been taken"]},
        ),
        (create(iex, topic="orders/create"), {"address": ["can't be blank"]}),
        (create(iex, address=address), {"topic": ["can't be blank"]}),
        (create(iex, topic="orders/paid", address="ftp://iex.example/"), {"address": ["is invalid"]}),
    ]
    for refused, errors in refusals:
        assert (refused.status_code, refused.json()["errors"]) == (422, errors)
    for topic in ("products/create", "carts/explode"):  # no read_products scope; a topic Shopify does not have
        refused = create(iex, topic=topic, address=address)
        said = refused.json()["errors"]["topic"][0]
        assert refused.status_code == 422 and said.startswith(f"Invalid topic specified: {topic}. Does it exist?")
        allowed = said.split("Topics allowed: ")[1].split(", ")
        assert "orders/create" in allowed and "products/create" not in allowed
    bare = requests.post(f"{api}/webhooks.json", json={"topic": "orders/create"}, headers=iex, timeout=5)
    assert bare.status_code == 400

    # Each app has its own: the custom app may subscribe the same address, and neither sees the other's.
    assert create(custom, topic="orders/create", address=address).status_code == 201
    for headers in (iex, custom):
        listed = requests.get(f"{api}/webhooks.json", params={"address": address}, headers=headers, timeout=5)
        assert [each["topic"] for each in listed.json()["webhooks"]] == ["orders/create"]
    one = f"{api}/webhooks/{hook['id']}.json"
    assert requests.get(one, headers=custom, timeout=5).status_code == 404
    assert requests.delete(one, headers=custom, timeout=5).status_code == 404
    assert requests.get(one, headers=iex, timeout=5).json()["webhook"]["id"] == hook["id"]
    deleted = requests.delete(one, headers=iex, timeout=5)
    assert (deleted.status_code, deleted.json()) == (200, {})
    assert requests.delete(one, headers=iex, timeout=5).status_code == 404


def test_the_sandboxs_webhook_list_pages_as_shopifys_lists_do(sandbox):
    api = f"{sandbox.url}/shopify/admin/api/2025-01/webhooks.json"
    headers = {"X-Shopify-Access-Token": "shpat_sandbox"}
    topics = ["orders/create", "orders/updated", "orders/paid"]
    for topic in topics:
        webhook = {"topic": topic, "address": "https://iex.example/hooks/abc/"}
        requests.post(api, json={"webhook": webhook}, headers=headers, timeout=5)
    first = requests.get(api, params={"limit": 2}, headers=headers, timeout=5)
    second = requests.get(first.links["next"]["url"], headers=headers, timeout=5)
    assert [hook["topic"] for hook in first.json()["webhooks"] + second.json()["webhooks"]] == topics
    only = requests.get(api, params={"topic": "orders/paid"}, headers=headers, timeout=5).json()["webhooks"]
    assert [hook["topic"] for hook in only] == ["orders/paid"]


@pytest.mark.parametrize("action", ["disconnect_module", "remove_module"])
def test_disconnecting_or_removing_the_shop_takes_iexs_webhooks_away(shop, personas, action):
    """The shop would go on posting to an address that refuses them (Shopify mails the app's owner about it)."""
    switch(personas.client(personas.admin), shop.outgoing.get(flow="orders"), "webhook")
    token = shop.get_credentials()["access_token"]
    assert subscribed(shop, token)
    number = personas.integration.number
    personas.client(personas.owner).post(reverse(action, args=[number, shop.code]))
    assert subscribed(shop, token) == []
