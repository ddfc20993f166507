"""Connecting e-conomic (the sandbox's) through its grant flow: the merchant adds IEX's app to their agreement on
e-conomic's request access page and comes back with the agreement grant token, which IEX keeps and sends with its
own app secret token; the merchant types nothing. The answer is taken once, in the browser of the member who asked.
Tokens can still be entered by hand (a private app's own secret token too), and what was typed survives a form
error."""

import html
import re
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest
import requests
from django.test import Client

from connections.models import Module
from connections.systems.economic.client import EconomicClient

pytestmark = pytest.mark.django_db

RETURN = "http://127.0.0.1:8000/connect/economic/return/"  # SITE_URL's in tests


@pytest.fixture
def books(sandbox, personas):
    """An e-conomic module not connected yet, pointed at the sandbox (as `make run` adds it)."""
    return Module.objects.create(
        integration=personas.integration, kind="economic", base_url=f"{sandbox.url}/economic"
    )


def start_grant(client, module):
    """The member presses "Connect to e-conomic": e-conomic's request access page."""
    sent = client.post(f"/i/{module.integration.number}/systems/{module.code}/login/")
    assert sent.status_code == 302
    return sent["Location"]


def add_app(page_url):
    """The merchant presses Add app on e-conomic's page: where e-conomic sends their browser back."""
    page = requests.get(page_url, timeout=5)
    assert page.status_code == 200 and "Add IEX to Sandbox ApS?" in page.text
    action, fields = re.search(r'<form method="POST" action="([^"]+)">(.*?)</form>', page.text, re.S).groups()
    posted = {name: html.unescape(value) for name, value in re.findall(r'name="(\w+)" value="([^"]*)"', fields)}
    added = requests.post(urljoin(page_url, action), data=posted, allow_redirects=False, timeout=5)
    assert added.status_code == 302
    return added.headers["Location"]


def test_connecting_keeps_the_agreement_grant_token_and_sends_iexs_app_secret(books, personas, settings):
    owner = personas.client(personas.owner)
    page = owner.get(books.get_absolute_url()).content.decode()
    assert "Connect to e-conomic" in page and "Or enter e-conomic's credentials by hand" in page
    page_url = start_grant(owner, books)
    assert page_url.startswith(f"{books.base_url}/secure/api1/requestaccess.aspx?")
    asked = parse_qs(urlsplit(page_url).query)
    assert asked["appPublicToken"] == ["sandbox-app-public"]
    assert asked["redirectUrl"][0].startswith(f"{RETURN}?state=")  # e-conomic passes no state: IEX's rides along
    back = add_app(page_url)
    token = parse_qs(urlsplit(back).query)["token"][0]

    done = owner.get(back, follow=True).content.decode()
    assert "e-conomic let IEX in through your login." in done
    assert "Test connection succeeded: Connected to agreement 654321 (Sandbox ApS)" in done
    assert "Connected through your e-conomic login" in done and "Connect to e-conomic again" in done
    books.refresh_from_db()
    assert books.get_credentials() == {"agreement_grant_token": token, "app_public_token": "sandbox-app-public"}
    client = EconomicClient(books)
    assert client.headers["X-AppSecretToken"] == settings.ECONOMIC_APP_SECRET_TOKEN == "sandbox-app-secret"
    assert client.headers["X-AgreementGrantToken"] == token


def test_an_answer_is_taken_once_and_only_in_the_askers_browser(books, personas):
    owner = personas.client(personas.owner)
    back = add_app(start_grant(owner, books))
    assert personas.client(personas.admin).get(back).status_code == 400  # another member's browser: not theirs
    assert owner.get(back).status_code == 302
    assert owner.get(back).status_code == 400  # replayed: its state is used up
    assert owner.get(f"{RETURN}?state=forged&token=mine").status_code == 400
    books.refresh_from_db()
    assert books.get_credentials()["agreement_grant_token"] == parse_qs(urlsplit(back).query)["token"][0]


def test_a_merchant_who_cancels_changes_nothing(books, personas):
    owner = personas.client(personas.owner)
    page_url = start_grant(owner, books)
    cancel = re.search(r'<a href="([^"]+)">Cancel</a>', requests.get(page_url, timeout=5).text).group(1)
    assert "IEX has not been added." in requests.get(urljoin(page_url, cancel), timeout=5).text
    state = parse_qs(urlsplit(parse_qs(urlsplit(page_url).query)["redirectUrl"][0]).query)["state"][0]
    done = owner.get(f"{RETURN}?state={state}", follow=True).content.decode()
    assert "e-conomic did not let IEX in (no token): nothing changed." in done
    books.refresh_from_db()
    assert not books.connected


def test_a_grant_works_only_with_the_app_it_was_given_to(books, personas, sandbox):
    owner = personas.client(personas.owner)
    token = parse_qs(urlsplit(add_app(start_grant(owner, books))).query)["token"][0]
    api = f"{sandbox.url}/economic/self"
    with_iex = {"X-AppSecretToken": "sandbox-app-secret", "X-AgreementGrantToken": token}
    assert requests.get(api, headers=with_iex, timeout=5).status_code == 200
    other_app = {**with_iex, "X-AppSecretToken": "another-apps-secret"}
    assert requests.get(api, headers=other_app, timeout=5).status_code == 401


def test_the_request_access_page_refuses_an_app_it_does_not_know(books, personas, settings):
    settings.ECONOMIC_APP_PUBLIC_TOKEN = "not-the-sandboxes-app"
    refused = requests.get(start_grant(personas.client(personas.owner), books), timeout=5)
    assert refused.status_code == 400 and "The app could not be found" in refused.text


def test_without_a_redirect_url_the_page_shows_the_token_to_copy(sandbox):
    page = f"{sandbox.url}/economic/secure/api1/requestaccess.aspx"
    shown = requests.post(page, data={"appPublicToken": "sandbox-app-public"}, timeout=5)
    token = re.search(r"<code>([^<]+)</code>", shown.text).group(1)
    headers = {"X-AppSecretToken": "sandbox-app-secret", "X-AgreementGrantToken": token}
    assert requests.get(f"{sandbox.url}/economic/self", headers=headers, timeout=5).status_code == 200


def test_connecting_is_for_writers_and_members_only(books, personas):
    login = f"/i/{personas.integration.number}/systems/{books.code}/login/"
    assert personas.client(personas.viewer).post(login).status_code == 403
    assert personas.client(personas.outsider).post(login).status_code == 404
    assert Client().get(f"{RETURN}?state=x&token=y")["Location"].startswith("/accounts/login/")


def test_a_grant_token_entered_by_hand_goes_with_iexs_app_or_a_private_apps_own(books, personas, settings):
    owner = personas.client(personas.owner)
    credentials = f"/i/{personas.integration.number}/systems/{books.code}/credentials/"
    done = owner.post(
        credentials, {"agreement_grant_token": "sandbox-grant", "base_url": books.base_url}, follow=True
    ).content.decode()
    assert "Test connection succeeded: Connected to agreement 654321" in done  # with IEX's app secret token
    assert "Connected through your e-conomic login" not in done

    settings.ECONOMIC_APP_SECRET_TOKEN = "iex-production-app"  # not the sandbox's app
    books.refresh_from_db()
    assert EconomicClient(books).headers["X-AppSecretToken"] == "iex-production-app"
    owner.post(credentials, {"app_secret_token": "sandbox-app-secret", "base_url": books.base_url})
    books.refresh_from_db()
    assert EconomicClient(books).headers["X-AppSecretToken"] == "sandbox-app-secret"  # the private app's own


def test_without_iexs_app_the_tokens_of_an_app_of_ones_own_are_entered(books, personas, settings):
    settings.ECONOMIC_APP_PUBLIC_TOKEN = settings.ECONOMIC_APP_SECRET_TOKEN = ""
    owner = personas.client(personas.owner)
    page = owner.get(books.get_absolute_url()).content.decode()
    assert "Connect to e-conomic" not in page
    credentials = f"/i/{personas.integration.number}/systems/{books.code}/credentials/"
    refused = owner.post(credentials, {"agreement_grant_token": "sandbox-grant", "base_url": books.base_url})
    assert refused.status_code == 400 and "This field is required." in refused.content.decode()


def test_what_was_typed_survives_a_form_error(books, personas):
    owner = personas.client(personas.owner)
    credentials = f"/i/{personas.integration.number}/systems/{books.code}/credentials/"
    refused = owner.post(credentials, {"agreement_grant_token": "sandbox-grant", "base_url": "not an address"})
    page = refused.content.decode()
    assert refused.status_code == 400 and "Enter a valid URL." in page and "sandbox-grant" not in page
    field = re.search(r'<input[^>]*name="agreement_grant_token"[^>]*>', page).group(0)
    assert 'placeholder="Unchanged: what you typed is kept unless you enter another"' in field
    key = re.search(r'name="typed" value="([^"]+)"', page).group(1)
    owner.post(credentials, {"base_url": books.base_url, "typed": key})
    books.refresh_from_db()
    assert books.get_credentials()["agreement_grant_token"] == "sandbox-grant"
