import re
from datetime import timedelta

import pytest
import time_machine
from django.core import mail
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from billing.models import Plan, Subscription
from iex.models import Invitation, Role, hash_token
from tests.conftest import make_user

pytestmark = pytest.mark.django_db


def invite_url(personas):
    return reverse("invite_member", args=[personas.integration.number])


def link_from(message):
    return re.search(r"http://\S+/invitations/(\S+)/", message.body).group(0)


def path_of(link: str) -> str:
    return "/" + link.split("/", 3)[3]


# /i/<number>/invitations/


def test_admin_invites_by_email_with_a_single_use_link(personas, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = personas.client(personas.admin).post(
            invite_url(personas), {"email": " New@Shop.example ", "role": "viewer"}
        )
    assert response.status_code == 302
    invitation = personas.integration.invitations.get()
    assert (invitation.email, invitation.role, invitation.invited_by) == (
        "new@shop.example",
        "viewer",
        personas.admin,
    )
    assert invitation.expires - invitation.created == timedelta(hours=72)

    (message,) = mail.outbox
    assert message.to == ["new@shop.example"]
    assert message.subject == "You are invited to an integration on IEX"  # no tenant-chosen text in a subject
    assert "Nordic Bikes" in message.body
    html = message.alternatives[0][0]
    link = link_from(message)
    assert link in html
    token = link.rstrip("/").rsplit("/", 1)[1]
    assert len(token) >= 22  # 128 bits in URL-safe base64
    assert invitation.token_hash == hash_token(token)  # only the hash is stored
    assert token not in str(Invitation.objects.values_list())


def test_invalid_email_is_shown_next_to_the_field(personas):
    response = personas.client(personas.owner).post(
        invite_url(personas), {"email": "not-an-email", "role": "admin"}
    )
    assert response.status_code == 400
    assert "Enter a valid email address." in response.content.decode()
    assert not personas.integration.invitations.exists()


def test_admin_cannot_invite_an_owner(personas):
    response = personas.client(personas.admin).post(
        invite_url(personas), {"email": "x@shop.example", "role": "owner"}
    )
    assert response.status_code == 400
    assert not personas.integration.invitations.exists()


def test_owner_can_invite_an_owner(personas):
    personas.client(personas.owner).post(invite_url(personas), {"email": "x@shop.example", "role": "owner"})
    assert personas.integration.invitations.get().role == Role.OWNER


def test_viewer_cannot_invite(personas):
    response = personas.client(personas.viewer).post(
        invite_url(personas), {"email": "x@shop.example", "role": "viewer"}
    )
    assert response.status_code == 403
    assert not personas.integration.invitations.exists()


def test_existing_member_and_duplicate_invitation_are_refused(personas):
    client = personas.client(personas.owner)
    response = client.post(invite_url(personas), {"email": "VIEWER@shop.example", "role": "admin"})
    assert "already a member" in response.content.decode()
    client.post(invite_url(personas), {"email": "x@shop.example", "role": "admin"})
    response = client.post(invite_url(personas), {"email": "x@shop.example", "role": "admin"})
    assert "already invited" in response.content.decode()
    assert personas.integration.invitations.count() == 1


def test_at_most_20_invitations_an_hour(personas):
    Subscription.of(personas.integration, Plan.objects.get(code="enterprise"))
    personas.integration.subscription.plan = Plan.objects.get(code="enterprise")
    personas.integration.subscription.save()
    client = personas.client(personas.owner)
    for i in range(20):
        assert (
            client.post(invite_url(personas), {"email": f"p{i}@shop.example", "role": "viewer"}).status_code == 302
        )
    response = client.post(invite_url(personas), {"email": "p20@shop.example", "role": "viewer"})
    assert response.status_code == 400
    assert "At most 20 invitations" in response.content.decode()
    assert personas.integration.invitations.count() == 20
    with time_machine.travel(timezone.now() + timedelta(minutes=61)):
        assert (
            client.post(invite_url(personas), {"email": "p20@shop.example", "role": "viewer"}).status_code == 302
        )


def test_invite_rejects_get(personas):
    assert personas.client(personas.owner).get(invite_url(personas)).status_code == 405


# /i/<number>/invitations/<code>/resend/ and /revoke/


def test_resend_replaces_the_old_link(personas, invitation, django_capture_on_commit_callbacks):
    old, old_token = invitation
    with django_capture_on_commit_callbacks(execute=True):
        response = personas.client(personas.admin).post(
            reverse("resend_invitation", args=[personas.integration.number, old.code])
        )
    assert response.status_code == 302
    new = personas.integration.invitations.pending().get()
    assert new.pk != old.pk and new.email == old.email and new.role == old.role
    (message,) = mail.outbox
    client = Client()
    assert client.get(reverse("invitation", args=[old_token])).status_code == 410
    assert client.get(path_of(link_from(message))).status_code == 200


def test_revoke_stops_the_link(personas, invitation):
    inv, token = invitation
    response = personas.client(personas.admin).post(
        reverse("revoke_invitation", args=[personas.integration.number, inv.code])
    )
    assert response.status_code == 302
    response = Client().get(reverse("invitation", args=[token]))
    assert response.status_code == 410
    assert "revoked" in response.content.decode()


@pytest.mark.parametrize("action", ["resend_invitation", "revoke_invitation"])
def test_viewer_cannot_resend_or_revoke(personas, invitation, action):
    inv, _ = invitation
    response = personas.client(personas.viewer).post(reverse(action, args=[personas.integration.number, inv.code]))
    assert response.status_code == 403
    inv.refresh_from_db()
    assert inv.status == "pending"


@pytest.mark.parametrize("action", ["resend_invitation", "revoke_invitation"])
def test_resend_and_revoke_reject_get(personas, invitation, action):
    inv, _ = invitation
    client = personas.client(personas.owner)
    assert client.get(reverse(action, args=[personas.integration.number, inv.code])).status_code == 405


@pytest.mark.parametrize("action", ["resend_invitation", "revoke_invitation"])
def test_invitation_of_another_integration_is_404_by_code(personas, action):
    foreign, _ = Invitation.issue(personas.other, "x@y.example", Role.VIEWER, personas.outsider)
    response = personas.client(personas.owner).post(
        reverse(action, args=[personas.integration.number, foreign.code])
    )
    assert response.status_code == 404
    foreign.refresh_from_db()
    assert foreign.status == "pending"
    assert personas.other.invitations.count() == 1


@pytest.mark.parametrize("action", ["resend_invitation", "revoke_invitation"])
def test_admin_cannot_resend_or_revoke_an_owner_invitation(personas, action):
    inv, _ = Invitation.issue(personas.integration, "boss@shop.example", Role.OWNER, personas.owner)
    response = personas.client(personas.admin).post(reverse(action, args=[personas.integration.number, inv.code]))
    assert response.status_code == 403
    assert personas.integration.invitations.pending().get() == inv


def test_failed_email_keeps_the_invitation_and_says_so(personas, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", 1, 2  # nothing listens
    response = personas.client(personas.owner).post(
        invite_url(personas), {"email": "x@shop.example", "role": "viewer"}, follow=True
    )
    assert response.status_code == 200
    assert "the email could not be sent. Use Resend" in response.content.decode()
    assert personas.integration.invitations.pending().get().email == "x@shop.example"


def test_plain_text_email_is_not_html_escaped(personas):
    personas.integration.name = "Bob's Bikes & Co"
    personas.integration.save()
    personas.client(personas.owner).post(invite_url(personas), {"email": "x@shop.example", "role": "viewer"})
    (message,) = mail.outbox
    assert "Bob's Bikes & Co" in message.body
    assert "Bob&#x27;s Bikes &amp; Co" in message.alternatives[0][0]


# /invitations/<token>/


def test_invited_user_with_the_address_accepts(personas, invitation):
    inv, token = invitation
    user = make_user("new@shop.example")
    client = Client()
    client.force_login(user)
    page = client.get(reverse("invitation", args=[token]))
    assert "Accept and join" in page.content.decode()
    response = client.post(reverse("invitation", args=[token]))
    assert response.status_code == 302 and response.url == personas.integration.get_absolute_url()
    assert personas.integration.members.get(user=user).role == Role.ADMIN
    inv.refresh_from_db()
    assert inv.status == "accepted" and inv.accepted_by == user


def test_reused_link_is_refused(personas, invitation):
    _, token = invitation
    client = Client()
    client.force_login(make_user("new@shop.example"))
    client.post(reverse("invitation", args=[token]))
    response = client.post(reverse("invitation", args=[token]))
    assert response.status_code == 410
    assert "already been used" in response.content.decode()
    assert personas.integration.members.count() == 4


def test_expired_link_is_refused(personas, invitation):
    _, token = invitation
    client = Client()
    client.force_login(make_user("new@shop.example"))
    with time_machine.travel(timezone.now() + timedelta(hours=72, seconds=1)):
        response = client.post(reverse("invitation", args=[token]))
    assert response.status_code == 410
    assert "expired" in response.content.decode()
    assert not personas.integration.members.filter(user__email="new@shop.example").exists()


def test_wrong_address_is_refused(personas, invitation):
    inv, token = invitation
    client = Client()
    client.force_login(make_user("someone.else@shop.example"))
    response = client.post(reverse("invitation", args=[token]))
    assert response.status_code == 403
    body = response.content.decode()
    assert "This invitation is for new@shop.example" in body
    assert not personas.integration.members.filter(user__email="someone.else@shop.example").exists()
    inv.refresh_from_db()
    assert inv.status == "pending"


def test_unknown_link_is_404_with_a_clear_page(db):
    response = Client().get(reverse("invitation", args=["not-a-real-token"]))
    assert response.status_code == 404
    assert "We do not know this link" in response.content.decode()


def test_anonymous_visitor_is_asked_to_sign_up_and_brought_back_after_sign_in(personas, invitation):
    _, token = invitation
    client = Client()
    page = client.get(reverse("invitation", args=[token])).content.decode()
    assert "Sign up" in page and "new@shop.example" in page
    make_user("new@shop.example")
    response = client.post(
        reverse("account_login"), {"login": "new@shop.example", "password": "correct horse battery staple"}
    )
    assert response.status_code == 302
    response = client.get(response.url)  # the index sends the user back to the invitation
    assert response.status_code == 302 and response.url == reverse("invitation", args=[token])
    client.post(response.url)
    assert personas.integration.members.filter(user__email="new@shop.example").exists()
    # Accepted: the remembered link is forgotten, so the dashboard no longer leads back to it.
    assert client.get(reverse("index")).url == personas.integration.get_absolute_url()


def test_link_that_expires_while_the_page_is_open_says_expired(personas, invitation):
    inv, token = invitation
    client = Client()
    client.force_login(make_user("new@shop.example"))
    assert client.get(reverse("invitation", args=[token])).status_code == 200
    with time_machine.travel(inv.expires):
        response = client.post(reverse("invitation", args=[token]))
    assert response.status_code == 410
    assert "expired" in response.content.decode()


def test_accept_when_already_a_member_keeps_the_role(personas):
    inv, token = Invitation.issue(personas.integration, "viewer@shop.example", Role.ADMIN, personas.owner)
    client = personas.client(personas.viewer)
    response = client.post(reverse("invitation", args=[token]), follow=True)
    assert "You were already a member of Nordic Bikes (viewer)" in response.content.decode()
    assert personas.member(personas.viewer).role == Role.VIEWER
    inv.refresh_from_db()
    assert inv.status == "accepted"


def test_the_plan_limits_members_and_pending_invitations(personas):
    """Basic has room for 2: the personas' integration already has 3 members, so nobody more can be invited."""
    sub = Subscription.of(personas.integration)
    client = personas.client(personas.owner)
    assert sub.plan.member_limit == 5  # Standard: 3 members + 2 invitations
    for i in range(2):
        assert (
            client.post(invite_url(personas), {"email": f"p{i}@shop.example", "role": "viewer"}).status_code == 302
        )
    response = client.post(invite_url(personas), {"email": "p9@shop.example", "role": "viewer"})
    assert response.status_code == 400
    assert "The Standard plan has room for 5 members, invitations included" in response.content.decode()
    assert personas.integration.invitations.count() == 2


def test_sign_up_from_an_invitation_starts_with_the_invited_address(personas, invitation):
    _, token = invitation
    client = Client()
    page = client.get(reverse("invitation", args=[token])).content.decode()
    signup = re.search(r'href="(/accounts/signup/[^"]*)">Sign up<', page).group(1).replace("&amp;", "&")
    form = client.get(signup).content.decode()
    (email_input,) = re.findall(r'<input[^>]*name="email"[^>]*>', form)
    assert 'value="new@shop.example"' in email_input
