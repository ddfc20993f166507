"""Nobody uses IEX to mail the world or to live on free trials: trials per account, invitations per account per
day, and no tenant-chosen text (an integration's name) in any email's subject."""

import pytest
from django.core import mail
from django.urls import reverse

from billing.models import Plan
from iex.models import Integration, Invitation
from tests.conftest import make_user

pytestmark = pytest.mark.django_db


def create(client, name):
    plan = Plan.objects.get(code="standard")
    return client.post(reverse("create_integration"), {"name": name, "plan": plan.pk})


def test_an_account_has_at_most_three_integrations_in_their_trial(settings, client):
    user = make_user("founder@shop.example")
    client.force_login(user)
    for n in range(3):
        assert create(client, f"Shop {n}").status_code == 302
    refused = create(client, "Shop 3")
    assert refused.status_code == 200 and "3 integrations in their free trial" in refused.content.decode()
    assert Integration.objects.filter(members__user=user).count() == 3


def test_one_person_sends_at_most_so_many_invitations_a_day_over_all_integrations(
    personas, settings, django_capture_on_commit_callbacks
):
    settings.INVITATIONS_PER_DAY = 2
    second = Integration.create_for(personas.owner, "Second shop")
    owner = personas.client(personas.owner)
    with django_capture_on_commit_callbacks(execute=True):
        for n, integration in enumerate([personas.integration, second, second]):
            answer = owner.post(
                reverse("invite_member", args=[integration.number]),
                {"email": f"x{n}@else.example", "role": "viewer"},
            )
    assert answer.status_code == 400 and "the most one person may" in answer.content.decode()
    assert Invitation.objects.filter(invited_by=personas.owner).count() == 2 and len(mail.outbox) == 2


def test_no_email_subject_carries_a_tenants_words(personas, django_capture_on_commit_callbacks):
    Integration.objects.filter(pk=personas.integration.pk).update(name="WIN A PRIZE at evil.example")
    with django_capture_on_commit_callbacks(execute=True):
        personas.client(personas.owner).post(
            reverse("invite_member", args=[personas.integration.number]),
            {"email": "x@else.example", "role": "viewer"},
        )
    (email,) = mail.outbox
    assert "evil" not in email.subject and "WIN A PRIZE at evil.example" in email.body
