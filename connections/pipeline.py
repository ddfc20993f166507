"""The transfer pipeline: receive records, then process each transfer once.

    receive: a fetched or posted record becomes a Transfer (deduplicated by source version), queued on commit
    process: claim -> skip? -> lease the source record's mapping -> attempt: a create? reserve one unit of the
             allowance (or hold) -> send (transform inside) -> end: release the mapping and record the outcome, use
             or give back the unit, all in one transaction

Transient failures (network, 5xx, 429) are retried with exponential backoff and jitter up to MAX_ATTEMPTS, then
fail with the reason; other 4xx fail at once with the receiving system's message.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import random
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from django.conf import settings
from django.db import InterfaceError, OperationalError, transaction
from django.utils import timezone

from billing import usage
from billing.packs import PackInFlight
from billing.stripe_api import StripeError
from connections import gate
from connections.common import Outcome
from connections.models import Connection, Mapping, Module
from connections.systems import JSON, Busy, Raw, Record, Webshop
from iex.lib import http
from iex.lib.logs import bind_log_context, log_context
from iex.lib.secrets import DecryptionError
from iex.models import Integration
from transferlog.models import HeldFor, Status, Transfer, search_text

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 6
BACKOFF_CAP = 3600.0
LEASE_BUSY_DELAY = 15.0
PACK_WAIT_DELAY = 5.0  # another transfer of the integration is paying for an order pack
INTERNAL_ERROR = "Internal error in IEX; our team has been notified"

# How an attempt ends: recorded in the transaction that releases the record's mapping.
Ending = Callable[[], None]


def receive(
    connection: Connection, source_ref: str, reference: str, updated_at: datetime | None, data: Raw
) -> Transfer | None:
    """Store a record as a pending transfer and queue it once the row is committed; None for a duplicate. A record
    JSON cannot hold (NaN or Infinity for a number) is kept as failed, with those values as text, and says so."""
    data, odd = _finite(data)
    transfer = Transfer(
        integration_id=connection.integration_id,
        connection=connection,
        connection_label=connection.label,
        entity=connection.entity,
        source_ref=source_ref,
        reference=reference,
        source_updated_at=updated_at,
        source_data=data,
        **_search_terms(connection, data),
    )
    if not transfer.save_received(f"As received from {connection.source.system.label}"):
        return None
    if odd:
        reason = (
            f"{connection.source.system.label} sent {', '.join(odd[:3])} as a number, which no document can hold: "
            "correct the record there (it is kept here with the value as text)"
        )
        transfer.record("failed", None, reason)
        transfer.finish(Status.FAILED, reason)
        return transfer
    transfer.enqueue()
    return transfer


def _search_terms(connection: Connection, data: Raw) -> dict[str, str]:
    """What the Log's search finds an order by besides its numbers (its customer's names and email), as the webshop
    gives them: the Transfer's fields."""
    system = connection.source.system
    if connection.entity != "orders" or not isinstance(system, Webshop):
        return {}
    try:
        names, email = system.transforms.search_terms(data)
    except (AttributeError, TypeError, ValueError):
        return {}  # a record of an odd shape is received all the same: it is found by its numbers
    return {"search_terms": search_text(*names), "search_email": search_text(email)}


def _finite(data: Raw) -> tuple[Raw, list[str]]:
    """`data` with each NaN or Infinity (which Python reads from JSON but JSON cannot hold) as text, and where they
    were ("total_price: NaN")."""
    try:
        json.dumps(data, allow_nan=False)  # C-fast: nearly every record has none, and is not walked
        return data, []
    except ValueError:
        pass
    found: list[str] = []

    def clean(value: Any, path: str) -> Any:
        if isinstance(value, float) and not math.isfinite(value):
            found.append(f"{path}: {value}")
            return str(value)
        if isinstance(value, dict):
            return {k: clean(v, str(k)) for k, v in value.items()}
        if isinstance(value, list):
            return [clean(v, path) for v in value]
        return value

    return clean(data, ""), found


def sync(connection: Connection, since: datetime) -> tuple[int, list[int]]:
    """Fetch what changed in the source since `since` and receive each record. Returns how many records were
    fetched, and the ids of the transfers received: the records new to IEX (the rest were already known)."""
    fetched, received = 0, []
    with gate.patient():  # a job's fetch waits for room in the budget in place: it has no transfer to wait in
        for source_ref, reference, updated_at, data in connection.flow_def.fetch(connection, since):
            fetched += 1
            with transaction.atomic():
                if transfer := receive(connection, source_ref, reference, updated_at, data):
                    received.append(transfer.pk)
    return fetched, received


def backoff(attempt: int, retry_after: float | None = None) -> float:
    if retry_after is not None:
        return min(retry_after, BACKOFF_CAP)  # a countdown must stay well inside Redis' visibility timeout
    return min(BACKOFF_CAP, settings.RETRY_BACKOFF_SECONDS * 2 ** (attempt - 1)) * random.uniform(0.5, 1.5)


def process(transfer_id: int, task_id: str = "") -> None:
    # Every line logged while it runs says which transfer, and (once claimed) which integration, it is about.
    with log_context(transfer=transfer_id):
        transfer = Transfer.claim(transfer_id, task_id)
        if transfer is None:
            return  # already processed or being processed: safe to run twice
        bind_log_context(integration=transfer.integration.number)  # claim loaded the integration: no query
        _process(transfer)


def _process(transfer: Transfer) -> None:
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
    if refused := connection.refused():
        _hold_for_access(transfer, refused)
        return
    data = transfer.source_data
    if not isinstance(data, dict):
        _fail(transfer, "The record was received without its data")
        return
    mapping = Mapping.lease(connection, connection.flow_def.key_of(data), holder=transfer.pk)
    if mapping is None:
        _retry(transfer, "Another transfer of this record is in progress", LEASE_BUSY_DELAY, count=False)
        return
    # Whatever the attempt's end, the mapping is released with it, in one transaction: the document the receiving
    # system made (the mapping), its usage and the transfer's outcome are recorded together. (When the database
    # itself is away, the attempt raises and the task runs again: its transfer takes its own lease back.)
    claims = Claims(connection, holder=transfer.pk, rerun=transfer.run_attempts > 1)
    end = _attempt(transfer, connection, data, mapping, claims)
    with transaction.atomic():
        mapping.release()
        claims.release()
        end()


class Claims:
    """What a transfer claims in the receiving system beside its own record: a customer it may create, so that two
    orders of one new customer at once make it once. Each claim is a Mapping leased to the transfer (its target_ref
    notes what was made), let go with the transfer's end. Claims are kept on the connection that carries orders
    between the two systems, so a refund's credit note and an order share them."""

    def __init__(self, connection: Connection, holder: int, rerun: bool = False) -> None:
        self.holder = holder
        self.rerun = rerun  # an earlier attempt of the transfer ran: it may have died holding claims
        self.connection = connection
        if connection.flow != "orders":
            orders = Connection.objects.filter(
                source=connection.source_id, target=connection.target_id, flow="orders"
            )
            self.connection = orders.first() or connection
        self.held: list[Mapping] = []

    def __call__(self, key: str) -> Mapping:
        source_ref = "claim:" + hashlib.sha256(key.encode()).hexdigest()[:40]
        mapping = Mapping.lease(self.connection, source_ref, holder=self.holder)
        if mapping is None:
            raise Busy("Another transfer is making what this one needs in the receiving system (its customer)")
        self.held.append(mapping)
        return mapping

    def release(self) -> None:
        for mapping in self.held:
            mapping.release()
        if self.rerun:
            # What an attempt that died held and this one did not need again (the customer was made by then): let
            # go now, not when its lease runs out, or others needing it would wait for that.
            stale = Mapping.objects.filter(
                connection=self.connection, leased_by=self.holder, source_ref__startswith="claim:"
            )
            stale.update(leased_until=None, leased_by=None)


def _attempt(transfer: Transfer, connection: Connection, data: Raw, mapping: Mapping, claims: Claims) -> Ending:
    """Reserve the allowance for a create and send the record; how the transfer ends."""
    version = transfer.source_updated_at
    if version and mapping.source_updated_at and version < mapping.source_updated_at:
        return partial(
            _finish, transfer, Outcome("skipped", "A newer version of this record was already transferred")
        )
    known = bool(mapping.target_ref)
    if connection.flow_def.metered and not known and (held := _reserve(transfer)):
        return held
    gate.last_refusal.set(None)
    try:
        outcome = connection.flow_def.send(connection, data, mapping, _within_lease(transfer), claims)
    except (InterfaceError, OperationalError):
        raise  # the database is away: the task runs again (tasks.RELIABLE)
    except Busy as exc:  # also Wait: the account's gate is shut for now (connections/gate.py)
        return partial(
            _retry,
            transfer,
            str(exc),
            exc.delay or LEASE_BUSY_DELAY,
            count=False,
            created=not known and bool(mapping.target_ref),
        )
    except Exception as exc:
        # The receiving system may have saved the document before the failure (booking it failed, say): that
        # create counts now, and the next attempt updates it.
        return _failed(transfer, connection, exc, created=not known and bool(mapping.target_ref))
    if outcome.status in ("created", "updated", "warning"):
        mapping.source_updated_at = version or mapping.source_updated_at
    return partial(_finish, transfer, outcome)


def _reserve(transfer: Transfer) -> Ending | None:
    """Take one unit of the month's allowance for the create; None when taken, else how the transfer ends."""
    try:
        held = usage.reserve(transfer)
    except PackInFlight:
        return partial(_retry, transfer, "Waiting for an order pack being paid", PACK_WAIT_DELAY, count=False)
    except StripeError as exc:
        logger.warning("Stripe unavailable while buying an order pack for transfer %s: %s", transfer.pk, exc)
        # Not counted: while Stripe is away the order waits, however long that is, and says why.
        reason = "Stripe could not be reached to buy an order pack"
        return partial(_retry, transfer, reason, backoff(transfer.run_attempts), count=False)
    except (InterfaceError, OperationalError):
        raise  # the database is away: the task runs again (tasks.RELIABLE)
    except Exception:
        logger.exception("reserving allowance for transfer %s failed", transfer.pk)
        return partial(_fail, transfer, INTERNAL_ERROR)
    return partial(_hold, transfer, held) if held else None


def _failed(transfer: Transfer, connection: Connection, exc: Exception, created: bool) -> Ending:
    """How a send that raised ends: transient errors are retried (up to MAX_ATTEMPTS), the rest fail."""
    if isinstance(exc, http.TransientError):
        if transfer.run_attempts >= MAX_ATTEMPTS:
            reason = f"{exc.message} (gave up after {transfer.run_attempts} attempts)"
            return partial(_fail, transfer, reason, exc.body, created)
        delay = backoff(transfer.run_attempts, exc.retry_after)
        return partial(_retry, transfer, exc.message, delay, created=created)
    if isinstance(exc, http.PermanentError):
        if exc.status in (401, 403):  # about IEX's access, not the record: it waits until the system lets IEX in
            refusing = connection.source if gate.last_refusal.get() == connection.source_id else connection.target
            refusing.credentials_refused(exc.message)
            return partial(_hold_for_access, transfer, refusing, exc.body, created)
        return partial(_fail, transfer, exc.message, exc.body, created)
    if isinstance(exc, DecryptionError):
        reason = "The stored credentials cannot be decrypted with the configured keys; reconnect the system"
        return partial(_fail, transfer, reason, None, created)
    logger.exception("transfer %s failed", transfer.pk)
    return partial(_fail, transfer, INTERNAL_ERROR, None, created)


def _within_lease(transfer: Transfer) -> Record:
    """`transfer.record` for the connector, which stops the transfer before a request once it has run half its
    lease: the sweeper takes a transfer running longer for lost, and must not run it while it still runs."""
    deadline = time.monotonic() + settings.TRANSFER_LEASE_SECONDS / 2

    def record(kind: str, data: JSON, note: str) -> None:
        if kind == "sent" and time.monotonic() > deadline:
            raise http.TransientError(
                "The receiving system answered too slowly; the transfer stopped to run again"
            )
        transfer.record(kind, data, note)

    return record


def _finish(transfer: Transfer, outcome: Outcome) -> None:
    created = outcome.action == "created"
    usage.settle(transfer, created=created)
    transfer.record(outcome.status, None, outcome.reason or outcome.status.capitalize())
    named = {"reference": outcome.reference} if outcome.reference else {}
    transfer.finish(
        outcome.status,
        outcome.reason,
        action=outcome.action,
        target_ref=outcome.target_ref,
        held_for=(outcome.held_for or HeldFor.SETTINGS) if outcome.status == Status.HELD else "",
        **named,
    )
    connection = transfer.connection
    if created and connection is not None and connection.flow_def.awaited:
        # What waited for this record to reach the receiving system (a refund, for its invoice) goes now: queued
        # when this transaction commits, so it finds the document made.
        waiting = HeldFor.record(connection.pk, transfer.source_ref)
        if Transfer.any_held(transfer.integration_id, waiting):
            sent = f"{transfer.reference or transfer.source_ref} was sent"
            Transfer.release_held(transfer.integration, sent, waiting)


def _hold(transfer: Transfer, reason: str) -> None:
    """No allowance left, and none could be bought: kept with its data until what fixes it releases it."""
    transfer.record("held", None, reason)
    transfer.finish(Status.HELD, reason, held_for=HeldFor.ORDERS)


def _hold_for_access(transfer: Transfer, module: Module, answer: Any = None, created: bool = False) -> None:
    """The system refused IEX (its credentials, or too many requests): kept with its data until it lets IEX in."""
    usage.settle(transfer, created=created)
    reason = f"Waiting until {module.system.label} lets IEX in again: {module.credentials_error}"
    transfer.record("held", answer, reason)
    transfer.finish(Status.HELD, reason, held_for=HeldFor.access(module.pk))


def release_let_in() -> int:
    """Queue again the transfers held for a system that lets IEX in again, however that came about (a test of it
    succeeded, its credentials were saved anew, it was removed, its integration activated): how many."""
    released = 0
    held = Transfer.objects.filter(status=Status.HELD, held_for__startswith="access:")
    for integration_id, held_for in held.values_list("integration_id", "held_for").distinct():
        module = Module.objects.filter(pk=int(held_for.partition(":")[2])).first()
        if module is None or module.credentials_failed_at is None:
            integration = Integration.objects.get(pk=integration_id)
            released += Transfer.release_held(integration, "the system lets IEX in again", held_for)
    return released


def _fail(transfer: Transfer, reason: str, answer: Any = None, created: bool = False) -> None:
    usage.settle(transfer, created=created)
    transfer.record("failed", answer, reason)
    transfer.finish(Status.FAILED, reason)


def _retry(transfer: Transfer, reason: str, delay: float, count: bool = True, created: bool = False) -> None:
    """Run again in `delay` seconds. `count=False`: the wait is not the transfer's fault (another transfer holds the
    record, a pack is being paid, a system's gate is shut): the attempt is given back, and never counts towards
    MAX_ATTEMPTS; such a wait comes back every few seconds, so its state counts the times instead of adding one."""
    usage.settle(transfer, created=created)
    if count:
        transfer.record("retrying", None, f"{reason}; next attempt in {delay:.0f} s")
    else:
        transfer.record_wait(reason)
    transfer.finish(
        Status.RETRYING,
        reason,
        due_at=timezone.now() + timedelta(seconds=delay),
        attempts=transfer.attempts if count else transfer.attempts - 1,
    )
    transfer.enqueue(countdown=delay)
