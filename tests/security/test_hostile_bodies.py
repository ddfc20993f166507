"""What a shop (or someone with its webhook secret) sends that is no order a document can be made of: nested deeper
than any order, numbers JSON cannot hold. Answered and kept with a reason, never a 500, never dropped unseen."""

import json

import pytest
from django.db import IntegrityError

from connections.models import Delivery
from tests.test_intake import ORDER, post
from transferlog.models import Transfer

pytestmark = pytest.mark.django_db


def test_a_body_nested_100000_deep_is_400_and_kept_as_rejected(webhook):
    body = b"[" * 100_000 + b"]" * 100_000
    assert post(webhook.source, body).status_code == 400
    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.note) == ("rejected", "The body is nested deeper than any order")


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity"])
def test_an_order_with_a_number_json_cannot_hold_is_kept_as_failed_and_says_why(
    webhook,
    processed,
    django_capture_on_commit_callbacks,
    number,
):
    body = json.dumps({**ORDER, "total_price": "TOTAL"}).replace('"TOTAL"', number).encode()
    with django_capture_on_commit_callbacks(execute=True):
        assert post(webhook.source, body).status_code == 200
    transfer = Transfer.objects.get()  # not taken for a duplicate and dropped
    assert transfer.status == "failed" and transfer.reference == "#1042"
    assert f"Shopify sent total_price: {float(number)} as a number, which no document can hold" in transfer.reason
    assert transfer.source_data["total_price"] == str(float(number))
    assert Delivery.objects.get().status == "processed"


def test_only_a_repeated_version_is_a_duplicate(connected, monkeypatch):
    transfer = Transfer(
        integration=connected.integration, connection=connected, connection_label="x", entity="orders",
        source_ref="1", source_data={},
    )  # fmt: skip

    def broken(*args, **kwargs):
        raise IntegrityError("CHECK constraint failed: source_data")

    monkeypatch.setattr(Transfer, "save", broken)
    with pytest.raises(IntegrityError):
        transfer.save_received("received")


def test_a_chunked_body_is_411_not_an_unsigned_401(webhook):
    body = json.dumps(ORDER).encode()
    answer = post(webhook.source, body, HTTP_TRANSFER_ENCODING="chunked", CONTENT_LENGTH="")
    assert answer.status_code == 411 and b"Content-Length" in answer.content
    assert not Delivery.objects.exists()
