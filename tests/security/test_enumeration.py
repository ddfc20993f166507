"""Signing up tells nobody whether an address has an account: the same answer, and the same work (a password
hashed, one email sent), so the same time."""

from unittest import mock

import pytest
from django.contrib.auth.hashers import MD5PasswordHasher
from django.core import mail
from django.test import Client

from tests.conftest import PASSWORD, make_user

pytestmark = pytest.mark.django_db


def test_signing_up_with_a_taken_address_answers_and_works_as_a_new_one(settings):
    make_user("taken@shop.example")
    seen = {}
    for email in ("new@shop.example", "taken@shop.example"):
        mail.outbox.clear()
        with mock.patch.object(
            MD5PasswordHasher, "encode", autospec=True, side_effect=MD5PasswordHasher.encode
        ) as hashed:
            answer = Client().post(
                "/accounts/signup/", {"email": email, "password1": PASSWORD, "password2": PASSWORD}
            )
        seen[email] = (answer.status_code, answer.get("Location"), hashed.call_count, len(mail.outbox))
    assert seen["new@shop.example"] == seen["taken@shop.example"] == (302, "/accounts/confirm-email/", 1, 1)
