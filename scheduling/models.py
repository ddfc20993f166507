"""Jobs: the clock of each connection. A schedule connection fetches changes every interval; a webhook
connection reconciles hourly, to catch what the shop's webhooks lost."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from django.db import models, transaction
from django.db.models import Q
from django.utils import timezone

from connections.models import Connection, Trigger
from iex.models import Integration
from transferlog.models import Transfer

INTERVALS = [
    (60, "1 minute"),
    (300, "5 minutes"),
    (600, "10 minutes"),
    (900, "15 minutes"),
    (1800, "30 minutes"),
    (3600, "1 hour"),
    (7200, "2 hours"),
    (21600, "6 hours"),
    (43200, "12 hours"),
    (86400, "24 hours"),
]
DEFAULT_INTERVAL = 300
RECONCILE_INTERVAL = 3600  # webhook connections: WooCommerce never redelivers, Shopify gives up after 4 hours
# The cursor moves back this much on every run: a record saved while the last fetch ran is fetched again,
# and the pipeline's (connection, source ref, updated-at) uniqueness drops the duplicates.
OVERLAP = timedelta(minutes=2)
# A run that has not finished after this long is taken as dead (its worker was killed): it may be claimed again.
STALE_RUN = timedelta(minutes=30)


class RunOutcome(models.TextChoices):
    OK = "ok", "OK"
    FAILED = "failed", "Failed"
    SKIPPED = "skipped", "Skipped"


class Job(models.Model):
    code = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    integration = models.ForeignKey(Integration, models.CASCADE, related_name="jobs")
    connection = models.OneToOneField(Connection, models.CASCADE, related_name="job")
    interval = models.PositiveIntegerField(choices=INTERVALS, default=DEFAULT_INTERVAL)
    cursor = models.DateTimeField(null=True, blank=True)
    next_run_at = models.DateTimeField(default=timezone.now)
    running_since = models.DateTimeField(null=True, blank=True)
    last_started_at = models.DateTimeField(null=True, blank=True)
    last_finished_at = models.DateTimeField(null=True, blank=True)
    last_outcome = models.CharField(max_length=10, choices=RunOutcome.choices, blank=True)
    # When a run last succeeded: what the Schedule page and the digest say while runs fail.
    last_ok_at = models.DateTimeField(null=True, blank=True)
    # Lateness counts from here: the last successful run, the last skipped one (nothing was to move: the integration
    # or a module is off), or the job's activation. A failed run leaves it, so a job that fails every run is late.
    on_time_at = models.DateTimeField(default=timezone.now)
    # The members who get error emails were told it is late (cleared when it is on time again).
    late_notified = models.BooleanField(default=False)
    last_message = models.TextField(blank=True)
    last_fetched = models.PositiveIntegerField(default=0)
    last_received = models.PositiveIntegerField(default=0)
    # Which transfers the last run received, for what they became: the connection's from the first to the last,
    # but for those its webhooks brought meanwhile. Bounds, not every id: a first run may import thousands.
    # (Defaults in the database too: processes still running the previous release make jobs while it deploys.)
    last_transfers_from = models.BigIntegerField(null=True, blank=True)
    last_transfers_to = models.BigIntegerField(null=True, blank=True)
    last_transfers_besides = models.JSONField(blank=True, default=list, db_default=[])
    # Run now was asked for and the run has not started yet: the Schedule page says Queued.
    queued_at = models.DateTimeField(null=True, blank=True)
    # Where the first run starts (the merchant's start date): orders changed since then are imported. None: from when
    # the connection is activated. Each order created counts against the month's allowance, so the default takes
    # none of the shop's history.
    import_from = models.DateTimeField(null=True, blank=True)
    start_chosen = models.BooleanField(
        default=False, db_default=False
    )  # the merchant chose it (from now, too): Home's checklist
    created = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        indexes = [models.Index(fields=["next_run_at"], name="job_due")]

    def __str__(self) -> str:
        return f"Job for {self.connection}"

    @property
    def period(self) -> timedelta:
        seconds = self.interval if self.connection.trigger == Trigger.SCHEDULE else RECONCILE_INTERVAL
        return timedelta(seconds=seconds)

    def is_late(self, now: datetime | None = None) -> bool:
        """Active, and no successful run within two periods (see on_time_at)."""
        if not self.connection.active:
            return False
        now = now or timezone.now()
        return now - self.on_time_at > 2 * self.period

    @classmethod
    def count_late(cls, now: datetime | None = None) -> int:
        return cls.late(now).count()

    @classmethod
    def late(cls, now: datetime | None = None) -> models.QuerySet[Job]:
        """Active jobs without a successful run within two periods: is_late() as one query (intervals are a fixed
        list)."""
        now = now or timezone.now()
        late = Q(
            connection__trigger=Trigger.WEBHOOK, on_time_at__lt=now - 2 * timedelta(seconds=RECONCILE_INTERVAL)
        )
        for seconds, _ in INTERVALS:
            late |= Q(
                connection__trigger=Trigger.SCHEDULE,
                interval=seconds,
                on_time_at__lt=now - 2 * timedelta(seconds=seconds),
            )
        return cls.objects.filter(connection__active=True).filter(late)

    @classmethod
    def ensure_for(cls, connection: Connection) -> Job:
        job, _ = cls.objects.get_or_create(
            connection=connection,
            defaults={"integration_id": connection.integration_id, "cursor": timezone.now() - OVERLAP},
        )
        return job

    def start_now(self) -> None:
        """On activation: run at the next dispatch, and be late only two periods from now (the job may have been
        made, or last succeeded, long before). A job that never ran starts from its start date, else from now: a
        connection transfers from the moment it is activated, not the shop's history."""
        self.next_run_at = self.on_time_at = timezone.now()
        self.late_notified = False
        fields = ["next_run_at", "on_time_at", "late_notified"]
        if not self.last_finished_at:
            self.cursor = self.import_from or timezone.now()
            fields.append("cursor")
        self.save(update_fields=fields)

    def choose_start(self, start: datetime | None) -> bool:
        """Import orders changed since `start` (None: from now on). Before anything was imported the first run starts
        there; after runs an earlier date imports again from then (orders already transferred are not made twice:
        their mappings). Whether it imports again."""
        self.import_from, self.start_chosen = start, True
        again = (
            self.last_ok_at is not None and start is not None and self.cursor is not None and start < self.cursor
        )
        if self.last_ok_at is None or again:
            self.cursor = start or timezone.now()
        self.save(update_fields=["import_from", "start_chosen", "cursor"])
        return again

    def since(self, now: datetime) -> datetime:
        """Where a run's fetch starts: the start date itself, or the last run's start less the overlap."""
        if self.cursor is None:
            return now - OVERLAP
        return self.cursor if self.cursor == self.import_from else self.cursor - OVERLAP

    @classmethod
    def ensure_all(cls, integration: Integration) -> None:
        for connection in integration.connections.filter(job__isnull=True):
            cls.ensure_for(connection)

    @classmethod
    def claim_due(cls, now: datetime, limit: int = 200) -> list[int]:
        """Move the next run of due jobs on and return their ids.

        Two beats (or a beat and an operator) may dispatch at once: SKIP LOCKED hands each due row to one of them
        only, and the moved next_run_at keeps it from being due again until its period has passed.
        """
        with transaction.atomic():
            due = list(
                cls.objects.select_for_update(skip_locked=True, of=("self",))
                .select_related("connection")
                .filter(next_run_at__lte=now, connection__active=True)
                .order_by("next_run_at")[:limit]
            )
            for job in due:
                job.next_run_at = now + job.period
                job.save(update_fields=["next_run_at"])
        return [job.pk for job in due]

    def queue(self, now: datetime) -> bool:
        """Ask for a run now (the caller publishes it); False while one is going: its result is the answer."""
        queued = (
            Job.objects.filter(pk=self.pk)
            .filter(Q(running_since__isnull=True) | Q(running_since__lt=now - STALE_RUN))
            .update(queued_at=now)
        )
        if queued:
            self.queued_at = now
        return bool(queued)

    def claim_run(self, now: datetime) -> bool:
        """Start a run unless one is going: a run-now during a run, or a duplicate task, does nothing (and is no
        longer queued). The next run is due a period after this one started, however it was started."""
        claimed = (
            Job.objects.filter(pk=self.pk)
            .filter(Q(running_since__isnull=True) | Q(running_since__lt=now - STALE_RUN))
            .update(running_since=now, last_started_at=now, next_run_at=now + self.period, queued_at=None)
        )
        if not claimed:
            Job.objects.filter(pk=self.pk).update(queued_at=None)
        return bool(claimed)

    def finish_run(
        self,
        outcome: str,
        message: str = "",
        *,
        fetched: int = 0,
        transfers: list[int] | None = None,
        cursor: datetime | None = None,
    ) -> None:
        """Record how the run ended: what it fetched and the transfers it received (ids in the order received)."""
        now = timezone.now()
        self.running_since = None
        self.last_finished_at = now
        self.last_outcome = outcome
        self.last_message = message
        self.last_fetched, self.last_received = fetched, len(transfers or [])
        self._note_transfers(transfers or [])
        fields = [
            "running_since",
            "last_finished_at",
            "last_outcome",
            "last_message",
            "last_fetched",
            "last_received",
            "last_transfers_from",
            "last_transfers_to",
            "last_transfers_besides",
        ]
        if outcome != RunOutcome.FAILED:
            # Succeeded, or skipped with nothing to move: on time again, and lateness, if it comes back, is news.
            # (A failed run leaves both: a job failing every run turns late, and is told once.)
            self.on_time_at, self.late_notified = now, False
            fields += ["on_time_at", "late_notified"]
        if outcome == RunOutcome.OK:
            self.last_ok_at = now
            fields.append("last_ok_at")
        if cursor is not None:
            self.cursor = cursor
            fields.append("cursor")
        self.save(update_fields=fields)

    def _note_transfers(self, ids: list[int]) -> None:
        if not ids:
            self.last_transfers_from = self.last_transfers_to = None
            self.last_transfers_besides = []
            return
        self.last_transfers_from, self.last_transfers_to = min(ids), max(ids)
        within = Transfer.objects.filter(connection=self.connection_id, pk__range=(min(ids), max(ids)))
        # Only a webhook connection's deliveries can add transfers to the connection while its run fetches: few.
        besides = [] if within.count() == len(ids) else set(within.values_list("pk", flat=True)) - set(ids)
        self.last_transfers_besides = sorted(besides)

    def run_transfers(self) -> models.QuerySet[Transfer]:
        """The transfers the last run received (what they became is read from them as they settle)."""
        if self.last_transfers_from is None or self.last_transfers_to is None:
            return Transfer.objects.none()
        return Transfer.objects.filter(
            connection=self.connection_id, pk__range=(self.last_transfers_from, self.last_transfers_to)
        ).exclude(pk__in=self.last_transfers_besides)
