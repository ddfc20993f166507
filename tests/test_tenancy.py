"""Every URL that names an integration refuses outsiders with 404, for GET and POST alike.

The patterns are read from the URL configuration, so a new tenant view that forgets the access helper fails
here without anyone writing a test for it.
"""

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone

from billing.models import Pack, month_of
from connections.models import Connection, Module
from iex.models import Role
from scheduling.models import Job
from transferlog.models import Transfer

pytestmark = pytest.mark.django_db


def tenant_patterns(resolver: URLResolver | None = None, prefix_has_number: bool = False):
    resolver = resolver or get_resolver()
    for entry in resolver.url_patterns:
        has_number = prefix_has_number or "number" in entry.pattern.converters
        if isinstance(entry, URLResolver):
            yield from tenant_patterns(entry, has_number)
        elif isinstance(entry, URLPattern) and has_number:
            yield entry


@pytest.fixture
def objects(personas, invitation):
    """One object of every kind the target integration owns, by the start of the route that addresses it."""
    shop = Module.objects.create(integration=personas.integration, kind="shopify")
    Module.objects.create(integration=personas.integration, kind="economic")
    Connection.ensure_for(personas.integration)
    Job.ensure_all(personas.integration)
    connection = personas.integration.connections.first()
    transfer = Transfer.objects.create(
        integration=personas.integration,
        connection=connection,
        status="failed",
        connection_label=connection.label,
        entity="orders",
        source_ref="1",
    )
    pack = Pack.objects.create(
        integration=personas.integration, month=month_of(timezone.now()), orders=100, amount=7900,
        source="automatic", status="action_required", payment_intent="pi_tenancy",
    )  # fmt: skip
    return {
        "subscription/packs/": pack.code,
        "log/": transfer.code,
        "schedule/": personas.integration.jobs.first().code,
        "members/": personas.member(personas.viewer).code,
        "invitations/": invitation[0].code,
        "systems/": shop.code,
        "connections/": personas.integration.connections.first().code,
    }


def tenant_kwargs(pattern, personas, objects):
    """Real ids of the target integration's objects, so a view without the helper would find them."""
    kwargs = {"number": personas.integration.number}
    for name in pattern.pattern.converters:
        if name == "number":
            continue
        prefix = next((p for p in objects if str(pattern.pattern).startswith(p)), None)
        if name == "code" and prefix:
            kwargs["code"] = objects[prefix]
        else:
            pytest.fail(f"tests/test_tenancy.py does not know how to fill <{name}> of {pattern.name}: add it")
    return kwargs


def test_the_walk_finds_the_tenant_views():
    names = {p.name for p in tenant_patterns()}
    assert {
        "home",
        "settings",
        "set_integration_active",
        "change_member_role",
        "invite_member",
        "revoke_invitation",
    } <= names


@pytest.mark.parametrize("method", ["get", "post"])
def test_outsider_gets_404_on_every_tenant_url(personas, invitation, objects, method):
    inv, _ = invitation
    client = personas.client(personas.outsider)
    before = (personas.integration.active, personas.member(personas.viewer).role, inv.revoked_at)
    for pattern in tenant_patterns():
        url = reverse(pattern.name, kwargs=tenant_kwargs(pattern, personas, objects))
        response = getattr(client, method)(url, {"role": Role.OWNER, "email": "x@evil.example"})
        # 405 is what a view answers before any lookup when the method is wrong; it reveals nothing.
        assert response.status_code in {404, 405}, f"{method.upper()} {url} answered {response.status_code}"
        if response.status_code == 405:
            other = "post" if method == "get" else "get"
            assert getattr(client, other)(url).status_code == 404, f"{other.upper()} {url}"
    personas.integration.refresh_from_db()
    inv.refresh_from_db()
    assert before == (personas.integration.active, personas.member(personas.viewer).role, inv.revoked_at)
    assert personas.integration.modules.count() == 2
    assert not personas.integration.connections.filter(active=True).exists()
    assert personas.integration.transfers.get().status == "failed"  # not retried by an outsider
    assert Pack.objects.get().status == "action_required"  # not confirmed by an outsider
    assert not personas.integration.invitations.filter(email="x@evil.example").exists()


def test_anonymous_is_sent_to_login_on_every_tenant_url(personas, objects, client):
    for pattern in tenant_patterns():
        url = reverse(pattern.name, kwargs=tenant_kwargs(pattern, personas, objects))
        response = client.get(url)
        assert response.status_code == 302 and "/accounts/login/" in response.url, url


def test_no_tenant_url_takes_an_integer_primary_key():
    for pattern in tenant_patterns():
        for name, converter in pattern.pattern.converters.items():
            assert type(converter).__name__ != "IntConverter", f"{pattern.name} takes <int:{name}>"


def test_unknown_integration_number_is_404_like_a_foreign_one(personas):
    client = personas.client(personas.owner)
    assert client.get(reverse("home", args=["999999"])).status_code == 404
