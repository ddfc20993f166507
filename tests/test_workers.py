"""Real processes: a Celery worker on PostgreSQL and a Redis broker of its own.

- A worker killed (SIGKILL) in the middle of a transfer: the task runs again, exactly one document exists.
- Redis stopped while shops post webhooks: every post gets 200; Redis back: every delivery is processed once.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from django.conf import settings as django_settings

from connections import intake, pipeline
from connections.models import Delivery
from iex.celery import app as celery_app
from transferlog.models import Transfer

ROOT = Path(__file__).resolve().parent.parent
POSTGRES = django_settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(not POSTGRES, reason="a worker process needs a database it can share: set DATABASE_URL"),
    pytest.mark.skipif(not shutil.which("redis-server"), reason="needs redis-server for a broker of its own"),
    pytest.mark.django_db(transaction=True),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(check, timeout=30.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


class Broker:
    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(self.answers, what="redis to start")

    def stop(self) -> None:
        if self.process:
            self.process.kill()
            self.process.wait()
            self.process = None

    def answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False


@pytest.fixture
def broker(monkeypatch):
    broker = Broker()
    broker.start()
    old = celery_app.conf.broker_url, celery_app.conf.broker_transport_options
    # Celery reads CELERY_BROKER_URL from the environment before its own settings.
    monkeypatch.setenv("CELERY_BROKER_URL", broker.url)
    celery_app.conf.broker_url = broker.url
    # What settings.py gives a Redis broker (this test process may have started with the filesystem one).
    celery_app.conf.broker_transport_options = {
        "max_retries": 1,
        "interval_start": 0,
        "interval_step": 0.2,
        "interval_max": 0.2,
    }
    celery_app._after_fork()  # drop pooled connections to the old broker
    yield broker
    celery_app.conf.broker_url, celery_app.conf.broker_transport_options = old
    celery_app._after_fork()
    broker.stop()


@pytest.fixture
def worker(broker, tmp_path, settings):
    db = settings.DATABASES["default"]
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
        "CELERY_BROKER_URL": broker.url,
        "CREDENTIALS_KEYS": ",".join(settings.CREDENTIALS_KEYS),
        "IEX_VAR_DIR": str(tmp_path),
    }
    log = tmp_path / "worker.log"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "iex",
            "worker",
            "-Q",
            "intake,transfers,jobs",
            "--concurrency",
            "1",
            "--pool",
            "prefork",
            "--loglevel",
            "INFO",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ],
        cwd=ROOT,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    wait_for(lambda: "ready." in log.read_text(), timeout=60, what="the worker to be ready")
    yield process, log
    os.killpg(process.pid, signal.SIGTERM)
    process.wait(timeout=30)


def pool_child(worker_pid: int) -> int:
    out = subprocess.run(["pgrep", "-P", str(worker_pid)], capture_output=True, text=True).stdout.split()
    return int(out[0])


def economic(sandbox):
    return requests.get(f"{sandbox.url}/_sandbox/state", timeout=5).json()["economic"]


def test_a_worker_killed_mid_transfer_runs_it_again_and_makes_one_document(sandboxed, sandbox, worker):
    process, log = worker
    books = sandboxed.target
    books.settings = {"document_type": "booked"}  # a draft, then booking it: two steps to be killed between
    books.save()
    sandbox.configure({"latency_ms": 400})
    order = sandbox.create_order({"financial_status": "paid", "country": "DK"})
    from datetime import datetime

    transfer = pipeline.receive(
        sandboxed, str(order["id"]), order["name"], datetime.fromisoformat(order["updated_at"]), order
    )

    # The draft exists in e-conomic, but the transfer has not finished (it is booking): kill the worker process.
    wait_for(lambda: economic(sandbox)["drafts"], what="the draft to be created")
    os.kill(pool_child(process.pid), signal.SIGKILL)

    try:
        transfer = wait_for(
            lambda: Transfer.objects.filter(pk=transfer.pk, status="created").first(),
            timeout=60,
            what="the transfer to run again and finish",
        )
    except AssertionError:
        raise AssertionError(log.read_text()[-4000:]) from None
    state = economic(sandbox)
    assert (len(state["booked"]), len(state["drafts"])) == (1, 0), log.read_text()[-3000:]
    assert transfer.attempts == 2
    assert "WorkerLostError" in log.read_text() or "Process 'ForkPoolWorker" in log.read_text()


def test_webhooks_during_a_broker_outage_are_all_answered_and_processed_once(
    connected, worker, broker, live_server, monkeypatch
):
    import json

    from connections.systems.shopify.webhooks import signature

    connected.trigger = "webhook"
    connected.save()
    connected.target.disconnect()  # transfers stop at "skipped": this test is about the deliveries
    broker.stop()

    raw_orders = []
    for n in range(20):
        order = {
            "id": 9000 + n,
            "name": f"#{9000 + n}",
            "updated_at": "2026-11-20T10:00:00+00:00",
            "financial_status": "paid",
            "total_price": "10.00",
            "line_items": [],
        }
        raw_orders.append(json.dumps(order).encode())
    url = f"{live_server.url}/hooks/{connected.source.webhook_token}/"
    statuses = [
        requests.post(
            url,
            data=raw,
            timeout=10,
            headers={
                "Content-Type": "application/json",
                "X-Shopify-Topic": "orders/create",
                "X-Shopify-Event-Id": f"e{n}",
                "X-Shopify-Hmac-Sha256": signature("whsec", raw),
            },
        ).status_code
        for n, raw in enumerate(raw_orders)
    ]
    assert statuses == [200] * 20
    assert Delivery.objects.filter(status="received").count() == 20

    broker.start()
    celery_app._after_fork()
    assert intake.sweep(older_than_seconds=0) == 20
    intake.sweep(older_than_seconds=0)  # a second sweep while the first is being processed: still once
    wait_for(
        lambda: not Delivery.objects.filter(status="received").exists(),
        timeout=60,
        what="every delivery to be processed",
    )
    assert Delivery.objects.filter(status="processed").count() == 20
    wait_for(lambda: Transfer.objects.filter(status="skipped").count() == 20, timeout=60, what="20 transfers")
    assert Transfer.objects.count() == 20
