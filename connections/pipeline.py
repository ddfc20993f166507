"""The transfer pipeline: receive records, then process each transfer once.

    receive: a fetched or posted record becomes a Transfer (deduplicated by source version), enqueued on commit
    process: claim -> skip? -> lease the source record's mapping -> a create? reserve one unit of the allowance
             (or hold) -> send (transform inside) -> record the outcome, use or give back the unit

Transient failures (network, 5xx, 429) are retried with exponential backoff and jitter up to MAX_ATTEMPTS, then
fail with the reason; other 4xx fail at once with the receiving system's message.
"""

from __future__ import annotations

import logging
import random
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from billing import metering
from billing.stripe_api import StripeError
from connections.common import Outcome
from connections.models import Connection, Mapping
from iex.lib import http
from iex.lib.logs import bind_log_context, log_context
from iex.lib.secrets import DecryptionError
from transferlog.models import Status, Transfer

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 6
BACKOFF_CAP = 3600.0
LEASE_BUSY_DELAY = 15.0
PACK_WAIT_DELAY = 5.0  # another transfer of the integration is paying for an order pack


def receive(
    connection: Connection, source_ref: str, reference: str, updated_at: datetime | None, data: Any
) -> Transfer | None:
    """Store a record as a pending transfer and enqueue it once the row is committed; None for a duplicate."""
    transfer = Transfer.receive(connection, source_ref, reference, updated_at, data)
    if transfer is not None:
        enqueue(transfer)
    return transfer


# Fair shares of the workers: the more transfers an integration queued this minute, the lower the lane its next
# ones wait in, and workers take the highest lane first (Redis priorities: 0 first). So one merchant's Black Friday
# waits behind everyone else's ordinary orders instead of in front of them, and still has every worker nobody
# else needs. (transfers this minute, up to, -> lane); above the last: LOWEST_LANE.
LANES = ((20, 0), (200, 3), (2000, 6))
LOWEST_LANE = 9


def lane(integration_id: int) -> int:
    """Count one more transfer queued by the integration this minute, and say which lane it goes in."""
    key = f"transfers-queued:{integration_id}:{int(timezone.now().timestamp() // 60)}"
    try:
        cache.add(key, 0, timeout=120)
        count = cache.incr(key)
    except Exception as exc:  # the cache is Redis: when it is down, so is the broker, and the sweeper takes over
        logger.warning("cannot count queued transfers (%s)", exc)
        return 0
    return next((priority for most, priority in LANES if count <= most), LOWEST_LANE)


def enqueue(transfer: Transfer, countdown: float = 0) -> None:
    from connections.tasks import process_transfer

    priority = lane(transfer.integration_id)
    transaction.on_commit(lambda: publish(process_transfer, transfer.pk, countdown, priority))


def publish(task: Any, object_id: int, countdown: float = 0, priority: int = 0) -> bool:
    """Enqueue after commit. If the broker is down the row is safe in the database: log, and let the sweeper
    enqueue it later, rather than fail the request or job that stored it. False when it could not."""
    try:
        task.apply_async((object_id,), countdown=countdown or None, priority=priority, retry=False)
    except Exception as exc:
        logger.warning("broker unavailable (%s); %s(%s) is left to the sweeper", exc, task.name, object_id)
        return False
    return True


def sweep(overdue_seconds: int | None = None, dry_run: bool = False) -> int:
    """Re-enqueue pending and retrying transfers long past due (SWEEP_AFTER_SECONDS), and run again those still
    running after TRANSFER_LEASE_SECONDS: their worker's host died, and Redis would only redeliver the task after
    its visibility timeout. Returns how many.

    Most of them may only be waiting their turn in a backlog: they go in the lowest lane, behind everything queued,
    and are due again from now, so a long backlog is not queued once more at every sweep."""
    from connections.tasks import process_transfer

    now = timezone.now()
    overdue = settings.SWEEP_AFTER_SECONDS if overdue_seconds is None else overdue_seconds
    lost = Transfer.objects.filter(
        status=Status.RUNNING, updated__lt=now - timedelta(seconds=settings.TRANSFER_LEASE_SECONDS)
    )
    waiting = Transfer.objects.filter(
        status__in=[Status.PENDING, Status.RETRYING], due_at__lt=now - timedelta(seconds=overdue)
    )
    ids = list(lost.values_list("pk", flat=True)[:10_000])
    ids += waiting.order_by("due_at").values_list("pk", flat=True)[:10_000]
    if not dry_run:
        # Pending again, so a new task can claim it (the lost task's id no longer takes its claim over).
        lost.filter(pk__in=ids).update(status=Status.PENDING, task_id="", updated=now)
        Transfer.objects.filter(pk__in=ids).update(due_at=now)
        for transfer_id in ids:
            publish(process_transfer, transfer_id, priority=LOWEST_LANE)
    return len(ids)


def sync(connection: Connection, since: datetime) -> dict[str, int]:
    """Fetch what changed in the source since `since` and receive each record. Returns counts."""
    fetched = received = 0
    for source_ref, reference, updated_at, data in connection.flow_def.fetch(connection, since):
        fetched += 1
        with transaction.atomic():
            if receive(connection, source_ref, reference, updated_at, data):
                received += 1
    return {"fetched": fetched, "received": received}


def backoff(attempt: int, retry_after: float | None = None) -> float:
    if retry_after is not None:
        return retry_after
    return min(BACKOFF_CAP, settings.RETRY_BACKOFF_SECONDS * 2 ** (attempt - 1)) * random.uniform(0.5, 1.5)


def process(transfer_id: int, task_id: str = "") -> None:
    # Every line logged while it runs says which transfer, and (once claimed) which integration, it is about.
    with log_context(transfer=transfer_id):
        _process(transfer_id, task_id)


def _process(transfer_id: int, task_id: str) -> None:
    transfer = Transfer.claim(transfer_id, task_id)
    if transfer is None:
        return  # already processed or being processed: safe to run twice
    bind_log_context(integration=transfer.integration.number)  # claim loaded the integration: no query
    if transfer.run_attempts > MAX_ATTEMPTS:
        # Its worker died every time (redelivered with reject_on_worker_lost): stop the loop.
        _fail(transfer, f"Stopped after {MAX_ATTEMPTS} attempts that did not finish")
        return
    connection = transfer.connection
    if connection is None:
        _fail(transfer, "The connection was removed")
        return
    if reason := connection.skip_reason():
        _finish(transfer, Outcome("skipped", reason))
        return

    data = transfer.source_data
    mapping = Mapping.lease(connection, connection.flow_def.key_of(connection, data), holder=transfer.pk)
    if mapping is None:
        _retry(transfer, "Another transfer of this record is in progress", LEASE_BUSY_DELAY, count=False)
        return
    version = transfer.source_updated_at
    if version and mapping.source_updated_at and version < mapping.source_updated_at:
        mapping.release()
        _finish(transfer, Outcome("skipped", "A newer version of this record was already transferred"))
        return
    known = bool(mapping.target_ref)
    if connection.flow_def.metered and not known:
        try:
            held = metering.reserve(transfer)
        except metering.PackInFlight:
            mapping.release()
            _retry(transfer, "Waiting for an order pack being paid", PACK_WAIT_DELAY, count=False)
            return
        except StripeError as exc:
            mapping.release()
            logger.warning("Stripe unavailable while buying an order pack for transfer %s: %s", transfer.pk, exc)
            _retry(transfer, "Stripe could not be reached to buy an order pack", backoff(transfer.run_attempts))
            return
        except Exception:
            mapping.release()
            logger.exception("reserving allowance for transfer %s failed", transfer.pk)
            _fail(transfer, "Internal error in IEX; our team has been notified")
            return
        if held:
            mapping.release()
            transfer.record("held", None, held)
            transfer.finish(Status.HELD, held)
            return
    try:
        outcome = connection.flow_def.send(connection, data, mapping, transfer.record)
    except Exception as exc:
        # The receiving system may have saved the document before the failure (booking it failed, say): that
        # create counts now, and the next attempt updates it.
        created = not known and bool(mapping.target_ref)
        mapping.release()
        if isinstance(exc, http.TransientError):
            if transfer.run_attempts >= MAX_ATTEMPTS:
                _fail(
                    transfer, f"{exc.message} (gave up after {transfer.run_attempts} attempts)", exc.body, created
                )
            else:
                _retry(transfer, exc.message, backoff(transfer.run_attempts, exc.retry_after), created=created)
        elif isinstance(exc, http.PermanentError):
            if exc.status in (401, 403):
                connection.target.credentials_refused(exc.message)
            _fail(transfer, exc.message, exc.body, created)
        elif isinstance(exc, DecryptionError):
            _fail(
                transfer,
                "The stored credentials cannot be decrypted with the configured keys; reconnect the system",
                created=created,
            )
        else:
            logger.exception("transfer %s failed", transfer.pk)
            _fail(transfer, "Internal error in IEX; our team has been notified", created=created)
        return
    if outcome.status in ("created", "updated", "warning"):
        mapping.source_updated_at = version or mapping.source_updated_at
    # The document, its usage and the transfer's outcome are recorded together.
    with transaction.atomic():
        mapping.release()
        _finish(transfer, outcome)


def _finish(transfer: Transfer, outcome: Outcome) -> None:
    metering.settle(transfer, created=outcome.action == "created")
    transfer.record(outcome.status, None, outcome.reason or outcome.status.capitalize())
    transfer.finish(outcome.status, outcome.reason, action=outcome.action, target_ref=outcome.target_ref)


def _fail(transfer: Transfer, reason: str, answer: Any = None, created: bool = False) -> None:
    metering.settle(transfer, created=created)
    transfer.record("failed", answer, reason)
    transfer.finish(Status.FAILED, reason)


def _retry(transfer: Transfer, reason: str, delay: float, count: bool = True, created: bool = False) -> None:
    metering.settle(transfer, created=created)
    transfer.record("retrying", None, f"{reason}; next attempt in {delay:.0f} s")
    transfer.due_at = timezone.now() + timedelta(seconds=delay)
    transfer.save(update_fields=["due_at"])
    transfer.finish(Status.RETRYING, reason)
    if not count:
        transfer.attempts -= 1
        transfer.save(update_fields=["attempts"])
    enqueue(transfer, countdown=delay)
