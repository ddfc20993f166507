import contextlib
import importlib
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from allauth.account.models import EmailAddress
from django.contrib.auth.models import User
from django.core.cache import cache
from django.test import Client

from billing import stripe_api
from connections import gate, intake
from iex.models import Integration, Invitation, Member, Role

PASSWORD = "correct horse battery staple"


@pytest.fixture(autouse=True)
def _fast_and_isolated(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    # allauth's rate limits count in the cache: start every test with none spent.
    cache.clear()
    intake._known.clear()  # webhook addresses a process has read
    gate.forget()  # every account's gate open, its budget unspent
    # No test reaches a Stripe it did not ask for (the `stripe` fixture starts localstripe).
    settings.STRIPE_API_BASE = "http://127.0.0.1:9"
    stripe_api.client.cache_clear()
    yield
    cache.clear()
    stripe_api.client.cache_clear()


@pytest.fixture
def eager():
    """Background tasks run inline, in the test's process."""
    from iex.celery import app

    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = False


@pytest.fixture(autouse=True)
def _seeded_rows(request):
    """Transactional tests (live server, threads, worker processes) empty every table afterwards, so the rows
    migrations seed (plans, system prices) are seeded again before each of them."""
    marker = request.node.get_closest_marker("django_db")
    transactional = (marker is not None and marker.kwargs.get("transaction")) or {
        "transactional_db",
        "live_server",
    } & set(request.fixturenames)
    if transactional:
        from django.apps import apps

        request.getfixturevalue("transactional_db")
        importlib.import_module("billing.migrations.0002_seed_plans").seed(apps, None)


@contextlib.contextmanager
def running_localstripe():
    """localstripe (a stateful fake Stripe server) on a free port of 127.0.0.1, while the block runs."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    script = Path(__file__).resolve().parent.parent / "bin" / "localstripe"
    process = subprocess.Popen([sys.executable, str(script), "--port", str(port)], stderr=subprocess.PIPE)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.1)
    else:
        process.kill()
        raise RuntimeError(
            f"localstripe did not start: {process.stderr.read().decode() if process.stderr else ''}"
        )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()  # busy with a request: nothing of it is needed any more
            process.wait(timeout=10)


@pytest.fixture(scope="session")
def localstripe():
    """One localstripe for the whole session."""
    with running_localstripe() as url:
        yield url


@pytest.fixture
def stripe(localstripe, settings):
    """The real stripe SDK pointed at localstripe."""
    settings.STRIPE_API_BASE = localstripe
    stripe_api.client.cache_clear()
    return stripe_api.client()


def make_user(email: str) -> User:
    user = User.objects.create_user(username=email.split("@")[0], email=email, password=PASSWORD)
    EmailAddress.objects.create(user=user, email=email, verified=True, primary=True)
    return user


@dataclass
class Personas:
    integration: Integration
    owner: User
    admin: User
    viewer: User
    outsider: User  # a member (owner) of another integration
    other: Integration

    def member(self, user: User) -> Member:
        return self.integration.members.get(user=user)

    def client(self, user: User) -> Client:
        client = Client()
        client.force_login(user)
        return client


@pytest.fixture
def personas(db) -> Personas:
    owner = make_user("owner@shop.example")
    integration = Integration.create_for(owner, "Nordic Bikes")
    admin = make_user("admin@shop.example")
    viewer = make_user("viewer@shop.example")
    integration.members.create(user=admin, role=Role.ADMIN)
    integration.members.create(user=viewer, role=Role.VIEWER)
    outsider = make_user("outsider@elsewhere.example")
    other = Integration.create_for(outsider, "Elsewhere")
    return Personas(integration, owner, admin, viewer, outsider, other)


@pytest.fixture
def invitation(personas) -> tuple[Invitation, str]:
    return Invitation.issue(personas.integration, "new@shop.example", Role.ADMIN, personas.owner)


@pytest.fixture
def connected(personas):
    """Shopify and e-conomic connected to the personas' integration, the orders connection active."""
    from connections.models import Connection, Module

    shop = Module(integration=personas.integration, kind="shopify")
    shop.set_credentials(
        {"shop_domain": "nordic-bikes.myshopify.com", "access_token": "shpat_secret", "webhook_secret": "whsec"}
    )
    shop.save()
    books = Module(integration=personas.integration, kind="economic")
    books.set_credentials({"app_secret_token": "app-secret", "agreement_grant_token": "grant"})
    books.save()
    Connection.ensure_for(personas.integration)
    orders = personas.integration.connections.get(flow="orders")
    orders.active = True
    orders.save()
    return orders


@pytest.fixture
def sandbox():
    """The sandbox (fake Shopify and e-conomic) on a free port, over real HTTP."""
    from sandbox.server import make_server

    server = make_server(port=0, seed=7).start()
    yield server
    server.stop()


@pytest.fixture
def control(sandbox):
    """POST to the control API and return the JSON answer, failing on an error status."""

    def post(path, body=None):
        response = requests.post(f"{sandbox.url}/_sandbox/{path}", json=body, timeout=5)
        assert response.ok, response.text
        return response.json()

    return post


@pytest.fixture
def sandboxed(connected, sandbox):
    """The `connected` integration's Shopify and e-conomic pointed at the sandbox."""
    for module, credentials in (
        (
            connected.source,
            {"shop_domain": "sandbox.myshopify.com", "access_token": "shpat_sandbox", "webhook_secret": "whsec"},
        ),
        (connected.target, {"app_secret_token": "sandbox-app-secret", "agreement_grant_token": "sandbox-grant"}),
    ):
        module.base_url = f"{sandbox.url}/{module.kind}"
        module.set_credentials(credentials)
        module.save()
    return connected


@pytest.fixture
def staff_client(db) -> Client:
    """A staff member signed in as the admin site requires (with a password the validators pass)."""
    from iex.accounts import STRONG

    staff = User.objects.create_superuser("ops", "ops@iex.example", PASSWORD)
    client = Client()
    client.force_login(staff)
    session = client.session
    session[STRONG] = True
    session.save()
    return client
