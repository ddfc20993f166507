import json

import pytest
from django.core.management import call_command
from django.test import Client

from connections.models import Module
from dashboard.first_steps import steps as first_steps
from iex.models import Integration, Role

pytestmark = pytest.mark.django_db


def seed(capsys) -> dict:
    call_command("seed_demo", "--json")
    return json.loads(capsys.readouterr().out)


def test_seed_demo_is_idempotent_and_prints_a_working_login(capsys, settings, tmp_path):
    settings.VAR_DIR = tmp_path
    first = seed(capsys)
    second = seed(capsys)
    assert first == second
    assert Integration.objects.count() == 2  # Shopify to e-conomic, WooCommerce to Dinero: all four systems
    integration = Integration.objects.get(name="Demo Shop")
    assert first["integration"] == {
        "number": integration.number,
        "name": "Demo Shop",
        "url": f"{settings.SITE_URL}/i/{integration.number}/",
    }
    assert integration.members.get().role == Role.OWNER
    shop, books = first["modules"]
    assert (shop["kind"], shop["base_url"]) == ("shopify", f"{settings.SANDBOX_URL}/shopify")
    assert shop["webhook_url"].startswith(f"{settings.SITE_URL}/hooks/") and len(shop["webhook_secret"]) >= 32
    assert (books["kind"], books["webhook_secret"]) == ("economic", "")
    orders = integration.connections.get(flow="orders")
    assert orders.active and orders.trigger == "webhook"
    shopify, woocommerce = first["integrations"]
    assert shopify == {"number": integration.number, "name": "Demo Shop", "modules": first["modules"]}
    assert [(m["kind"], m["base_url"]) for m in woocommerce["modules"]] == [
        ("woocommerce", f"{settings.SANDBOX_URL}/woocommerce"), ("dinero", f"{settings.SANDBOX_URL}/dinero"),
    ]  # fmt: skip
    assert woocommerce["modules"][0]["webhook_secret"] != shop["webhook_secret"]
    for demo in Integration.objects.all():  # set up: Home's checklist waits only for the first transfer
        assert [step.done for step in first_steps(demo)] == [True] * 5 + [False], demo.name

    client = Client()
    response = client.post(
        "/accounts/login/", {"login": first["login"]["email"], "password": first["login"]["password"]}
    )
    assert response.status_code == 302
    assert client.get(f"/i/{integration.number}/").status_code == 200


def test_books_an_earlier_demo_kept_in_the_sandbox_give_way_to_the_demos_own(capsys, settings, tmp_path):
    settings.VAR_DIR = tmp_path
    seed(capsys)
    woocommerce = Integration.objects.get(name="Demo WooCommerce")
    earlier = Module(integration=woocommerce, kind="economic", base_url=f"{settings.SANDBOX_URL}/economic")
    earlier.set_credentials({"app_secret_token": "sandbox-app-secret", "agreement_grant_token": "sandbox-grant"})
    earlier.save()  # what the demo's books were before they were Dinero
    seed(capsys)
    assert sorted(woocommerce.modules.values_list("kind", flat=True)) == ["dinero", "woocommerce"]
