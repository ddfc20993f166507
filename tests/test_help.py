"""Help: a public page for each dashboard page, linked from every page's heading, explaining every status the pages
can show; the sandbox's logins only on the embedded defaults."""

import re
from pathlib import Path

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from billing.models import Pack, Subscription
from connections.models import Module
from dashboard.help import PAGES
from scheduling.models import RunOutcome
from transferlog.models import Status, Transfer

pytestmark = pytest.mark.django_db

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
BADGE = re.compile(r'<span class="badge\b[^>]*>(.*?)</span>', re.S)
HELP_LINK = re.compile(r'<a class="help-link" href="([^"]+)"')


def help_html(*names: str) -> str:
    client = Client()
    pages = [reverse("help")] + [reverse("help_page", args=[name]) for name in names or PAGES]
    return "".join(client.get(page).content.decode() for page in pages)


# /help/


def test_every_help_page_answers_without_signing_in(db):
    client = Client()
    assert client.get(reverse("help")).status_code == 200
    for name, title in PAGES.items():
        response = client.get(reverse("help_page", args=[name]))
        assert response.status_code == 200, name
        assert f"<h1>{title}</h1>" in response.content.decode()


def test_unknown_help_page_is_404(db):
    assert Client().get(reverse("help_page", args=["billing"])).status_code == 404


def test_help_rejects_post(db):
    assert Client().post(reverse("help")).status_code == 405
    assert Client().post(reverse("help_page", args=["log"])).status_code == 405


def test_what_to_do_when_nothing_transfers_is_a_checklist_in_the_products_words(db):
    for url in (reverse("help"), reverse("help_page", args=["home"]), reverse("help_page", args=["log"])):
        body = Client().get(url).content.decode()
        section = body.split('id="nothing-transfers"')[1].split("</section>")[0]
        for step in ("integration is active", "connected and active", "connection is on", "import orders from"):
            assert step in section, (url, step)
        assert "orders left this month" in section and "<em>held</em>" in section and "Retry" in section


# Each dashboard page links to its own help page


def help_links(client: Client, url: str, status: int = 200, **post) -> list[str]:
    response = client.post(url, post) if post else client.get(url)
    assert response.status_code == status
    return HELP_LINK.findall(response.content.decode())


def test_each_dashboard_page_links_to_its_own_help_page(personas, connected):
    number = personas.integration.number
    client = personas.client(personas.owner)
    transfer = Transfer.objects.create(
        integration=personas.integration,
        connection=connected,
        connection_label=connected.label,
        entity="orders",
        source_ref="1",
        reference="#1001",
        status="created",
    )
    pages = {
        reverse("home", args=[number]): "home",
        reverse("systems", args=[number]): "systems",
        reverse("module", args=[number, connected.source.code]): "systems",
        reverse("schedule", args=[number]): "schedule",
        reverse("connections", args=[number]): "connections",
        reverse("subscription", args=[number]): "subscription",
        reverse("settings", args=[number]): "settings",
        reverse("log", args=[number]): "log",
        reverse("transfer_detail", args=[number, transfer.code]): "log",
    }
    for url, page in pages.items():
        assert help_links(client, url) == [reverse("help_page", args=[page])], url


def test_a_page_shown_again_with_form_errors_keeps_its_help_link(personas):
    url = reverse("invite_member", args=[personas.integration.number])
    links = help_links(personas.client(personas.owner), url, status=400, email="not an address", role="viewer")
    assert links == [reverse("help_page", args=["settings"])]


def test_sign_in_and_help_pages_have_no_help_link(db):
    assert help_links(Client(), reverse("account_login")) == []
    assert help_links(Client(), reverse("help_page", args=["log"])) == []


# Every status is explained


def module_states() -> set[str]:
    """The words Module.status can say (the Systems list and a system's heading show them)."""
    now = timezone.now()
    modules = [
        Module(kind="shopify"),
        Module(kind="shopify", credentials="x"),
        Module(kind="shopify", credentials="x", test_error="404"),
        Module(kind="shopify", credentials="x", credentials_failed_at=now),
    ]
    return {module.status[0] for module in modules}


# What a badge shows when its words come from the data: every value it can take.
DYNAMIC = {
    "status.0": module_states,
    "t.status_label": lambda: set(Status.labels),
    "t.get_status_display": lambda: set(Status.labels),
    "transfer.get_status_display": lambda: set(Status.labels),
    "job.get_last_outcome_display": lambda: set(RunOutcome.labels),
    "sub.get_status_display": lambda: set(Subscription.Status.labels),
    "p.get_status_display": lambda: set(Pack.Status.labels),
}


def badge_words(html: str) -> set[str]:
    """The words of every badge in a template: its text without the template's values ("Ends {{ date }}" is Ends),
    or each value a badge that shows only a value can take."""
    words = set()
    for inner in BADGE.findall(html):
        text = re.sub(r"\{[{%].*?[%}]\}", "", inner).strip()
        if text:
            words.add(text)
            continue
        (value,) = re.findall(r"\{\{\s*([\w.]+)", inner)
        assert value in DYNAMIC, f"A badge shows {value}: add the words it can take to DYNAMIC"
        words |= DYNAMIC[value]()
    return words


def test_every_badge_word_in_the_templates_is_explained_in_the_help(db):
    shown = set()
    for path in TEMPLATES.rglob("*.html"):
        if "help" not in path.relative_to(TEMPLATES).parts:
            shown |= badge_words(path.read_text())
    explained = {re.sub(r"\s+", " ", word).strip() for word in BADGE.findall(help_html())}
    assert {"Connected", "Refused", "Test failed", "Not connected", "Held", "Inactive", "Paused"} <= shown
    assert shown - explained == set()


# The sandbox, on the embedded defaults only


def test_the_sandbox_and_its_logins_are_told_on_the_embedded_defaults(db, settings):
    settings.DEBUG = True
    body = help_html("systems")
    assert 'id="sandbox"' in body
    assert "demo@iex.local" in body and "var/demo-password" in body
    assert "Shopify: Access token" in body and "shpat_sandbox" in body
    assert "Dinero: API key" in body and "dinero-sandbox-key" in body
    assert settings.SANDBOX_URL in body


def test_a_production_site_says_nothing_of_a_sandbox(db, settings):
    settings.DEBUG = False
    body = help_html()
    assert 'id="sandbox"' not in body
    assert "shpat_sandbox" not in body and "demo@iex.local" not in body and "localstripe" not in body
