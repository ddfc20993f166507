"""GET /metrics: the Prometheus text format, read from the database; staff and allowed networks only, 404 to others."""

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from connections import pipeline
from connections.models import Delivery
from scheduling.models import Job
from transferlog.models import Status, Transfer

pytestmark = pytest.mark.django_db

OUTSIDE = "203.0.113.9"
METRICS = [
    "iex_webhook_deliveries_last_hour",
    "iex_webhook_deliveries_waiting",
    "iex_webhook_oldest_waiting_seconds",
    "iex_transfers_last_24h",
    "iex_transfers_open",
    "iex_transfers_oldest_due_seconds",
    "iex_jobs_late",
]


def samples(response) -> dict[tuple[str, tuple], float]:
    """{(name, ((label, value), ...)): value} of every sample in the body."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


def test_strangers_get_404_whatever_they_send(personas):
    anonymous = Client()
    assert anonymous.get("/metrics", REMOTE_ADDR=OUTSIDE).status_code == 404
    assert anonymous.post("/metrics", REMOTE_ADDR=OUTSIDE).status_code == 404
    # X-Forwarded-For is anyone's to send: only REMOTE_ADDR counts.
    assert anonymous.get("/metrics", REMOTE_ADDR=OUTSIDE, HTTP_X_FORWARDED_FOR="127.0.0.1").status_code == 404


def test_a_signed_in_user_who_is_not_staff_gets_404(personas):
    response = personas.client(personas.owner).get("/metrics", REMOTE_ADDR=OUTSIDE)
    assert response.status_code == 404


def test_staff_may_read_it_from_anywhere(db):
    staff = Client()
    staff.force_login(User.objects.create_user("ops", "ops@iex.example", is_staff=True))
    response = staff.get("/metrics", REMOTE_ADDR=OUTSIDE)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")  # the text format
    assert "no-cache" in response["Cache-Control"] or "max-age=0" in response["Cache-Control"]
    body = response.content.decode()
    for name in METRICS:
        assert f"# TYPE {name} gauge" in body


@pytest.mark.parametrize("address", ["127.0.0.1", "::1", "::ffff:127.0.0.1"])
def test_the_machine_itself_may_scrape_it(db, address):
    response = Client().get("/metrics", REMOTE_ADDR=address)
    assert response.status_code == 200
    assert all(f"# TYPE {name} gauge" in response.content.decode() for name in METRICS)


def test_allowed_networks_come_from_the_setting(db, settings):
    settings.METRICS_ALLOWED_NETWORKS = ["10.0.0.0/8"]
    assert Client().get("/metrics", REMOTE_ADDR="10.20.30.40").status_code == 200
    assert Client().get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 404
    assert Client().get("/metrics", REMOTE_ADDR="not an address").status_code == 404


def test_an_allowed_scraper_may_only_read(db):
    assert Client().post("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 405


def test_the_values_come_from_the_database(connected, personas):
    now = timezone.now()
    module = connected.source

    def delivery(status, age):
        return Delivery.objects.create(
            integration=personas.integration, module=module, topic="orders/create", body=b"{}", status=status,
            received_at=now - age,
        )  # fmt: skip

    # Stored in the order they arrived, as intake stores them.
    delivery(Delivery.Status.PROCESSED, timedelta(hours=3))  # before the hour
    delivery(Delivery.Status.RECEIVED, timedelta(minutes=10))  # waiting ten minutes
    delivery(Delivery.Status.PROCESSED, timedelta(minutes=5))
    delivery(Delivery.Status.PROCESSED, timedelta(minutes=4))
    delivery(Delivery.Status.REJECTED, timedelta(minutes=3))

    def transfer(ref, status, created_ago=timedelta(0), due_ago=timedelta(0)):
        made = pipeline.receive(connected, ref, f"#{ref}", now, {"id": ref})
        Transfer.objects.filter(pk=made.pk).update(status=status, created=now - created_ago, due_at=now - due_ago)

    transfer("1", Status.PENDING, due_ago=timedelta(minutes=7))
    transfer("2", Status.RETRYING, due_ago=-timedelta(minutes=1))  # not due yet
    transfer("3", Status.FAILED)
    transfer("4", Status.CREATED)
    transfer("5", Status.CREATED, created_ago=timedelta(days=2))  # outside the window
    transfer("6", Status.PENDING, created_ago=timedelta(days=3))  # open however old
    job = Job.ensure_for(connected)
    Job.objects.filter(pk=job.pk).update(on_time_at=now - timedelta(days=1))  # no run succeeded for a day

    got = samples(Client().get("/metrics", REMOTE_ADDR="127.0.0.1"))

    def value(name, **labels):
        return got[(name, tuple(sorted(labels.items())))]

    assert value("iex_webhook_deliveries_last_hour", status="received") == 1
    assert value("iex_webhook_deliveries_last_hour", status="processed") == 2
    assert value("iex_webhook_deliveries_last_hour", status="rejected") == 1
    assert value("iex_webhook_deliveries_last_hour", status="ignored") == 0
    assert value("iex_webhook_deliveries_waiting") == 1
    assert 600 <= value("iex_webhook_oldest_waiting_seconds") < 660
    assert value("iex_transfers_last_24h", status="created") == 1
    assert value("iex_transfers_last_24h", status="failed") == 1
    assert value("iex_transfers_last_24h", status="pending") == 1
    assert value("iex_transfers_last_24h", status="held") == 0
    assert value("iex_transfers_open", status="pending") == 2
    assert value("iex_transfers_open", status="retrying") == 1
    assert 420 <= value("iex_transfers_oldest_due_seconds") < 480  # "1", due seven minutes ago
    assert value("iex_jobs_late") == 1


def test_nothing_waiting_reads_as_zero(db):
    got = samples(Client().get("/metrics", REMOTE_ADDR="127.0.0.1"))
    assert got[("iex_webhook_oldest_waiting_seconds", ())] == 0
    assert got[("iex_transfers_oldest_due_seconds", ())] == 0
    assert got[("iex_transfers_open", (("status", "pending"),))] == 0


def test_scraped_over_plain_http_when_https_is_enforced(db, settings):
    settings.SECURE_SSL_REDIRECT = True
    assert Client().get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 200
    assert Client().get("/accounts/login/", REMOTE_ADDR="127.0.0.1").status_code == 301


def test_a_malformed_network_stops_start_up(tmp_path):
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO", "DATABASE"))}
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=Path(__file__).resolve().parent.parent,
        env={**clean, "IEX_VAR_DIR": str(tmp_path), "METRICS_ALLOWED_NETWORKS": "10.0.0.0/8,10.0.0.1/8"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert (
        "METRICS_ALLOWED_NETWORKS must be comma-separated networks like 10.0.0.0/8; got '10.0.0.1/8'"
        in result.stderr
    )
