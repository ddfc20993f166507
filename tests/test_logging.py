"""Log lines: JSON with LOG_FORMAT=json, carrying the integration number and transfer id where the code knows them."""

import dataclasses
import io
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from connections import pipeline
from connections.flows import FLOWS
from iex.lib import logs
from transferlog.models import Transfer

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def lines():
    """What reaches a handler set up as settings.LOGGING sets up the console with LOG_FORMAT=json: parsed lines."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(logs.ContextFilter())
    handler.setFormatter(logs.JsonFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    root.removeHandler(handler)


def test_a_line_has_time_level_logger_message_and_the_exception(lines):
    try:
        raise ValueError("the cause")
    except ValueError:
        logging.getLogger("iex.somewhere").exception("it failed for %s", "a reason")
    [line] = lines()
    assert line["level"] == "ERROR" and line["logger"] == "iex.somewhere"
    assert line["message"] == "it failed for a reason"
    assert line["time"].endswith("+00:00") and "T" in line["time"]
    assert "Traceback" in line["exception"] and "ValueError: the cause" in line["exception"]
    assert "integration" not in line and "transfer" not in line  # nothing bound: no empty fields


def test_values_are_bound_for_a_block_and_gone_after_it(lines):
    log = logging.getLogger("iex.test")
    with logs.log_context(transfer=7):
        logs.bind_log_context(integration="123456")
        log.warning("inside")
    log.warning("after")
    inside, after = lines()
    assert (inside["integration"], inside["transfer"]) == ("123456", 7)
    assert "integration" not in after and "transfer" not in after
    with pytest.raises(ValueError, match="cannot bind"):
        logs.bind_log_context(order="#1042")


def test_a_request_leaves_nothing_bound_and_what_django_keeps_in_context_lives_on():
    from contextvars import ContextVar

    from django.http import HttpResponse
    from django.test import RequestFactory

    kept: ContextVar[str] = ContextVar("kept")  # as Django keeps its cache connections (asgiref Local)

    def view(request):
        logs.bind_log_context(integration="123456")
        kept.set("the cache's connection pool")
        assert logs.current() == {"integration": "123456"}
        return HttpResponse()

    logs.log_context_middleware(view)(RequestFactory().get("/"))
    assert logs.current() == {}
    assert kept.get(None) == "the cache's connection pool"  # not made afresh for the next request


@pytest.mark.django_db
def test_a_transfers_log_lines_carry_its_integration_and_id(connected, personas, lines, monkeypatch):
    def boom(*args):
        raise RuntimeError("a bug in a transform")

    monkeypatch.setitem(FLOWS, "orders", dataclasses.replace(FLOWS["orders"], send=boom))
    transfer = pipeline.receive(
        connected, "1042", "#1042", timezone.now(), {"id": 1042, "financial_status": "paid"}
    )
    with CaptureQueriesContext(connection) as queries:
        pipeline.process(transfer.pk)
    transfer.refresh_from_db()
    assert transfer.status == "failed"
    [line] = [line for line in lines() if line["logger"] == "connections.pipeline"]
    assert line["message"] == f"transfer {transfer.pk} failed"
    assert line["integration"] == personas.integration.number and line["transfer"] == transfer.pk
    assert "RuntimeError: a bug in a transform" in line["exception"]
    # The integration's number came with the claim: binding it read nothing more.
    assert not [q for q in queries.captured_queries if q["sql"].startswith('SELECT "iex_integration"')]
    assert logs.current() == {}


@pytest.mark.django_db
def test_a_requests_log_lines_carry_its_integration_and_the_next_request_starts_clean(personas, lines):
    # A viewer may not deactivate the integration: Django logs the 403 after get_member bound the number.
    client = personas.client(personas.viewer)
    response = client.post(f"/i/{personas.integration.number}/settings/active/", {"active": ""})
    assert response.status_code == 403
    [line] = [line for line in lines() if line["logger"] == "django.request"]
    assert line["level"] == "WARNING" and line["integration"] == personas.integration.number
    # The test client serves requests on this thread, as gunicorn does: nothing bound outlived the request.
    assert logs.current() == {}
    client.get("/no-such-page/")
    assert "integration" not in lines()[-1]


@pytest.mark.django_db
def test_a_job_runs_log_lines_carry_its_integration(connected, personas, lines, monkeypatch):
    from scheduling.models import Job
    from scheduling.tasks import run_job

    def sync(connection, since):
        logging.getLogger("connections.pipeline").warning("fetching")
        raise RuntimeError("a bug in a client")

    monkeypatch.setattr(pipeline, "sync", sync)
    job = Job.ensure_for(connected)
    run_job(job.pk)
    fetching, failed = [line for line in lines() if line["logger"] in ("connections.pipeline", "scheduling.tasks")]
    assert fetching["message"] == "fetching" and failed["message"] == f"job {job.pk} failed"
    assert fetching["integration"] == failed["integration"] == personas.integration.number
    assert "RuntimeError: a bug in a client" in failed["exception"]
    assert logs.current() == {}


@pytest.mark.django_db
def test_an_inbox_drains_log_lines_carry_the_integration(connected, personas, lines, monkeypatch):
    from connections import intake
    from connections.models import Delivery
    from tests.test_pipeline import ORDER

    connected.trigger = "webhook"
    connected.save()

    def receive(*args):
        logging.getLogger("connections.pipeline").warning("receiving")
        raise RuntimeError("a bug in receiving")

    def deliver():
        return Delivery.objects.create(
            integration=personas.integration, module=connected.source, topic="orders/create",
            body=json.dumps(ORDER).encode(),
        )  # fmt: skip

    monkeypatch.setattr(pipeline, "receive", receive)
    delivery = deliver()
    assert intake.drain(connected.source.pk) == 1
    receiving, failed = [
        line for line in lines() if line["logger"] in ("connections.pipeline", "connections.intake")
    ]
    assert receiving["message"] == "receiving"  # bound by process
    assert failed["message"] == f"delivery {delivery.pk} could not be processed"  # bound by the drain
    assert receiving["integration"] == failed["integration"] == personas.integration.number
    assert logs.current() == {}
    # Processing one delivery alone binds it too.
    with pytest.raises(RuntimeError):
        intake.process(deliver().pk)
    assert lines()[-1]["message"] == "receiving" and lines()[-1]["integration"] == personas.integration.number
    assert logs.current() == {}


@pytest.mark.django_db
def test_a_failed_error_digest_logs_the_integration_number(connected, personas, lines, monkeypatch):
    from datetime import timedelta

    from dashboard import notifications
    from iex.lib import emails

    transfer = pipeline.receive(connected, "1042", "#1042", timezone.now(), {"id": 1042})
    Transfer.objects.filter(pk=transfer.pk).update(status="failed", updated=timezone.now() - timedelta(minutes=5))
    monkeypatch.setattr(emails, "send", lambda *a, **k: (_ for _ in ()).throw(OSError("SMTP refused")))
    assert notifications.send_error_digests() == 0
    [line] = [line for line in lines() if line["logger"] == "dashboard.notifications"]
    assert line["message"] == "error digest failed" and line["integration"] == personas.integration.number
    assert "OSError: SMTP refused" in line["exception"]
    assert logs.current() == {}


def run_python(code: str, tmp_path, **env) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO", "DATABASE", "LOG_"))}
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**clean, "IEX_VAR_DIR": str(tmp_path), "DJANGO_SETTINGS_MODULE": "iex.settings", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


LOG_A_LINE = """
import django, logging
django.setup()
from iex.lib.logs import log_context
with log_context(integration="654321", transfer=99):
    logging.getLogger("iex.check").warning("hello")
"""


def test_log_format_json_makes_the_console_write_json_lines(tmp_path):
    result = run_python(LOG_A_LINE, tmp_path, LOG_FORMAT="json")
    assert result.returncode == 0, result.stderr
    line = json.loads(result.stderr.strip().splitlines()[-1])
    assert line["message"] == "hello" and line["logger"] == "iex.check" and line["level"] == "WARNING"
    assert (line["integration"], line["transfer"]) == ("654321", 99)


def test_plain_is_the_default(tmp_path):
    result = run_python(LOG_A_LINE, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip().splitlines()[-1] == "hello"


def test_a_bad_log_format_stops_start_up(tmp_path):
    result = run_python(LOG_A_LINE, tmp_path, LOG_FORMAT="xml")
    assert result.returncode != 0
    assert "LOG_FORMAT must be plain or json; got 'xml'" in result.stderr


def test_celery_workers_leave_logging_to_django_with_json(tmp_path):
    # Celery skips its own logging set-up (which would replace the JSON handler) when a receiver takes the signal.
    code = "from celery.signals import setup_logging; import iex; print(len(setup_logging.receivers))"
    assert run_python(code, tmp_path, LOG_FORMAT="json").stdout.strip() == "1"
    assert run_python(code, tmp_path).stdout.strip() == "0"
