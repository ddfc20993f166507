"""The shared contract every connector passes before anything else (connections/systems/__init__.py says how to add
one; mypy checks its parts against the Protocols, these check what types cannot)."""

import pytest
from django import forms

from billing.models import SystemPrice
from connections.flows import FLOWS
from connections.models import Module
from connections.systems import SYSTEMS, Accounting, Webshop

KINDS = sorted(SYSTEMS)


def test_the_catalogue_has_a_webshop_and_an_accounting_system():
    assert {type(system) for system in SYSTEMS.values()} == {Webshop, Accounting}
    assert all(kind == system.kind for kind, system in SYSTEMS.items())


@pytest.mark.parametrize("kind", KINDS)
def test_its_default_settings_are_what_its_settings_form_accepts(kind):
    """A merchant who saves the settings page unchanged keeps the defaults."""
    system = SYSTEMS[kind]
    form = system.settings_form(data=system.default_settings)
    assert form.is_valid(), form.errors
    assert set(form.cleaned_data) == set(system.default_settings)


@pytest.mark.parametrize("kind", KINDS)
def test_its_credentials_form_has_an_address_for_tests_and_the_sandbox(kind):
    """Each connector's base URL is a setting of the module (DESIGN.md), entered with the credentials."""
    fields = SYSTEMS[kind].credentials_form().fields
    assert isinstance(fields.get("base_url"), forms.URLField) and not fields["base_url"].required
    secrets = [name for name, field in fields.items() if isinstance(field.widget, forms.PasswordInput)]
    assert secrets, "credentials are typed into password fields, never shown again"


@pytest.mark.parametrize("kind", KINDS)
def test_it_has_a_monthly_price(db, kind):
    assert SystemPrice.objects.filter(kind=kind).exists()


@pytest.mark.parametrize("kind", KINDS)
def test_it_takes_part_in_a_flow(kind):
    category = SYSTEMS[kind].category
    assert any(category in (flow.source, flow.target) for flow in FLOWS.values())


@pytest.mark.parametrize("kind", [kind for kind in KINDS if SYSTEMS[kind].webhooks])
def test_its_webhook_topics_name_the_entities_of_its_flows(kind):
    reader = SYSTEMS[kind].webhooks
    assert reader is not None
    entities = {flow.entity for flow in FLOWS.values()}
    assert set(reader.TOPICS.values()) <= entities | {""}
    assert reader.topic({}) == "" and reader.event_id({}) == ""
    assert not reader.verify([""], b"{}", {}), "no secret, no delivery"


@pytest.mark.parametrize("kind", KINDS)
def test_its_client_is_made_from_a_module_with_its_credentials(db, personas, kind):
    """A client reads what it needs from the module: its credentials (decrypted), settings and base URL."""
    system = SYSTEMS[kind]
    module = Module(integration=personas.integration, kind=kind, base_url="http://127.0.0.1:9/")
    form = system.credentials_form()
    module.set_credentials({name: "x" for name in form.fields if name != "base_url"})
    client = system.client(module)
    assert callable(client.test)
