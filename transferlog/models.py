"""Transfers: one record moved through one connection, with every state it went through and that state's data."""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from functools import cache
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, models, transaction
from django.utils import timezone

from iex.lib import queueing, sql
from iex.lib.batches import PURGE_SHARE, delete_in_batches
from iex.models import Integration


class Status(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    RETRYING = "retrying", "Retrying"
    CREATED = "created", "Created"
    UPDATED = "updated", "Updated"
    SKIPPED = "skipped", "Skipped"
    HELD = "held", "Held"
    WARNING = "warning", "Warning"
    FAILED = "failed", "Failed"


def _repeated(exc: IntegrityError) -> bool:
    """Whether the error is the unique index of a source record's version (and not, say, a CHECK constraint)."""
    said = str(exc)
    return "transfer_once_per_source_version" in said or said.startswith("UNIQUE constraint failed: transferlog_")


class HeldFor:
    """Why a held transfer waits, and so what releases it."""

    ORDERS = "orders"  # no allowance left: a pack paid, a card saved, a plan changed, a new month
    SETTINGS = "settings"  # the receiving system's settings cannot book it as the shop charged it: saving them

    @staticmethod
    def access(module_id: int) -> str:
        """A system refused IEX (its credentials, or too many requests): it lets IEX in again."""
        return f"access:{module_id}"

    @staticmethod
    def record(connection_id: int, source_ref: str) -> str:
        """Another record must reach the receiving system first (the invoice a refund credits): its create."""
        return f"record:{connection_id}:{source_ref}"[:120]


# What a transfer can be about (a flow's entity), for the Log's filter and Home's counts.
ENTITIES = {"orders": "Orders", "credit_notes": "Credit notes", "products": "Products", "stock": "Stock"}
# The pipeline's task, a floor above: published by its name (iex/lib/queueing.py).
PROCESS_TRANSFER = "connections.tasks.process_transfer"
# A transfer still waiting its turn is queued again by the sweeper this rarely: times SWEEP_AFTER_SECONDS.
RESWEEP_AFTER = 10

OPEN = [Status.PENDING, Status.RETRYING]
HELD_EXISTS = (
    "SELECT 1 FROM transferlog_transfer WHERE integration_id = %s AND status = %s AND held_for = %s LIMIT 1"
)
UNFINISHED = [*OPEN, Status.RUNNING, Status.HELD]
# The Log's filter for what is received and not done yet (Home's "Not done yet" counts the same).
WAITING = "waiting"
# A state noting that the transfer waits (for a system, a pack being paid, another transfer): one per kind of wait.
WAITED = "waiting"
# The outcomes Home, the reports and /metrics count, one column each in DailyCount.
COUNTED = [Status.CREATED, Status.UPDATED, Status.SKIPPED, Status.WARNING, Status.HELD, Status.FAILED]
# The outcomes someone should look at: Home's errors (chart and latest list) and the error digests. A warning was
# sent but needs checking (e-conomic's totals differ: the invoice stays a draft for the bookkeeper).
PROBLEMS = [Status.FAILED, Status.WARNING]


def search_text(*terms: str) -> str:
    """Words as the Log's search compares them (search_terms, and what is typed in the search box): caseless, single
    spaced, so "Jane  HANSEN" finds "Jane Hansen"."""
    return " ".join(" ".join(terms).casefold().split())


class Transfer(models.Model):
    code = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    integration = models.ForeignKey(Integration, models.CASCADE, related_name="transfers")
    # Kept when a module is removed: the log outlives the connection, and says what it was.
    connection = models.ForeignKey(
        "connections.Connection", models.SET_NULL, null=True, blank=True, related_name="transfers"
    )
    connection_label = models.CharField(max_length=120)
    entity = models.CharField(max_length=20)
    source_ref = models.CharField(max_length=100)
    reference = models.CharField(max_length=100, blank=True)
    source_updated_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    reason = models.TextField(blank=True)
    held_for = models.CharField(max_length=120, blank=True, db_default="")  # a HeldFor, while held
    # The record as received, in the source system's format: what every attempt starts from. (The "received"
    # state refers to it rather than holding a second copy.)
    source_data = models.JSONField(null=True, blank=True)
    # What the receiving system confirmed: "created" or "updated" (usage counts confirmed creates).
    action = models.CharField(max_length=10, blank=True)
    target_ref = models.CharField(max_length=100, blank=True)
    # What the Log's search finds the record by besides its numbers, as `search_text` writes them: an order's
    # customer by name (the person's, the company's) and by email. Filled once, at intake (pipeline.receive).
    search_terms = models.TextField(blank=True, db_default="")
    search_email = models.CharField(max_length=254, blank=True, db_default="")
    # Where this transfer is counted in DailyCount (its outcome and the day it ended), so a retry that ends
    # differently moves it rather than counting it twice.
    counted_status = models.CharField(max_length=10, blank=True, editable=False, db_default="")
    counted_on = models.DateField(null=True, blank=True, editable=False)
    # The month of the allowance unit this transfer holds for the create it is making (billing.metering).
    reserved_month = models.DateField(null=True, blank=True, editable=False)
    attempts = models.PositiveIntegerField(default=0)
    # Attempts made before the last retry by hand: the automatic retry budget counts from there.
    attempts_before_retry = models.PositiveIntegerField(default=0)
    # The Celery task running it: the same task, redelivered after its worker died, may take over the claim.
    task_id = models.CharField(max_length=64, blank=True)
    created = models.DateTimeField(default=timezone.now, editable=False)
    updated = models.DateTimeField(default=timezone.now)
    # When a pending or retrying transfer should run: the sweeper re-enqueues those long overdue, so a lost
    # message (broker down at enqueue time, an ETA lost with a broker) only delays a transfer.
    due_at = models.DateTimeField(default=timezone.now)
    # When the sweeper last queued it again: a transfer waiting its turn in a backlog is not queued at every sweep.
    swept_at = models.DateTimeField(null=True, blank=True, editable=False)
    # A failure or warning someone has dealt with (the draft checked and booked by hand): who, and when. It leaves
    # Home's list of what to look at; the Log keeps it as it was.
    handled_by = models.CharField(max_length=254, blank=True, db_default="")
    handled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            # The same version of a source record arrives once per connection, whichever path brought it
            # (webhook, its retry, the schedule's overlap, reconciliation).
            models.UniqueConstraint(
                fields=["connection", "source_ref", "source_updated_at"],
                condition=models.Q(source_updated_at__isnull=False),
                name="transfer_once_per_source_version",
            ),
        ]
        indexes = [
            models.Index(fields=["integration", "-created", "-id"], name="transfer_log_order"),
            models.Index(fields=["connection", "source_ref"], name="transfer_source"),
            models.Index(
                fields=["due_at"], condition=models.Q(status__in=["pending", "retrying"]), name="transfer_overdue"
            ),
            # Retention deletes the oldest rows first, in batches read off this index.
            models.Index(fields=["created"], name="transfer_created"),
            # The Log's search: an order number exactly or by prefix (LIKE 'x%'), or the shop's own id.
            models.Index(
                fields=["integration", "reference"],
                opclasses=["int8_ops", "varchar_pattern_ops"],
                name="transfer_reference",
            ),
            models.Index(fields=["integration", "source_ref"], name="transfer_source_id"),
            # ... and the document made of it in the receiving system (an invoice number), exactly.
            models.Index(
                fields=["integration", "target_ref"], condition=~models.Q(target_ref=""), name="transfer_target_id"
            ),
            # ... the customer's email, or the start of it (a trigram index would read the posting lists of the
            # shop's own domain, on every order); the customer's names, anywhere in search_terms, are read off a
            # trigram index on PostgreSQL: migration 0015_transfer_search makes it, as SQLite has no trigrams.
            models.Index(
                fields=["integration", "search_email"],
                opclasses=["int8_ops", "varchar_pattern_ops"],
                name="transfer_search_email",
            ),
            # Home's latest failures and warnings, and the error digests: they are few among millions of transfers.
            # (A query for failed ones alone uses these too: PostgreSQL sees status = 'failed' implies the IN.)
            models.Index(
                fields=["integration", "-updated"],
                condition=models.Q(status__in=["failed", "warning"]),
                name="transfer_problems_latest",
            ),
            models.Index(
                fields=["updated"],
                condition=models.Q(status__in=["failed", "warning"]),
                name="transfer_problems_since",
            ),
            # The held banner's count: held transfers are few, and counted on every Home and Subscription page.
            models.Index(fields=["integration"], condition=models.Q(status="held"), name="transfer_held"),
            # The sweeper's transfers whose worker died: running is a handful at any time.
            models.Index(fields=["updated"], condition=models.Q(status="running"), name="transfer_running"),
            # What is not done yet: Home counts it on every visit, and the Log's "Not done yet" pages through it.
            # Few at any time, even in an outage's backlog, among millions done.
            models.Index(
                fields=["integration", "-created", "-id"],
                condition=models.Q(status__in=["pending", "running", "retrying", "held"]),
                name="transfer_unfinished",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.connection_label} {self.reference or self.source_ref}: {self.status}"

    def save_received(self, note: str) -> bool:
        """Insert this new transfer with its first state, "received"; False when this version of its source record
        was received before (on this connection, by whichever path: webhook, its retry, the schedule's overlap)."""
        try:
            with transaction.atomic():
                self.save(force_insert=True)
                self.record("received", None, note)
                self.save_states()
        except IntegrityError as exc:
            if _repeated(exc):
                return False
            raise  # anything else is no duplicate: nothing may be dropped as "received before"
        return True

    def record(self, kind: str, data: Any = None, note: str = "") -> None:
        """Note a state; it is written with the transfer's outcome (`finish`), in one INSERT for all of them."""
        state = TransferState(transfer=self, kind=kind, data=data, note=note, at=timezone.now())
        self.__dict__.setdefault("_unsaved_states", []).append(state)

    def record_wait(self, reason: str) -> None:
        """Note that the transfer waits (for a system, a pack being paid, another transfer), written with its outcome.
        A wait is tried again every few seconds: each kind of wait is one state that counts its times."""
        self.__dict__["_unsaved_wait"] = reason

    def save_states(self) -> None:
        states = self.__dict__.pop("_unsaved_states", [])
        sql.insert(TransferState, states, "transfer", "kind", "at", "note", "data")
        if (reason := self.__dict__.pop("_unsaved_wait", None)) is not None:
            # Only the worker holding the transfer's claim writes its states: the UPDATE and the INSERT after it
            # cannot race another writer of the same wait.
            now = timezone.now()
            same = TransferState.objects.filter(transfer=self, kind=WAITED, note=reason)
            if not same.update(times=models.F("times") + 1, last_at=now):
                TransferState.objects.create(transfer=self, kind=WAITED, note=reason, at=now, last_at=now)

    @classmethod
    def claim(cls, pk: int, task_id: str = "") -> Transfer | None:
        """Mark as running if pending or retrying, and load it with its connection; None if another worker has it
        or it is done. Two workers may get the same task: the conditional UPDATE lets one of them win. A task whose
        worker was killed mid-transfer is redelivered with the same id and takes its own claim over. The last
        attempt's reason goes: a running transfer is not waiting or failing (its states keep what it was)."""
        transfer = sql.update_returning(
            cls,
            "id = %s AND (status IN (%s, %s) OR (status = %s AND task_id = %s AND task_id <> ''))",
            [pk, *OPEN, Status.RUNNING, task_id],
            status=Status.RUNNING,
            reason="",
            attempts=sql.Add(1),
            task_id=task_id,
            updated=timezone.now(),
        )
        if transfer is None:
            return None
        # What the pipeline needs, in one query: the integration (once), the connection and both its modules.
        statement, kinds = _pipeline_context()
        with connection.cursor() as cursor:
            cursor.execute(statement, [transfer.connection_id, transfer.integration_id])
            integration, on, source, target = sql.instances(cursor.fetchone(), *kinds)
        transfer.integration = integration
        if on is not None:
            on.integration, on.source, on.target = integration, source, target
            transfer.connection = on
        return transfer

    def take_reservation(self, month: date) -> bool:
        """Mark that this transfer holds a unit of `month`'s allowance for its create (billing.usage); False when it
        holds one already. Durable before the send: a transfer whose worker died takes its unit over."""
        if not sql.update(Transfer, "id = %s AND reserved_month IS NULL", [self.pk], reserved_month=month):
            return False
        self.reserved_month = month
        return True

    def give_up_reservation(self, month: date) -> bool:
        """The transfer no longer holds its unit of `month`; False when it was given up already (settled twice)."""
        self.reserved_month = None
        return bool(sql.update(Transfer, "id = %s AND reserved_month = %s", [self.pk, month], reserved_month=None))

    @property
    def run_attempts(self) -> int:
        """Attempts since the transfer was last retried by hand."""
        return self.attempts - self.attempts_before_retry

    @property
    def retryable(self) -> bool:
        return self.status in (Status.FAILED, Status.HELD)

    def enqueue(self, countdown: float = 0) -> None:
        """Queue the pipeline for this transfer once the current transaction commits, in its integration's lane."""
        queueing.publish_on_commit(
            PROCESS_TRANSFER, self.pk, countdown=countdown, integration_id=self.integration_id
        )

    def retry(self, by: str) -> bool:
        """Queue a failed or held transfer again, with today's settings, as a new attempt on this transfer."""
        claimed = Transfer.objects.filter(pk=self.pk, status__in=[Status.FAILED, Status.HELD]).update(
            status=Status.PENDING,
            reason="",  # pending again: the failure or the hold is history (its state keeps it)
            handled_by="",  # what the new attempt ends in is to be looked at anew
            handled_at=None,
            attempts_before_retry=models.F("attempts"),
            due_at=timezone.now(),
            updated=timezone.now(),
        )
        if claimed:
            TransferState.objects.create(transfer=self, kind="retry", note=f"Retry requested by {by}")
            self.enqueue()
        return bool(claimed)

    @property
    def handleable(self) -> bool:
        return self.status in PROBLEMS

    def mark_handled(self, by: str) -> bool:
        """Note that `by` has dealt with this failure or warning, now; False when it is neither any more (retried
        meanwhile). A second mark keeps the first one's who and when."""
        now = timezone.now()
        marked = Transfer.objects.filter(pk=self.pk, status__in=PROBLEMS, handled_at=None).update(
            handled_by=by, handled_at=now
        )
        if marked:
            self.handled_by, self.handled_at = by, now
            return True
        self.refresh_from_db(fields=["status", "handled_by", "handled_at"])
        return self.handleable and self.handled_at is not None

    def unmark_handled(self) -> None:
        """Back on Home's list: marked by mistake, or not dealt with after all."""
        Transfer.objects.filter(pk=self.pk).update(handled_by="", handled_at=None)
        self.handled_by, self.handled_at = "", None

    @classmethod
    def release_held(cls, integration: Integration, because: str, held_for: str = HeldFor.ORDERS) -> int:
        """Queue the integration's transfers held for `held_for` again, oldest first (whatever held them is fixed: a
        pack paid, a card saved, the settings changed, the invoice made); each one that creates reserves its allowance
        again as it runs."""
        if not integration.active:
            return 0  # an inactive integration would only skip them; activating it releases them
        released = 0
        held = cls.objects.filter(integration=integration, status=Status.HELD, held_for=held_for)
        held = held.order_by("created", "id")
        for transfer in held.only("pk", "integration_id")[:10_000]:
            released += transfer.retry(because)
        return released

    @classmethod
    def any_held(cls, integration_id: int, held_for: str) -> bool:
        """Whether the integration has a transfer held for `held_for`: asked after every create of a record others
        may wait for, so one statement off the held index, written once."""
        with connection.cursor() as cursor:
            cursor.execute(HELD_EXISTS, [integration_id, Status.HELD, held_for])
            return cursor.fetchone() is not None

    @classmethod
    def sweep(cls, overdue_seconds: int | None = None, dry_run: bool = False) -> int:
        """Queue again pending and retrying transfers long past due (SWEEP_AFTER_SECONDS), and run again those still
        running after TRANSFER_LEASE_SECONDS: their worker's host died, and Redis would only redeliver the task
        after its visibility timeout. Returns how many.

        Most of them may only be waiting their turn in a backlog: each is queued again only every RESWEEP_AFTER
        sweeps' worth of time, and each integration's go into lanes by their number, as if queued this minute, so a
        sweep after a lost Redis keeps the shares fair."""
        now = timezone.now()
        overdue = timedelta(seconds=settings.SWEEP_AFTER_SECONDS if overdue_seconds is None else overdue_seconds)
        lost = cls.objects.filter(
            status=Status.RUNNING, updated__lt=now - timedelta(seconds=settings.TRANSFER_LEASE_SECONDS)
        )
        waiting = cls.objects.filter(status__in=OPEN, due_at__lt=now - overdue).filter(
            models.Q(swept_at=None) | models.Q(swept_at__lt=now - RESWEEP_AFTER * overdue)
        )
        found = list(lost.values_list("pk", "integration_id")[:10_000])
        lost_ids = [pk for pk, _ in found]
        found += waiting.order_by("due_at").values_list("pk", "integration_id")[:10_000]
        if dry_run:
            return len(found)
        if lost_ids:
            # Pending again, so a new task can claim it (the lost task's id no longer takes its claim over).
            lost.filter(pk__in=lost_ids).update(status=Status.PENDING, task_id="", updated=now)
            TransferState.objects.bulk_create(
                TransferState(
                    transfer_id=pk, kind="retrying", at=now, note="Its worker stopped answering; run again"
                )
                for pk in lost_ids
            )
        cls.objects.filter(pk__in=[pk for pk, _ in found]).update(swept_at=now)
        counts: dict[int, int] = defaultdict(int)
        for transfer_id, integration_id in found:
            counts[integration_id] += 1
            queueing.publish(PROCESS_TRANSFER, transfer_id, priority=queueing.lane_of(counts[integration_id]))
        return len(found)

    def finish(
        self, status: str, reason: str = "", *, action: str = "", target_ref: str = "", **changes: Any
    ) -> None:
        """Record the outcome of this attempt, its states and its day's count; `changes`: more fields to save with
        it (a retry's due time)."""
        self.status = status
        self.reason = reason
        self.action = action or self.action
        self.target_ref = target_ref or self.target_ref
        self.updated = timezone.now()
        for name, value in changes.items():
            setattr(self, name, value)
        counted = (status, self.updated.astimezone(UTC).date()) if status in COUNTED else ("", None)
        # The counters move with the transfer, or not at all. (No savepoint inside the pipeline's transaction.)
        with transaction.atomic(savepoint=False):
            if counted != (self.counted_status, self.counted_on):
                if self.counted_status and self.counted_on:
                    DailyCount.add(self, self.counted_on, self.counted_status, -1)
                if counted[1] is not None:
                    DailyCount.add(self, counted[1], counted[0], 1)
                self.counted_status, self.counted_on = counted
            self.save_states()
            fields = [
                "status",
                "reason",
                "action",
                "target_ref",
                "updated",
                "counted_status",
                "counted_on",
                *changes,
            ]
            sql.update(Transfer, "id = %s", [self.pk], **{name: getattr(self, name) for name in fields})


@cache
def _pipeline_context() -> tuple[str, tuple[type[models.Model], ...]]:
    """The statement that reads a claimed transfer's integration, connection and the connection's two modules (the
    connection's floor is above this one: its models are found through the foreign keys), written once: the ORM would
    compile it anew for every transfer."""
    on = Transfer._meta.get_field("connection").related_model
    module = on._meta.get_field("source").related_model
    assert isinstance(on, type) and isinstance(module, type)
    kinds = (Integration, on, module, module)
    table = connection.ops.quote_name
    source, target = (on._meta.get_field(name) for name in ("source", "target"))
    assert isinstance(source, models.ForeignKey) and isinstance(target, models.ForeignKey)
    statement = (
        f"SELECT {sql.columns(Integration, 'i')}, {sql.columns(on, 'c')}, {sql.columns(module, 's')}, "  # noqa: S608 (our tables)
        f"{sql.columns(module, 't')} FROM {table(Integration._meta.db_table)} i "
        f"LEFT JOIN {table(on._meta.db_table)} c ON c.id = %s "
        f"LEFT JOIN {table(module._meta.db_table)} s ON s.id = c.{table(source.column)} "
        f"LEFT JOIN {table(module._meta.db_table)} t ON t.id = c.{table(target.column)} WHERE i.id = %s"
    )
    return statement, kinds


def retention_groups() -> list[tuple[int, models.Q]]:
    """(days, the integrations kept that long, as a filter on Integration): one group per retention of the plans in
    use, and the default for integrations without a subscription (as Integration.retention_days says)."""
    in_use = Integration.objects.exclude(subscription=None).values_list("subscription__plan__retention_days")
    groups = [
        (days, models.Q(subscription__plan__retention_days=days))
        for days in sorted({days for (days,) in in_use.order_by().distinct()})
    ]
    groups.append((settings.LOG_RETENTION_DAYS, models.Q(subscription__isnull=True)))
    return groups


def purge(
    now: datetime, *, batch: int = 1000, pause: float = 0.05, share: float = PURGE_SHARE, dry_run: bool = False
) -> int:
    """Delete transfers past their plan's retention, oldest first, in bounded batches (short transactions, no long
    locks), resting between batches so webhook intake and the pipeline keep the database's attention: a daily purge
    may take minutes, an intake request may not. Returns how many were (or, with dry_run, would be) deleted."""
    deleted = 0
    for days, group in retention_groups():
        expired = (models.Q(created__lt=now - timedelta(days=days)) & ~models.Q(status=Status.FAILED)) | models.Q(
            created__lt=now - timedelta(days=2 * days), status=Status.FAILED
        )
        for integration_id in Integration.objects.filter(group).order_by("pk").values_list("pk", flat=True):
            # One integration at a time: its batches walk the Log's index (integration, created) from the oldest
            # and stop at `batch` rows, whatever the number of expired ones.
            candidates = (
                Transfer.objects.filter(integration_id=integration_id, created__lt=now - timedelta(days=days))
                .filter(expired)
                .exclude(status__in=UNFINISHED)  # held, never dropped; what is still running finishes first
            )
            if dry_run:
                deleted += candidates.count()
                continue
            deleted += delete_in_batches(
                candidates,
                by="created",
                cascade=((TransferState._meta.db_table, "transfer_id"),),
                batch=batch,
                pause=pause,
                share=share,
            )
    return deleted


class DailyCount(models.Model):
    """How many transfers ended each day (UTC), per connection and outcome.

    Kept up to date when a transfer finishes (`Transfer.finish`), so Home, the status reports and /metrics cost
    the same with ten transfers or ten million; they outlive retention, so "all time" stays all time.
    """

    integration = models.ForeignKey(Integration, models.CASCADE, related_name="daily_counts")
    day = models.DateField()
    connection_label = models.CharField(max_length=120)
    entity = models.CharField(max_length=20)
    created = models.IntegerField(default=0)
    updated = models.IntegerField(default=0)
    skipped = models.IntegerField(default=0)
    warning = models.IntegerField(default=0)
    held = models.IntegerField(default=0)
    failed = models.IntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["integration", "day", "connection_label", "entity"], name="daily_count_once"
            )
        ]

    def __str__(self) -> str:
        return f"{self.integration_id} {self.day} {self.connection_label}"

    @property
    def total(self) -> int:
        return sum(getattr(self, status) for status in COUNTED)

    @classmethod
    def add(cls, transfer: Transfer, day: date, status: str, delta: int) -> None:
        """One statement, safe under concurrency: INSERT ... ON CONFLICT DO UPDATE adds to the day's row."""
        assert status in COUNTED
        table = connection.ops.quote_name(cls._meta.db_table)
        columns = ", ".join(connection.ops.quote_name(c) for c in COUNTED)
        column = connection.ops.quote_name(status)
        values = [delta if c == status else 0 for c in COUNTED]
        with connection.cursor() as cursor:
            cursor.execute(
                # Table and column names come from this model, values are parameters.
                f"INSERT INTO {table} (integration_id, day, connection_label, entity, {columns}) "  # noqa: S608
                f"VALUES (%s, %s, %s, %s{', %s' * len(COUNTED)}) "
                f"ON CONFLICT (integration_id, day, connection_label, entity) "
                f"DO UPDATE SET {column} = {table}.{column} + %s",
                [transfer.integration_id, day, transfer.connection_label, transfer.entity, *values, delta],
            )


class TransferState(models.Model):
    """One step of a transfer with its data: as received, as transformed, as sent, the answer, the outcome."""

    transfer = models.ForeignKey(Transfer, models.CASCADE, related_name="states")
    kind = models.CharField(max_length=20)
    at = models.DateTimeField(default=timezone.now)
    note = models.TextField(blank=True)
    data = models.JSONField(null=True, blank=True)
    # A wait (WAITED) noted again is counted on its state, not added: how many times, and the last (`at` the first).
    times = models.PositiveIntegerField(default=1, db_default=1)
    last_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.kind} at {self.at:%Y-%m-%d %H:%M:%S}"
