"""Headers: a Content-Security-Policy the pages pass (our own scripts only, none inline), no-store on what a signed-in
user is shown, and a DEBUG error page that never shows the credentials being saved."""

from pathlib import Path
from unittest import mock

import pytest
from django.urls import reverse

from connections.models import Module

pytestmark = pytest.mark.django_db
TEMPLATES = Path(__file__).resolve().parents[2] / "templates"


def test_every_answer_has_a_policy_of_our_own_scripts_only(personas, client):
    for answer in (
        client.get("/accounts/login/"),
        personas.client(personas.viewer).get(f"/i/{personas.integration.number}/"),
    ):
        policy = answer["Content-Security-Policy"]
        assert (
            "script-src 'self'" in policy and "'unsafe-inline'" not in policy.split("script-src")[1].split(";")[0]
        )
        assert "frame-ancestors 'none'" in policy and "object-src 'none'" in policy


def test_no_template_has_an_inline_script_or_handler():
    for template in TEMPLATES.rglob("*.html"):
        text = template.read_text()
        for script in text.split("<script")[1:]:
            assert script.split(">")[0].strip().startswith("src="), template
        assert " onclick=" not in text and " onload=" not in text and "javascript:" not in text, template


def test_a_tenants_pages_and_export_are_never_stored(personas, connected):
    client = personas.client(personas.viewer)
    number = personas.integration.number
    for url in (
        reverse("home", args=[number]),
        reverse("log", args=[number]),
        reverse("export_log", args=[number]),
    ):
        assert "no-store" in client.get(url)["Cache-Control"], url


def test_the_debug_error_page_never_shows_the_credentials_being_saved(personas, settings):
    settings.DEBUG = True
    shop = Module.objects.create(integration=personas.integration, kind="shopify")
    client = personas.client(personas.owner)
    client.raise_request_exception = False
    with mock.patch.object(Module, "set_credentials", side_effect=RuntimeError("boom")):
        answer = client.post(
            reverse("connect_module", args=[personas.integration.number, shop.code]),
            {
                "shop_domain": "nordic-bikes.myshopify.com",
                "access_token": "shpat_TOPSECRET",
                "webhook_secret": "whsec_TOPSECRET",
            },
        )
    assert answer.status_code == 500 and b"boom" in answer.content
    assert b"TOPSECRET" not in answer.content
