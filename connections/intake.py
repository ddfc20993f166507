"""Webhook intake: /hooks/<token>/ stores what a shop posts and answers at once; processing comes after commit.

bad signature 401 (nothing stored) | body over 1 MB 413 | invalid JSON 400 (kept as rejected)
unknown topic 200 (kept as ignored) | duplicate event 200 (stored once) | otherwise 200, processed on commit

Processing is one *drain* per module: after commit, intake makes sure a drain of the module's inbox is queued (a
QueuedDrain row says one already is), so a burst costs one short statement per delivery rather than one broker
message, and the intake queue holds at most one drain per shop. A drain takes a batch, oldest first, and queues
itself again behind the other shops' drains while more are waiting: one shop's Black Friday does not starve the
rest.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

import psycopg
from django.conf import settings
from django.core.cache import cache
from django.db import InterfaceError, OperationalError, connection, transaction
from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from connections import pipeline
from connections.models import Connection, Delivery, Module, QueuedDrain
from connections.systems import SYSTEMS, SourceRef, WebhookReader
from iex.lib import emails, queueing
from iex.lib import secrets as credentials_crypto
from iex.lib.batches import delete_in_batches
from iex.lib.logs import bind_log_context, log_context
from iex.lib.secrets import DecryptionError

logger = logging.getLogger(__name__)

MAX_BODY = 1024 * 1024


@csrf_exempt
@require_POST
def receive_webhook(request: HttpRequest, token: str) -> HttpResponse:
    answer = _take(request, token, fresh=False)
    if answer is None:
        # What this process had read about the address no longer holds (its secret or credentials changed since):
        # once more, with the module as the database has it now.
        answer = _take(request, token, fresh=True)
    # None again: the module changed once more between reading it afresh and storing. The shop sends it again.
    return answer or HttpResponse(
        "Try again\n", status=503, content_type="text/plain", headers={"Retry-After": "1"}
    )


def _take(request: HttpRequest, token: str, *, fresh: bool) -> HttpResponse | None:
    """Check and store one post with what is known of its address (read afresh, or as this process read it
    before); None when that no longer holds and nothing was stored."""
    receiver = _receiver(token, fresh)
    if receiver is None:
        return refuse("unknown_address")
    if "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower() and not request.META.get(
        "CONTENT_LENGTH"
    ):
        return refuse("length_required")  # read as empty, it would be refused as unsigned: say what is wrong
    declared = request.META.get("CONTENT_LENGTH") or "0"
    if not declared.isdigit() or int(declared) > MAX_BODY or len(request.body) > MAX_BODY:
        return refuse("too_large")
    body = request.body
    if webhook_id := receiver.hooks.ping(body, request.headers):
        return _ping(receiver, token, webhook_id)
    if not receiver.hooks.verify(receiver.secrets.valid(), body, request.headers):
        # Its secret may have changed since this process read it: only a secret read afresh refuses.
        return refuse("bad_signature") if receiver.fresh else None
    topic, event_id = receiver.hooks.topic(request.headers), receiver.hooks.event_id(request.headers)
    status, note, processed_at = _triage(receiver.hooks, topic, body)
    headers = {name: request.headers[name] for name in receiver.hooks.KEPT_HEADERS if name in request.headers}
    stored = _store(receiver, token, topic[:100], event_id[:100], headers, body, status, note, processed_at)
    if stored is None:
        return None  # the module's address or credentials changed after they were read
    delivery_id, drain_flagged = stored
    if status == Delivery.Status.REJECTED:
        return HttpResponse("Invalid JSON\n", status=400, content_type="text/plain")
    if delivery_id is None:
        # The unique (module, event id) index: a retried event is answered 200 and stored once.
        return HttpResponse("OK (duplicate)\n", content_type="text/plain")
    if drain_flagged:
        enqueue(receiver.module_id)
    return HttpResponse("OK\n", content_type="text/plain")


def _ping(receiver: Receiver, token: str, webhook_id: str) -> HttpResponse | None:
    """A system checking the address (WooCommerce when a webhook is made): 200, and kept as ignored once per module
    (a ping is unsigned: anyone with the address could send them)."""
    note = f"A ping from {receiver.label}: its webhook {webhook_id} reaches IEX"
    stored = _store(receiver, token, "ping", "ping", {}, b"", Delivery.Status.IGNORED, note, timezone.now())
    return None if stored is None else HttpResponse("OK\n", content_type="text/plain")


def _triage(hooks: WebhookReader, topic: str, body: bytes) -> tuple[str, str, datetime | None]:
    """(status, note, processed at) of a delivery as it arrives: received for a drain, or not worth one."""
    try:
        json.loads(body)
    except ValueError:
        return Delivery.Status.REJECTED, "The body is not valid JSON", None
    except RecursionError:
        return Delivery.Status.REJECTED, "The body is nested deeper than any order", None
    if topic not in hooks.TOPICS:
        return Delivery.Status.IGNORED, f"IEX does not handle the topic {topic!r}", timezone.now()
    return Delivery.Status.RECEIVED, "", None


# Posts turned away at the door are not stored: they are counted (in the shared cache, for /metrics), so a shop
# whose secret no longer matches, or a flood of wrong addresses, shows up somewhere.
REFUSALS = {
    "unknown_address": (404, "Unknown webhook address\n"),
    "too_large": (413, "Body over 1 MB\n"),
    "length_required": (411, "Send the body with a Content-Length, not chunked\n"),
    "bad_signature": (401, "Invalid signature\n"),
}


def refuse(reason: str) -> HttpResponse:
    key = f"iex:webhooks:refused:{reason}"
    try:
        if not cache.add(key, 1, timeout=None):
            cache.incr(key)
    except Exception:  # a refusal is answered whatever the cache does
        logger.warning("could not count a refused webhook (%s)", reason, exc_info=True)
    status, text = REFUSALS[reason]
    return HttpResponse(text, status=status, content_type="text/plain")


def refusal_counts() -> dict[str, int]:
    """Webhook posts refused since the cache began, by reason (a counter: Prometheus takes a restart as a reset);
    none while the cache (Redis) is away: /metrics must answer then most of all."""
    try:
        counts = cache.get_many([f"iex:webhooks:refused:{reason}" for reason in REFUSALS])
    except Exception:
        logger.warning("could not read the refused webhook counts from the cache", exc_info=True)
        return {}
    return {reason: int(counts.get(f"iex:webhooks:refused:{reason}", 0)) for reason in REFUSALS}


# Intake is the hottest path IEX has (shops post at Black Friday rates): one statement per post, written out rather
# than built by the ORM. Each process keeps what it read about a webhook address (the module, its system, its secret);
# the statement that stores a delivery checks that the address and the credentials it was read with are still the
# module's, and stores nothing otherwise. So a rotated address or a changed secret is never used past its change: the
# post is checked again with what the database holds now.


@dataclass(frozen=True)
class Secrets:
    """A module's webhook secret, and the one it replaced while the shop may still sign with that; for a module
    connected by installing IEX's app, the app's secret too (the system signs the app's webhooks with it)."""

    current: str
    previous: str = ""
    previous_until: datetime | None = None
    app: str = ""

    def valid(self) -> tuple[str, ...]:
        own = (self.current, self.app) if self.app else (self.current,)
        if self.previous and self.previous_until and timezone.now() < self.previous_until:
            return (*own, self.previous)
        return own


@dataclass(frozen=True)
class Receiver:
    module_id: int
    integration_id: int
    label: str  # the system's
    hooks: WebhookReader
    secrets: Secrets
    credentials: str  # the ciphertext the secrets came from, as the module held it when read
    fresh: bool  # read from the database for this request


_known: dict[str, Receiver] = {}
KNOWN_MAX = 10_000  # addresses a process remembers; more, and it starts over


def _receiver(token: str, fresh: bool) -> Receiver | None:
    if not fresh and (known := _known.get(token)) is not None:
        return known
    _known.pop(token, None)
    row = _once_more_if_the_connection_died(lambda: _lookup(token))
    if row is None:
        return None
    module_id, integration_id, kind, credentials = row
    system = SYSTEMS.get(kind)
    if system is None or system.webhooks is None:
        return None
    oauth = system.oauth
    installed = (oauth.marks, oauth.webhook_secret()) if oauth and oauth.webhook_secret else ("", "")
    try:
        secrets = _webhook_secrets(credentials, *installed)
    except DecryptionError:
        logger.error("webhook secret of module %s cannot be decrypted", module_id)
        secrets = Secrets("")
    receiver = Receiver(module_id, integration_id, system.label, system.webhooks, secrets, credentials, True)
    if len(_known) >= KNOWN_MAX:
        _known.clear()
    _known[token] = replace(receiver, fresh=False)
    return receiver


def _once_more_if_the_connection_died(statement: Callable[[], Any]) -> Any:
    """Run the request's first statement. Django checks a reused connection with a round trip (SELECT 1) before a
    request's first query: on this path as much as the work itself. Here the statement is the check: a connection
    found dead (the database restarted) is replaced, and the statement run again (a delivery stored before the
    connection died is then found by its event id, and stored once)."""
    connection.health_check_done = True  # type: ignore[attr-defined]  # Django's own flag (CONN_HEALTH_CHECKS)
    try:
        return statement()
    except (InterfaceError, OperationalError):
        connection.close()
        return statement()


def _lookup(token: str) -> tuple | None:
    return _execute(
        f"SELECT id, integration_id, kind, credentials FROM {Module._meta.db_table} "  # noqa: S608 (our table)
        "WHERE webhook_token = %s",
        [token],
    )


def _execute(sql: str, params: list[Any]) -> tuple | None:
    """One statement and its first row. On PostgreSQL its parameters are sent apart from its text (Django's cursor
    writes them into the text, in Python), never as a named prepared statement: PgBouncer in transaction mode would
    hand the next statement to another server connection, where it does not exist."""
    if connection.vendor != "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchone()
    connection.ensure_connection()
    with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(sql, params, prepare=False)
        return cursor.fetchone()


@lru_cache(maxsize=4096)
def _webhook_secrets(credentials: str, installed_mark: str = "", app_secret: str = "") -> Secrets:
    """Keyed by the ciphertext itself: new credentials are a new key, so nothing stale is ever used. Credentials
    that hold `installed_mark` (the credential only installing IEX's app gives) make the module's webhooks verified
    with `app_secret` too; a merchant's own app signs with its own secret, entered as the webhook secret."""
    if not credentials:
        return Secrets("")
    values = json.loads(credentials_crypto.decrypt(credentials))
    until = values.get("previous_webhook_secret_until")
    return Secrets(
        values.get("webhook_secret", ""),
        values.get("previous_webhook_secret", ""),
        datetime.fromisoformat(until) if until else None,
        app_secret if installed_mark and values.get(installed_mark) else "",
    )


def _store(
    receiver: Receiver,
    token: str,
    topic: str,
    event_id: str,
    headers: dict[str, str],
    body: bytes,
    status: str,
    note: str,
    processed_at: Any,
) -> tuple[int | None, bool] | None:
    """Insert the delivery and, if it waits to be processed, flag its module's drain as queued (committed on
    return), if the module still has this address and the credentials the receiver was read with. Returns None
    when it has not (nothing stored), else the delivery's id (None when this module's event id was stored before)
    and whether the flag is new: then a drain is to be published; else one is queued already and will read this
    delivery."""
    now = timezone.now()
    module_id = receiver.module_id
    current = (
        f"SELECT id FROM {Module._meta.db_table} "  # noqa: S608 (our table)
        "WHERE id = %s AND webhook_token = %s AND credentials = %s"
    )
    current_params = [module_id, token, receiver.credentials]
    columns = "integration_id, module_id, topic, event_id, headers, body, status, note, received_at, processed_at"
    values = [receiver.integration_id, module_id, topic, event_id, json.dumps(headers), body, status, note, now]
    values.append(processed_at)
    placeholders = ", ".join(["%s"] * len(values))
    on_conflict = "ON CONFLICT (module_id, event_id) WHERE NOT (event_id = '') DO NOTHING RETURNING id"
    table = Delivery._meta.db_table
    waits = status == Delivery.Status.RECEIVED
    flag = f"INSERT INTO {QueuedDrain._meta.db_table} (module_id, queued_at)"
    if connection.vendor == "postgresql":  # one statement, one round trip
        row = _once_more_if_the_connection_died(
            lambda: _execute(
                f"WITH current AS ({current}), "  # noqa: S608 (our tables)
                f"stored AS (INSERT INTO {table} ({columns}) SELECT {placeholders} FROM current {on_conflict}), "
                f"flagged AS ({flag} SELECT %s, %s WHERE %s AND EXISTS (SELECT 1 FROM stored) "
                "ON CONFLICT (module_id) DO NOTHING RETURNING module_id) "
                "SELECT EXISTS (SELECT 1 FROM current), (SELECT id FROM stored), EXISTS (SELECT 1 FROM flagged)",
                [*current_params, *values, module_id, now, waits],
            )
        )
        is_current, delivery_id, flagged = row or (False, None, False)
        return (delivery_id, flagged) if is_current else None
    # SQLite (the embedded defaults) has no INSERT inside WITH: up to three statements.
    row = _once_more_if_the_connection_died(
        lambda: _execute(
            f"INSERT INTO {table} ({columns}) SELECT {placeholders} WHERE EXISTS ({current}) {on_conflict}",
            [*values, *current_params],
        )
    )
    if row is None:
        return (None, False) if _execute(current, current_params) else None
    if not waits:
        return row[0], False
    flagged = _execute(
        f"{flag} VALUES (%s, %s) ON CONFLICT (module_id) DO NOTHING RETURNING module_id", [module_id, now]
    )
    return row[0], flagged is not None


DRAIN_BATCH = 100
DRAIN_INBOX = "connections.tasks.drain_inbox"


def enqueue(module_id: int) -> None:
    """Publish the drain whose flag intake just set, after commit."""
    transaction.on_commit(lambda: _publish_drain(module_id))


def queue_drain(module_id: int, *, unless_queued_since: datetime | None = None) -> None:
    """Queue a drain of the module's inbox unless one is queued and not yet started, or (for the sweeper) unless
    one was queued after `unless_queued_since`. Runs in autocommit, after the delivery's commit."""
    table = QueuedDrain._meta.db_table
    params: list[Any] = [module_id, timezone.now()]
    if unless_queued_since is None:
        # Intake's case: one statement that writes nothing (and waits for no one) when a drain is queued already.
        on_conflict = "DO NOTHING"
    else:
        on_conflict = f"DO UPDATE SET queued_at = excluded.queued_at WHERE {table}.queued_at < %s"
        params.append(unless_queued_since)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (module_id, queued_at) VALUES (%s, %s) "  # noqa: S608 (our table)
            f"ON CONFLICT (module_id) {on_conflict} RETURNING module_id",
            params,
        )
        fresh = cursor.fetchone() is not None
    if fresh:
        _publish_drain(module_id)


def _publish_drain(module_id: int) -> None:
    # The shop gets its 200 whether or not the broker is up: the delivery is stored, the sweeper has it.
    if not queueing.publish(DRAIN_INBOX, module_id):
        QueuedDrain.objects.filter(module_id=module_id).delete()


def drain(module_id: int) -> int:
    """Process the module's waiting deliveries, oldest first, a batch at a time. Safe to run twice at once (each
    delivery is claimed). Returns how many were waiting in this batch."""
    # Take the flag down before reading: a delivery committed from here on queues a drain of its own, and one
    # committed before is in the batch below.
    QueuedDrain.objects.filter(module_id=module_id).delete()
    # With each delivery's integration number (all the module's one), read in the same query, for the log lines.
    waiting = list(
        Delivery.objects.filter(module_id=module_id, status=Delivery.Status.RECEIVED)
        .order_by("pk")
        .values_list("pk", "integration__number")[:DRAIN_BATCH]
    )
    with log_context():
        for delivery_id, number in waiting:
            bind_log_context(integration=number)
            try:
                process(delivery_id)
            except (InterfaceError, OperationalError):
                raise  # the database is away: the delivery waits, the sweeper queues its drain again
            except Exception as exc:
                # One delivery IEX cannot handle must not hold up the shop's others: keep it, say why, go on.
                logger.exception("delivery %s could not be processed", delivery_id)
                Delivery.objects.filter(pk=delivery_id, status=Delivery.Status.RECEIVED).update(
                    status=Delivery.Status.REJECTED,
                    note=f"IEX could not process this delivery ({exc!r})"[:1000],
                    processed_at=timezone.now(),
                )
    if len(waiting) == DRAIN_BATCH:
        queue_drain(module_id)
    return len(waiting)


def process(delivery_id: int) -> None:
    """Turn a stored delivery into a transfer on the connection it feeds. Safe to run twice, and at once: the claim
    and the work are one transaction, so a crash halfway leaves the delivery waiting for the next drain."""
    with log_context(), transaction.atomic():
        claimed = Delivery.objects.filter(pk=delivery_id, status=Delivery.Status.RECEIVED).update(
            status=Delivery.Status.PROCESSED, processed_at=timezone.now()
        )
        if claimed:
            delivery = Delivery.objects.select_related("module__integration").get(pk=delivery_id)
            bind_log_context(integration=delivery.module.integration.number)  # loaded with it: no query
            delivery.done(*_handle(delivery))


def _handle(delivery: Delivery) -> tuple[str, str]:
    """What becomes of a delivery: (its status, a note saying why)."""
    module = delivery.module
    hooks = module.system.webhooks
    assert hooks is not None
    if delivery.topic == "app/uninstalled":
        uninstalled(module)
        return Delivery.Status.PROCESSED, f"{module.system.label} was deactivated and the owners told"
    data = json.loads(bytes(delivery.body))
    try:
        records = [
            (entity, record, hooks.record_ref(entity, record))
            for entity, record in hooks.records(delivery.topic, data)
        ]
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        # Valid JSON, but not the record the topic promised: keep it for troubleshooting, say what is missing.
        entity = hooks.TOPICS.get(delivery.topic, "")
        return Delivery.Status.REJECTED, f"Not a {module.system.label} {entity} record IEX can read ({exc!r})"
    connections = {
        c.flow: c
        for c in module.outgoing.filter(flow__in={entity for entity, _, _ in records}).select_related(
            "integration", "source", "target"
        )
    }
    outcomes = [_receive(module, connections.get(entity), entity, record, ref) for entity, record, ref in records]
    status = (
        Delivery.Status.PROCESSED
        if any(s == Delivery.Status.PROCESSED for s, _ in outcomes)
        else Delivery.Status.IGNORED
    )
    return status, "; ".join(note for _, note in outcomes)


def _receive(
    module: Module, connection: Connection | None, entity: str, record: dict[str, Any], ref: SourceRef
) -> tuple[str, str]:
    """One record of a delivery received on the connection of its flow: (the delivery's status for it, a note)."""
    if connection is None:
        return Delivery.Status.IGNORED, f"No {entity} connection from {module.system.label}"
    if connection.trigger != "webhook":
        return Delivery.Status.IGNORED, f"{connection.label} is schedule-driven: its job fetches changes"
    if pipeline.receive(connection, *ref, record) is None:
        return Delivery.Status.PROCESSED, f"{ref[1]}: this version was received before"
    return Delivery.Status.PROCESSED, f"{ref[1]}: transfer received"


def uninstalled(module: Module) -> None:
    """The shop removed our app: its token no longer works. Deactivate the module and tell the owners."""
    module.active = False
    module.save(update_fields=["active"])
    integration = module.integration
    transaction.on_commit(
        lambda: emails.send(
            "module_uninstalled",
            integration.owner_emails(),
            {"integration": integration, "module": module, "label": module.system.label},
        )
    )


def sweep(older_than_seconds: int | None = None, dry_run: bool = False) -> int:
    """Queue a drain for every module with deliveries still waiting after SWEEP_AFTER_SECONDS, unless one was queued
    since: a crash between commit and publish, or a broker outage, only delays them. Returns how many wait."""
    if older_than_seconds is None:
        older_than_seconds = settings.SWEEP_AFTER_SECONDS
    cutoff = timezone.now() - timedelta(seconds=older_than_seconds)
    waiting = dict(
        Delivery.objects.filter(status=Delivery.Status.RECEIVED, received_at__lt=cutoff)
        .values_list("module_id")
        .annotate(count=Count("pk"))
        .order_by()
    )
    if not dry_run:
        for module_id in waiting:
            queue_drain(module_id, unless_queued_since=cutoff)
    return sum(waiting.values())


DELIVERY_RETENTION_DAYS = 30  # well past the shops' redeliveries (Shopify's last try comes within 4 hours)


def purge_deliveries(now: datetime, *, dry_run: bool = False) -> int:
    """Delete handled deliveries older than DELIVERY_RETENTION_DAYS, one module at a time, in the retention purge's
    paced batches; what still waits is kept. Returns how many were (or would be) deleted."""
    deleted = 0
    for module_id in Module.objects.order_by("pk").values_list("pk", flat=True):
        old = Delivery.objects.filter(
            module_id=module_id, received_at__lt=now - timedelta(days=DELIVERY_RETENTION_DAYS)
        ).exclude(status=Delivery.Status.RECEIVED)
        deleted += old.count() if dry_run else delete_in_batches(old, by="received_at")
    return deleted
