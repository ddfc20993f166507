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
import time
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import InterfaceError, OperationalError, transaction
from django.db.models import Q
from django.utils import timezone

from billing import metering
from billing.stripe_api import StripeError
from connections.common import Outcome
from connections.models import Connection, Mapping
from iex.lib import http
from iex.lib.logs import bind_log_context, log_context
from iex.lib.secrets import DecryptionError
from transferlog.models import Status, Transfer, TransferState

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
RESWEEP_AFTER = 10  # times SWEEP_AFTER_SECONDS: a transfer still waiting its turn is queued again this rarely


def lane_of(count: int) -> int:
    """The lane of an integration's count-th transfer in a minute."""
    return next((priority for most, priority in LANES if count <= most), LOWEST_LANE)


def lane(integration_id: int) -> int:
    """Count one more transfer queued by the integration this minute, and say which lane it goes in. Only Redis
    has lanes (the filesystem broker of the embedded defaults takes messages in order)."""
    if not settings.CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
        return 0
    key = f"transfers-queued:{integration_id}:{int(timezone.now().timestamp() // 60)}"
    try:
        cache.add(key, 0, timeout=120)
        count = cache.incr(key)
    except Exception as exc:  # the cache is Redis: when it is down, so is the broker, and the sweeper takes over
        logger.warning("cannot count queued transfers (%s)", exc)
        return 0
    return lane_of(count)


def enqueue(transfer: Transfer, countdown: float = 0) -> None:
    """Publish after commit, in the integration's lane (counted then: no cache round trip holds a row lock)."""
    from connections.tasks import process_transfer

    transfer_id, integration_id = transfer.pk, transfer.integration_id
    transaction.on_commit(lambda: publish(process_transfer, transfer_id, countdown, lane(integration_id)))


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

    Most of them may only be waiting their turn in a backlog: each is queued again only every RESWEEP_AFTER sweeps'
    worth of time, and each integration's go into lanes by their number, as if queued this minute, so a sweep
    after a lost Redis keeps the shares fair."""
    from connections.tasks import process_transfer

    now = timezone.now()
    overdue = timedelta(seconds=settings.SWEEP_AFTER_SECONDS if overdue_seconds is None else overdue_seconds)
    lost = Transfer.objects.filter(
        status=Status.RUNNING, updated__lt=now - timedelta(seconds=settings.TRANSFER_LEASE_SECONDS)
    )
    waiting = Transfer.objects.filter(
        status__in=[Status.PENDING, Status.RETRYING], due_at__lt=now - overdue
    ).filter(Q(swept_at=None) | Q(swept_at__lt=now - RESWEEP_AFTER * overdue))
    found = list(lost.values_list("pk", "integration_id")[:10_000])
    lost_ids = [pk for pk, _ in found]
    found += waiting.order_by("due_at").values_list("pk", "integration_id")[:10_000]
    if dry_run:
        return len(found)
    if lost_ids:
        # Pending again, so a new task can claim it (the lost task's id no longer takes its claim over).
        lost.filter(pk__in=lost_ids).update(status=Status.PENDING, task_id="", updated=now)
        TransferState.objects.bulk_create(
            TransferState(transfer_id=pk, kind="retrying", at=now, note="Its worker stopped answering; run again")
            for pk in lost_ids
        )
    Transfer.objects.filter(pk__in=[pk for pk, _ in found]).update(swept_at=now)
    counts: dict[int, int] = defaultdict(int)
    for transfer_id, integration_id in found:
        counts[integration_id] += 1
        publish(process_transfer, transfer_id, priority=lane_of(counts[integration_id]))
    return len(found)


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
        return min(retry_after, BACKOFF_CAP)  # a countdown must stay well inside Redis' visibility timeout
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
            # Not counted: while Stripe is away the order waits, however long that is, and says why.
            _retry(
                transfer,
                "Stripe could not be reached to buy an order pack",
                backoff(transfer.run_attempts),
                count=False,
            )
            return
        except (InterfaceError, OperationalError):
            raise  # the database is away: the task runs again (tasks.RELIABLE)
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
        outcome = connection.flow_def.send(connection, data, mapping, _within_lease(transfer))
    except (InterfaceError, OperationalError):
        raise  # the database is away: the task runs again (tasks.RELIABLE)
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


def _within_lease(transfer: Transfer) -> Any:
    """`transfer.record` for the connector, which stops the transfer before a request once it has run half its
    lease: the sweeper takes a transfer running longer for lost, and must not run it while it still runs."""
    deadline = time.monotonic() + settings.TRANSFER_LEASE_SECONDS / 2

    def record(kind: str, data: Any = None, note: str = "") -> None:
        if kind == "sent" and time.monotonic() > deadline:
            raise http.TransientError(
                "The receiving system answered too slowly; the transfer stopped to run again"
            )
        transfer.record(kind, data, note)

    return record


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
