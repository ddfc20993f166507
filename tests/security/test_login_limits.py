"""Logins hold behind the load balancer: the client's own address is taken from X-Forwarded-For through the trusted
proxies (and only through them), and failed logins are limited per address and per account from that address, so
nobody can lock out someone else."""

import pytest
from django.test import Client

from tests.conftest import PASSWORD, make_user

pytestmark = pytest.mark.django_db
BALANCER = "10.0.0.2"
TOO_MANY = "Too many failed login attempts"


def attempt(client, email, password, client_address=None):
    headers = {"REMOTE_ADDR": BALANCER}
    if client_address:
        headers["HTTP_X_FORWARDED_FOR"] = client_address  # as the balancer appends it
    return client.post("/accounts/login/", {"login": email, "password": password}, **headers).content.decode()


def test_an_attacker_behind_the_balancer_locks_out_nobody_else(settings):
    settings.ALLAUTH_TRUSTED_PROXY_COUNT = 1
    make_user("victim@shop.example")
    make_user("bystander@shop.example")
    attacker = Client()
    said = [attempt(attacker, "victim@shop.example", f"guess {n}", "203.0.113.66") for n in range(12)]
    assert TOO_MANY in said[-1]  # the attacker is stopped
    # the account's owner and another user, through the same balancer from their own addresses, are not
    assert TOO_MANY not in attempt(Client(), "victim@shop.example", PASSWORD, "198.51.100.7")
    assert TOO_MANY not in attempt(Client(), "bystander@shop.example", PASSWORD, "198.51.100.8")


def test_without_trusted_proxies_a_forwarded_for_header_buys_no_fresh_attempts(settings):
    settings.ALLAUTH_TRUSTED_PROXY_COUNT = 0
    make_user("victim@shop.example")
    said = [attempt(Client(), "victim@shop.example", f"guess {n}", f"192.0.2.{n}") for n in range(12)]
    assert TOO_MANY in said[-1]  # every try came from the same address, whatever the header said
