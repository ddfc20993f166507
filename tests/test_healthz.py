from unittest import mock

import pytest
from django.db import OperationalError

pytestmark = pytest.mark.django_db


def test_healthy(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "broker": "ok", "late_jobs": 0}


def test_broker_down_is_reported_but_not_503(client):
    """Intake stores and answers while Redis is away: the balancer must keep the web hosts in rotation."""
    from iex.celery import app

    # A port nothing listens on: the broker connection is refused for real.
    connect = app.connection_for_write
    with mock.patch.object(app, "connection_for_write", lambda: connect("redis://127.0.0.1:1/0")):
        response = client.get("/healthz")
    assert response.status_code == 200
    assert (response.json()["status"], response.json()["database"]) == ("degraded", "ok")
    assert response.json()["broker"].startswith("error")


def test_database_down_is_503(client):
    with mock.patch("django.db.backends.base.base.BaseDatabaseWrapper.cursor", side_effect=OperationalError):
        response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["database"] == "error: OperationalError"


def test_healthz_rejects_post(client):
    assert client.post("/healthz").status_code == 405
