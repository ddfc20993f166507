"""Staff see every tenant: the admin site's login is the one everyone has, with its rate limits, and staff enter
only with a password the validators pass."""

import pytest
from django.contrib.auth.models import User
from django.test import Client

from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db


def staff(password):
    from allauth.account.models import EmailAddress

    user = User.objects.create_superuser("ops", "ops@iex.example", password)
    EmailAddress.objects.create(user=user, email=user.email, verified=True, primary=True)
    return user


def sign_in(client, password):
    return client.post("/accounts/login/?next=/admin/", {"login": "ops@iex.example", "password": password})


def test_the_admin_login_is_everyones_login():
    answer = Client().get("/admin/login/", {"next": "/admin/iex/integration/"})
    assert answer.status_code == 302 and answer["Location"] == "/accounts/login/?next=/admin/iex/integration/"
    assert Client().post("/admin/login/", {"username": "ops", "password": "x"}).status_code == 302


def test_guessing_a_staff_password_is_stopped_by_the_login_limits():
    staff(PASSWORD)
    client = Client()
    answers = [sign_in(client, f"guess {n}").content.decode() for n in range(6)]
    assert "Too many failed login attempts" in answers[-1]  # allauth's limits on failed logins
    # and for this account, from any address, for a while: even the right password
    assert "Too many failed login attempts" in sign_in(Client(), PASSWORD).content.decode()


def test_staff_with_a_weak_password_change_it_before_they_enter():
    staff("pw")
    client = Client()
    assert sign_in(client, "pw").status_code == 302
    answer = client.get("/admin/", follow=True)
    assert answer.redirect_chain[-1][0] == "/accounts/password/change/"
    assert "Staff sign in to the admin site with a strong password" in answer.content.decode()
    changed = client.post(
        "/accounts/password/change/", {"oldpassword": "pw", "password1": PASSWORD, "password2": PASSWORD}
    )
    assert changed.status_code == 302
    assert client.get("/admin/").status_code == 200


def test_staff_with_a_strong_password_enter():
    staff(PASSWORD)
    client = Client()
    assert sign_in(client, PASSWORD)["Location"] == "/admin/"
    assert client.get("/admin/").status_code == 200
