"""How allauth treats IEX's accounts beyond its settings, and how staff reach the admin site: through the same
sign-in and its limits, with a password that passes the validators."""

from __future__ import annotations

from typing import Any

from allauth.account.adapter import DefaultAccountAdapter
from allauth.account.signals import password_changed, password_set
from django.contrib import admin, messages
from django.contrib.auth.hashers import make_password
from django.contrib.auth.password_validation import validate_password
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import ValidationError
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.crypto import get_random_string

# Set in the session when a staff member signs in (or sets a password) with a password the validators pass.
STRONG = "iex_staff_password_checked"


class AccountAdapter(DefaultAccountAdapter):
    def send_account_already_exists_mail(self, email: str) -> None:
        """Signing up with an address that has an account answers as a new one does (allauth's enumeration
        prevention: an email instead of an error), and in the same time: a new account's password is hashed, so a
        password is hashed here too."""
        make_password(get_random_string(24))
        super().send_account_already_exists_mail(email)

    def _get_login_attempts_cache_key(self, request: HttpRequest, **credentials: Any) -> str:
        """Failed logins are limited per address (allauth's per-IP limit, the real client's through the trusted
        proxies) and per account from that address: someone guessing elsewhere never locks the account's owner out."""
        return f"{super()._get_login_attempts_cache_key(request, **credentials)}:{self.get_client_ip(request)}"

    def authenticate(self, request: HttpRequest, **credentials: Any) -> Any:
        user = super().authenticate(request, **credentials)
        if user is not None and user.is_staff:
            try:
                validate_password(str(credentials.get("password", "")), user)
            except ValidationError:
                request.session.pop(STRONG, None)
            else:
                request.session[STRONG] = True  # kept through login's new session key
        return user


@receiver([password_changed, password_set])
def _checked_by_the_form(sender: Any, request: HttpRequest, user: Any, **kwargs: Any) -> None:
    if user.is_staff:  # allauth's password forms apply the validators
        request.session[STRONG] = True


def staff_may_enter(request: HttpRequest) -> bool:
    return bool(request.user.is_active and request.user.is_staff and request.session.get(STRONG))


def admin_login(request: HttpRequest) -> HttpResponse:
    """The admin site's login is the one every user has, with its rate limits; staff whose password does not pass
    the validators change it first."""
    if request.user.is_authenticated and request.user.is_staff and not request.session.get(STRONG):
        messages.error(request, "Staff sign in to the admin site with a strong password: change yours first.")
        return redirect("account_change_password")
    return redirect_to_login(request.GET.get("next") or reverse("admin:index"), login_url=reverse("account_login"))


admin.site.has_permission = staff_may_enter  # type: ignore[method-assign]
