"""A merchant signs up, creates the integration, invites a teammate who joins, and switches it off and on."""

import re

from django.core import mail
from playwright.sync_api import expect

from iex.models import Integration

PASSWORD = "a long passphrase for tests"


def last_link(to, pattern):
    message = next(m for m in reversed(mail.outbox) if to in m.to)
    return re.search(pattern, message.body).group(0)


def sign_up(page, site: str, email: str) -> None:
    page.locator("#id_email").fill(email)
    page.locator("#id_password1").fill(PASSWORD)
    page.locator("#id_password2").fill(PASSWORD)
    page.get_by_role("button", name="Sign Up").click()
    expect(page.get_by_role("heading", name="Verify Your Email Address")).to_be_visible()
    page.goto(last_link(email, rf"{re.escape(site)}/accounts/confirm-email/\S+/"))
    page.get_by_role("button", name="Confirm").click()


def test_sign_up_invite_accept_and_deactivate(context, site, screenshot, transactional_db):
    owner = context()
    owner.goto(site)
    expect(owner).to_have_url(re.compile("/accounts/login/"))
    owner.get_by_role("link", name="sign up").click()
    sign_up(owner, site, "founder@bikes.example")

    expect(owner.get_by_role("heading", name="Welcome to IEX")).to_be_visible()
    owner.get_by_label("Name").fill("Nordic Bikes")
    owner.get_by_role("button", name="Create integration").click()
    integration = Integration.objects.get()
    expect(owner.locator(".switcher-number")).to_have_text(f"No. {integration.number}")
    screenshot(owner, "01-home")

    owner.get_by_role("link", name="Settings", exact=True).click()
    owner.get_by_label("Email", exact=True).fill("bookkeeper@bikes.example")
    owner.get_by_label("Role", exact=True).select_option("admin")
    owner.get_by_role("button", name="Send invitation").click()
    expect(owner.get_by_text("Invitation sent to bookkeeper@bikes.example")).to_be_visible()
    expect(owner.locator("#invitations tbody")).to_contain_text("bookkeeper@bikes.example")
    screenshot(owner, "02-settings-invited")

    teammate = context()
    teammate.goto(last_link("bookkeeper@bikes.example", rf"{re.escape(site)}/invitations/\S+/"))
    expect(teammate.get_by_role("heading", name="Join Nordic Bikes")).to_be_visible()
    screenshot(teammate, "03-invitation")
    teammate.get_by_role("link", name="Sign up").click()
    sign_up(teammate, site, "bookkeeper@bikes.example")
    teammate.get_by_role("button", name="Accept and join").click()
    expect(teammate.get_by_text("Welcome to Nordic Bikes. You are admin.")).to_be_visible()
    expect(teammate.locator(".switcher-name")).to_have_text("Nordic Bikes")

    owner.reload()
    expect(owner.locator("#members")).to_contain_text("bookkeeper@bikes.example")
    # Switching a member's error emails saves at once (no button when JavaScript runs).
    owner.get_by_label("Error emails for bookkeeper@bikes.example").uncheck()
    expect(owner.get_by_text("bookkeeper@bikes.example will no longer get error emails.")).to_be_visible()
    assert not integration.members.get(user__email="bookkeeper@bikes.example").error_emails
    owner.get_by_label("Error emails for bookkeeper@bikes.example").check()
    expect(owner.get_by_text("bookkeeper@bikes.example will get error emails.")).to_be_visible()
    assert integration.members.get(user__email="bookkeeper@bikes.example").error_emails
    owner.once("dialog", lambda dialog: dialog.accept())
    owner.get_by_role("button", name="Deactivate integration").click()
    expect(owner.get_by_role("alert").filter(has_text="This integration is inactive")).to_be_visible()
    screenshot(owner, "04-deactivated")
    teammate.reload()
    expect(teammate.get_by_text("This integration is inactive")).to_be_visible()

    owner.once("dialog", lambda dialog: dialog.accept())
    owner.get_by_role("button", name="Activate integration").click()
    expect(owner.get_by_text("The integration is active")).to_be_visible()
    expect(owner.get_by_text("This integration is inactive")).to_have_count(0)
    integration.refresh_from_db()
    assert integration.active and integration.members.count() == 2


def test_cancelled_confirmation_changes_nothing(context, site, transactional_db):
    from tests.conftest import make_user

    user = make_user("owner@shop.example")
    integration = Integration.create_for(user, "Careful Shop")
    page = context()
    page.goto(f"{site}/accounts/login/")
    page.locator("#id_login").fill("owner@shop.example")
    page.locator("#id_password").fill("correct horse battery staple")
    page.get_by_role("button", name="Sign In").click()
    page.goto(f"{site}/i/{integration.number}/settings/")
    page.once("dialog", lambda dialog: dialog.dismiss())
    page.get_by_role("button", name="Deactivate integration").click()
    expect(page.get_by_role("button", name="Deactivate integration")).to_be_visible()
    integration.refresh_from_db()
    assert integration.active
