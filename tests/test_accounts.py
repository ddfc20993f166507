"""Sign-up with mandatory email verification, sign-in, onboarding into a first integration, switching."""

import re

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from billing.models import Plan
from iex.models import Integration, Role
from tests.conftest import PASSWORD, make_user

pytestmark = pytest.mark.django_db


def sign_up(client: Client, email: str):
    return client.post(reverse("account_signup"), {"email": email, "password1": PASSWORD, "password2": PASSWORD})


def test_sign_up_needs_a_verified_email_then_leads_to_creating_an_integration(client):
    response = sign_up(client, "founder@bikes.example")
    assert response.status_code == 302 and response.url == reverse("account_email_verification_sent")
    # Not signed in before the address is confirmed.
    assert client.get(reverse("index")).status_code == 302
    assert client.post(reverse("account_login"), {"login": "founder@bikes.example", "password": PASSWORD}).url == (
        reverse("account_email_verification_sent")
    )

    message = mail.outbox[-1]
    assert message.subject == "IEX: Confirm your email address"
    assert message.alternatives and "Confirm email address" in message.alternatives[0][0]
    confirm_url = re.search(r"http://testserver(/accounts/confirm-email/\S+/)", message.body).group(1)
    assert client.get(confirm_url).status_code == 200
    response = client.post(confirm_url)
    assert response.status_code == 302
    response = client.get(response.url)
    assert response.status_code == 302 and response.url == reverse("create_integration")

    page = client.get(reverse("create_integration")).content.decode()
    assert "Welcome to IEX" in page
    assert 'value="standard"' not in page and "Standard: 1,000 orders a month" in page  # plans offered
    premium = Plan.objects.get(code="premium")
    response = client.post(reverse("create_integration"), {"name": "  Nordic   Bikes ", "plan": premium.pk})
    integration = Integration.objects.get()
    sub = integration.subscription
    assert (sub.plan, sub.status) == (premium, "trialing")
    assert 13 <= (sub.trial_ends - timezone.now()).days <= 14
    assert response.url == integration.get_absolute_url()
    assert integration.name == "Nordic Bikes"
    assert re.fullmatch(r"[0-9]{6}", integration.number)
    assert integration.members.get().role == Role.OWNER
    home = client.get(response.url).content.decode()
    assert f"No. {integration.number}" in home  # the number is in the header


def test_blank_integration_name_is_refused_next_to_the_field(client):
    client.force_login(make_user("a@b.example"))
    response = client.post(reverse("create_integration"), {"name": "   "})
    assert response.status_code == 200
    assert "This field is required." in response.content.decode()
    assert not Integration.objects.exists()


def test_integration_numbers_are_unique(db):
    user = make_user("a@b.example")
    numbers = {Integration.create_for(user, f"I{i}").number for i in range(50)}
    assert len(numbers) == 50


def test_user_in_several_integrations_switches_between_them(personas):
    second = Integration.create_for(personas.admin, "Second Shop")
    client = personas.client(personas.admin)
    page = client.get(personas.integration.get_absolute_url()).content.decode()
    assert "Second Shop" in page and second.get_absolute_url() in page  # the switcher lists both
    client.get(second.get_absolute_url())
    assert client.get(reverse("index")).url == second.get_absolute_url()  # remembered as the last one used
    client.get(personas.integration.get_absolute_url())
    assert client.get(reverse("index")).url == personas.integration.get_absolute_url()


def test_failed_logins_are_rate_limited(db, client):
    make_user("target@shop.example")

    def attempt(password: str) -> str:
        data = {"login": "target@shop.example", "password": password}
        return client.post(reverse("account_login"), data).content.decode()

    # allauth: 5 failed attempts per 5 minutes per address; after that even the right password is refused.
    for _ in range(5):
        assert "password you specified are not correct" in attempt("wrong")
    assert "Too many failed login attempts" in attempt("wrong")
    assert "Too many failed login attempts" in attempt(PASSWORD)


def test_password_reset_sends_a_link_that_sets_a_new_password(db, client):
    make_user("forgetful@shop.example")
    client.post(reverse("account_reset_password"), {"email": "forgetful@shop.example"})
    message = mail.outbox[-1]
    assert "Reset your password" in message.subject
    assert message.alternatives
    link = re.search(r"http://testserver(/accounts/password/reset/key/\S+/)", message.body).group(1)
    response = client.get(link)
    assert response.status_code == 302
    response = client.post(
        response.url, {"password1": "a new long passphrase", "password2": "a new long passphrase"}
    )
    assert response.status_code == 302
    assert client.login(username="forgetful", password="a new long passphrase")


def test_logout(personas):
    client = personas.client(personas.owner)
    assert client.post(reverse("account_logout")).status_code == 302
    assert client.get(personas.integration.get_absolute_url()).status_code == 302
