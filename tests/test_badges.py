"""A badge's colour says what kind of state it is: green all is well, amber needs a look, red an error (Failed,
Refused), grey a state the merchant chose (Inactive, Cancelled), which is no error."""

import pytest
from django.urls import reverse

from billing.models import Subscription

pytestmark = pytest.mark.django_db

NEUTRAL_INACTIVE = '<span class="badge badge-neutral">Inactive</span>'


def page(personas, name):
    return personas.client(personas.owner).get(reverse(name, args=[personas.integration.number])).content.decode()


def test_an_inactive_system_is_grey_and_a_refusing_one_red(personas, connected):
    shop, books = connected.source, connected.target
    shop.active = False
    shop.save(update_fields=["active"])
    books.credentials_refused("Invalid API key")
    body = page(personas, "systems")
    assert NEUTRAL_INACTIVE in body
    assert '<span class="badge badge-off">Refused</span>' in body
    assert 'badge-off">Inactive' not in body


def test_an_inactive_integration_and_system_are_grey_on_settings_and_home(personas, connected):
    connected.source.active = False
    connected.source.save(update_fields=["active"])
    personas.integration.set_active(False, personas.owner)
    settings_page = page(personas, "settings")
    assert settings_page.count(NEUTRAL_INACTIVE) == 2  # the integration's status, and Shopify's
    assert 'badge-off">Inactive' not in settings_page
    assert NEUTRAL_INACTIVE in page(personas, "home")


def test_a_cancelled_subscription_is_grey_and_an_overdue_one_red(personas):
    sub = Subscription.of(personas.integration)
    sub.status = Subscription.Status.CANCELED
    sub.save(update_fields=["status"])
    assert '<span class="badge badge-neutral">Cancelled</span>' in page(personas, "subscription")
    sub.status = Subscription.Status.PAST_DUE
    sub.save(update_fields=["status"])
    assert '<span class="badge badge-off">Payment overdue</span>' in page(personas, "subscription")
