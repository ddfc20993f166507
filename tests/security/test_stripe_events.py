"""Events signed with Stripe's webhook secret that are no event IEX can read: 400 and logged, nothing kept."""

import pytest
from django.test import Client

from billing.models import StripeEvent
from tests.test_billing import post_event

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "event",
    [
        {},
        {"id": "evt_1"},
        {"id": "evt_2", "type": "payment_intent.succeeded"},
        {"id": "evt_3", "type": "payment_intent.succeeded", "data": {}},
        {"id": "evt_4", "type": "payment_intent.succeeded", "data": {"object": {}}},
    ],
)
def test_a_malformed_event_is_400_and_logged(event, caplog, settings):
    answer = post_event(Client(), event)
    assert answer.status_code == 400 and answer.content == b"Malformed event\n"
    assert "is malformed" in caplog.text
    assert not StripeEvent.objects.exists()
