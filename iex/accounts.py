"""How allauth treats IEX's accounts beyond its settings."""

from __future__ import annotations

from allauth.account.adapter import DefaultAccountAdapter
from django.contrib.auth.hashers import make_password
from django.utils.crypto import get_random_string


class AccountAdapter(DefaultAccountAdapter):
    def send_account_already_exists_mail(self, email: str) -> None:
        """Signing up with an address that has an account answers as a new one does (allauth's enumeration
        prevention: an email instead of an error), and in the same time: a new account's password is hashed, so a
        password is hashed here too."""
        make_password(get_random_string(24))
        super().send_account_already_exists_mail(email)
