"""Installing IEX in a Shopify shop (the sandbox's), the way Shopify offers: the merchant enters the shop's address,
presses Install on the shop's own page, and IEX takes Shopify's answer only when it is signed with IEX's app secret,
for the shop entered, in the browser of the member who asked, once; the code is exchanged (once) for an offline
token whose scopes cover every call IEX makes. A custom app's token can still be entered by hand, and what the
merchant typed into that form survives a form error."""

import html
import re
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import pytest
import requests
from django.test import Client

from connections.common import StockLevel
from connections.models import Module
from connections.systems.shopify import oauth
from connections.systems.shopify.client import ShopifyClient
from iex.lib import http
from sandbox import shopify as sandbox_shopify

pytestmark = pytest.mark.django_db

RETURN = "http://127.0.0.1:8000/connect/shopify/return/"  # SITE_URL's in tests


@pytest.fixture
def shop(sandbox, personas):
    """A Shopify module not connected yet, pointed at the sandbox (as `make run` adds it)."""
    return Module.objects.create(
        integration=personas.integration, kind="shopify", base_url=f"{sandbox.url}/shopify"
    )


def start_install(client, module, shop_domain="sandbox.myshopify.com"):
    """The member enters the shop's address and presses "Install IEX in your Shopify shop": the shop's page."""
    sent = client.post(
        f"/i/{module.integration.number}/systems/{module.code}/login/", {"login-shop_domain": shop_domain}
    )
    assert sent.status_code == 302, sent.content.decode()
    return sent["Location"]


def install(page_url):
    """The merchant presses Install on the shop's page: where Shopify sends their browser back."""
    page = requests.get(page_url, timeout=5)
    assert page.status_code == 200 and "Install IEX on sandbox.myshopify.com?" in page.text
    action, fields = re.search(r'<form method="POST" action="([^"]+)">(.*?)</form>', page.text, re.S).groups()
    posted = {name: html.unescape(value) for name, value in re.findall(r'name="(\w+)" value="([^"]*)"', fields)}
    installed = requests.post(urljoin(page_url, action), data=posted, allow_redirects=False, timeout=5)
    assert installed.status_code == 302
    return installed.headers["Location"]


def answer_of(back):
    return {name: values[0] for name, values in parse_qs(urlsplit(back).query).items()}


def with_answer(answer):
    return f"{RETURN}?{urlencode(answer)}"


def test_installing_iex_keeps_the_shops_offline_token_and_tests_it(shop, personas):
    owner = personas.client(personas.owner)
    page = owner.get(shop.get_absolute_url()).content.decode()
    assert "Install IEX in your Shopify shop" in page and "Or enter Shopify's credentials by hand" in page
    page_url = start_install(owner, shop, " https://Sandbox.myshopify.com/admin ")
    asked = parse_qs(urlsplit(page_url).query)
    assert page_url.startswith(f"{shop.base_url}/admin/oauth/authorize?")
    assert asked["client_id"] == ["iex-sandbox"] and asked["redirect_uri"] == [RETURN]
    assert asked["scope"] == ["read_orders,read_products,read_inventory,write_inventory,read_locations"]
    assert "grant_options[]" not in asked  # an offline token: it lasts until the app is uninstalled
    back = install(page_url)
    assert set(answer_of(back)) == {"code", "hmac", "host", "shop", "state", "timestamp"}

    done = owner.get(back, follow=True).content.decode()
    assert "Shopify let IEX in through your login." in done
    assert "Test connection succeeded: Connected to Sandbox Shop (sandbox.myshopify.com)" in done
    assert "Connected through your Shopify login" in done and "Install IEX in your Shopify shop again" in done
    shop.refresh_from_db()
    credentials = shop.get_credentials()
    assert set(credentials) == {"shop_domain", "access_token", "scope"}
    assert credentials["shop_domain"] == "sandbox.myshopify.com" and credentials["access_token"].startswith(
        "shpat_"
    )

    # The scopes cover what IEX calls: orders, products, locations, and the stock it sets.
    client = ShopifyClient(shop)
    assert list(client.orders_since(datetime.now(UTC) - timedelta(days=1))) == []
    assert client.locations()[0]["id"] == sandbox_shopify.WAREHOUSE_ID
    (answer,) = client.set_stock([StockLevel("LOCK-U", 7)])
    assert answer["inventory_level"]["available"] == 7


def test_an_answer_not_signed_with_iexs_app_secret_changes_nothing(shop, personas):
    owner = personas.client(personas.owner)
    answer = answer_of(install(start_install(owner, shop)))
    done = owner.get(with_answer({**answer, "code": "a-code-of-my-own"}), follow=True).content.decode()
    assert "IEX did not take this answer as Shopify&#x27;s: it is not signed with IEX&#x27;s app secret." in done
    shop.refresh_from_db()
    assert not shop.connected


def test_an_answer_for_another_shop_than_entered_changes_nothing(shop, personas):
    owner = personas.client(personas.owner)
    # The merchant entered their shop, but the answer (signed, the sandbox's) is for another one.
    back = install(start_install(owner, shop, "nordic-bikes"))
    done = owner.get(back, follow=True).content.decode()
    assert "it is for sandbox.myshopify.com, not nordic-bikes.myshopify.com" in done
    shop.refresh_from_db()
    assert not shop.connected


def test_a_shop_address_that_is_not_a_shops_is_said_next_to_the_field(shop, personas):
    owner = personas.client(personas.owner)
    refused = owner.post(
        f"/i/{personas.integration.number}/systems/{shop.code}/login/", {"login-shop_domain": "shop.example.com"}
    )
    assert refused.status_code == 400
    assert "Enter your shop&#x27;s myshopify.com address" in refused.content.decode()


def test_an_answer_is_taken_once_and_only_in_the_askers_browser(shop, personas):
    owner = personas.client(personas.owner)
    back = install(start_install(owner, shop))
    assert personas.client(personas.admin).get(back).status_code == 400  # another member's browser: not theirs
    assert owner.get(back).status_code == 302
    shop.refresh_from_db()
    first = shop.get_credentials()["access_token"]
    assert owner.get(back).status_code == 400  # replayed: its state is used up
    forged = {**answer_of(back), "state": "forged"}
    forged["hmac"] = oauth.signature(forged, "shpss_sandbox")  # even signed, a state IEX did not give is refused
    assert owner.get(with_answer(forged)).status_code == 400
    shop.refresh_from_db()
    assert shop.get_credentials()["access_token"] == first


def test_a_merchant_who_cancels_is_back_in_the_shop_and_nothing_changed(shop, personas):
    owner = personas.client(personas.owner)
    page_url = start_install(owner, shop)
    cancel = re.search(r'<a href="([^"]+)">Cancel</a>', requests.get(page_url, timeout=5).text).group(1)
    assert "IEX is not installed." in requests.get(urljoin(page_url, cancel), timeout=5).text
    # An answer that lets IEX in without a code (or with an error) changes nothing either.
    state = parse_qs(urlsplit(page_url).query)["state"][0]
    done = owner.get(with_answer({"state": state, "error": "access_denied"}), follow=True).content.decode()
    assert "Shopify did not let IEX in (access_denied): nothing changed." in done
    shop.refresh_from_db()
    assert not shop.connected


def test_a_code_works_once(shop, personas, sandbox):
    owner = personas.client(personas.owner)
    back = install(start_install(owner, shop))
    code = answer_of(back)["code"]
    taken = {"client_id": "iex-sandbox", "client_secret": "shpss_sandbox", "code": code}
    assert requests.post(f"{shop.base_url}/admin/oauth/access_token", json=taken, timeout=5).status_code == 200
    done = owner.get(back, follow=True).content.decode()  # someone used the code first
    assert (
        "Connecting Shopify failed: Shopify gave IEX no token for this install (its code was used already" in done
    )
    shop.refresh_from_db()
    assert not shop.connected
    with pytest.raises(http.PermanentError, match="install IEX again"):
        oauth.exchange(shop, code, RETURN, {"shop_domain": "sandbox.myshopify.com"})


def test_installing_is_for_writers_and_members_only(shop, personas):
    login = f"/i/{personas.integration.number}/systems/{shop.code}/login/"
    form = {"login-shop_domain": "sandbox.myshopify.com"}
    assert personas.client(personas.viewer).post(login, form).status_code == 403
    assert personas.client(personas.outsider).post(login, form).status_code == 404
    assert personas.client(personas.owner).get(login).status_code == 405
    assert Client().get(f"{RETURN}?code=x&state=y")["Location"].startswith("/accounts/login/")
    page = personas.client(personas.viewer).get(shop.get_absolute_url()).content.decode()
    assert "Install IEX in your Shopify shop" not in page


def test_without_iexs_app_the_shop_is_connected_by_a_custom_apps_token(shop, personas, settings):
    settings.SHOPIFY_CLIENT_ID = ""
    owner = personas.client(personas.owner)
    page = owner.get(shop.get_absolute_url()).content.decode()
    assert "Install IEX" not in page and "Admin API access token of a custom app" in page
    assert owner.post(f"/i/{personas.integration.number}/systems/{shop.code}/login/").status_code == 404


def test_what_was_typed_into_the_token_form_survives_a_form_error(shop, personas):
    owner = personas.client(personas.owner)
    credentials = f"/i/{personas.integration.number}/systems/{shop.code}/credentials/"
    typed = {"shop_domain": "not a shop", "access_token": "shpat_sandbox", "webhook_secret": "whsec_typed"}
    refused = owner.post(credentials, {**typed, "base_url": shop.base_url})
    page = refused.content.decode()
    assert refused.status_code == 400 and "Enter the shop&#x27;s domain" in page
    assert "shpat_sandbox" not in page and "whsec_typed" not in page  # never shown again
    assert page.count('placeholder="Unchanged: what you typed is kept unless you enter another"') == 2
    assert '<details class="by-hand" open>' in page  # the error is where the merchant sees it
    key = re.search(r'name="typed" value="([^"]+)"', page).group(1)
    # Another member cannot use what this one typed.
    personas.client(personas.admin).post(
        credentials, {"shop_domain": "sandbox.myshopify.com", "base_url": shop.base_url, "typed": key}
    )
    shop.refresh_from_db()
    assert not shop.connected

    done = owner.post(
        credentials,
        {"shop_domain": "sandbox.myshopify.com", "base_url": shop.base_url, "typed": key},
        follow=True,
    )
    assert "Test connection succeeded: Connected to Sandbox Shop" in done.content.decode()
    shop.refresh_from_db()
    assert shop.get_credentials() == {
        "shop_domain": "sandbox.myshopify.com",
        "access_token": "shpat_sandbox",
        "webhook_secret": "whsec_typed",
    }


def test_a_custom_apps_token_typed_over_an_install_is_said_to_be_what_is_used(shop, personas):
    owner = personas.client(personas.owner)
    owner.get(install(start_install(owner, shop)))
    shop.refresh_from_db()
    assert shop.get_credentials()["scope"]
    credentials = f"/i/{personas.integration.number}/systems/{shop.code}/credentials/"
    owner.post(
        credentials, {"shop_domain": "sandbox.myshopify.com", "webhook_secret": "w", "base_url": shop.base_url}
    )
    shop.refresh_from_db()
    assert shop.get_credentials()["scope"]  # a webhook secret added: still the install's token
    owner.post(
        credentials,
        {"shop_domain": "sandbox.myshopify.com", "access_token": "shpat_sandbox", "base_url": shop.base_url},
    )
    shop.refresh_from_db()
    assert "scope" not in shop.get_credentials()
    page = owner.get(shop.get_absolute_url()).content.decode()
    assert "Connected through your Shopify login" not in page and '<details class="by-hand" open>' in page


# --- the sandbox's Shopify refuses what Shopify refuses ------------------------------------------------------------


def test_the_hmac_is_shopifys_documented_example():
    """shopify.dev's example answer, signed with the secret "hush"."""
    example = {
        "code": "0907a61c0c8d55e99db179b68161bc00",
        "shop": "some-shop.myshopify.com",
        "timestamp": "1337178173",
    }
    signed = "4712bf92ffc2917d15a2f5a273e39f0116667419aa4b6ac0b3baaf26fa3c4d20"
    assert oauth.signature(example, "hush") == sandbox_shopify.signature(example, "hush") == signed
    assert oauth.signature({**example, "hmac": signed}, "hush") == signed  # the hmac itself is left out


@pytest.mark.parametrize(
    ("change", "said"),
    [
        ({"client_id": "someone-else"}, "Could not find Shopify API application"),
        ({"redirect_uri": "https://elsewhere.example/steal/"}, "The redirect_uri is not whitelisted"),
        ({"redirect_uri": ""}, "The redirect_uri is not whitelisted"),
        ({"scope": "read_orders,read_everything"}, "invalid_scope: read_everything"),
    ],
)
def test_the_install_page_refuses_a_request_shopify_refuses(sandbox, change, said):
    query = {"client_id": "iex-sandbox", "scope": "read_orders", "redirect_uri": RETURN, "state": "s", **change}
    for answer in (
        requests.get(f"{sandbox.url}/shopify/admin/oauth/authorize", params=query, timeout=5),
        requests.post(
            f"{sandbox.url}/shopify/admin/oauth/authorize", data=query, allow_redirects=False, timeout=5
        ),
    ):
        assert answer.status_code == 400 and said in answer.text


def test_the_access_token_needs_the_apps_secret_and_an_unused_code(sandbox):
    query = {"client_id": "iex-sandbox", "scope": "read_orders", "redirect_uri": RETURN, "state": "s"}
    back = requests.post(
        f"{sandbox.url}/shopify/admin/oauth/authorize", data=query, allow_redirects=False, timeout=5
    )
    code = answer_of(back.headers["Location"])["code"]
    url = f"{sandbox.url}/shopify/admin/oauth/access_token"
    wrong = requests.post(
        url, json={"client_id": "iex-sandbox", "client_secret": "guess", "code": code}, timeout=5
    )
    assert (wrong.status_code, wrong.json()["error"]) == (400, "invalid_client")
    unknown = {"client_id": "iex-sandbox", "client_secret": "shpss_sandbox", "code": "made-up"}
    assert requests.post(url, json=unknown, timeout=5).status_code == 400
    given = requests.post(url, data={**unknown, "code": code}, timeout=5)  # a form works as JSON does
    assert given.status_code == 200 and given.json()["scope"] == "read_orders"
    assert requests.post(url, json={**unknown, "code": code}, timeout=5).status_code == 400  # used already

    # The token reads what its scope covers, and nothing else.
    headers = {"X-Shopify-Access-Token": given.json()["access_token"]}
    api = f"{sandbox.url}/shopify/admin/api/2025-01"
    assert requests.get(f"{api}/orders.json", headers=headers, timeout=5).status_code == 200
    refused = requests.get(f"{api}/locations.json", headers=headers, timeout=5)
    assert refused.status_code == 403
    assert refused.json()["errors"] == "[API] This action requires merchant approval for read_locations scope."
