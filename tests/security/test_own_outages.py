"""Outages of our own services: what the operators and the balancer rely on keeps answering. /metrics answers while
Redis is away (its backlog gauges matter most then), /healthz fails only when the database does, and workers never
stop reconnecting to the broker."""

from unittest import mock

import pytest
from django.core.cache import cache
from django.test import Client

from iex.celery import app as celery_app

pytestmark = pytest.mark.django_db


def test_metrics_answer_while_redis_is_away(db):
    with mock.patch.object(cache, "get_many", side_effect=ConnectionError("Redis is away")):
        response = Client().get("/metrics", REMOTE_ADDR="127.0.0.1")
    assert response.status_code == 200
    assert b"iex_webhook_deliveries_waiting" in response.content


def test_the_balancer_keeps_a_web_host_whose_broker_is_away(client):
    connect = celery_app.connection_for_write
    with mock.patch.object(celery_app, "connection_for_write", lambda: connect("redis://127.0.0.1:1/0")):
        response = client.get("/healthz")
    assert response.status_code == 200 and response.json()["status"] == "degraded"


def test_workers_reconnect_to_the_broker_for_as_long_as_it_takes():
    assert celery_app.conf.broker_connection_max_retries is None


def test_webhooks_posted_while_the_database_is_away_are_told_to_come_back(webhook, caplog):
    """Not a 500 and a traceback per post: 503 with Retry-After (the shop sends it again), one log line a second,
    counted on /metrics."""
    from django.db import OperationalError

    from tests.test_intake import ORDER, post

    with mock.patch("connections.intake._store", side_effect=OperationalError("the database is restarting")):
        answers = [post(webhook.source, ORDER, event=f"evt-{n}") for n in range(5)]
    assert {(a.status_code, a["Retry-After"]) for a in answers} == {(503, "5")}
    assert caplog.text.count("the database is away") == 1 and "Traceback" not in caplog.text
    metrics = Client().get("/metrics", REMOTE_ADDR="127.0.0.1").content.decode()
    assert "iex_database_away_answers_total 5.0" in metrics
