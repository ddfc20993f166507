"""Modules (systems added to an integration), the Connections between them, and the Mappings that remember
which document in the receiving system each source record became."""

from __future__ import annotations

import hashlib
import json
import secrets
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import models
from django.urls import reverse
from django.utils import timezone
from django.utils.functional import cached_property

from connections.flows import FLOWS, Flow
from connections.gate import Gate
from connections.systems import SYSTEMS, AccountingClient, System, WebshopClient
from iex.lib import secrets as credentials_crypto
from iex.lib import sql
from iex.models import Integration

# After a webhook secret is changed, the one it replaced is accepted this long (Shopify: "up to an hour").
PREVIOUS_SECRET_VALID = timedelta(hours=1)
# Credentials that do not say which account a module reaches: webhook secrets, and tokens the system rotates.
NOT_IDENTITY = {"webhook_secret", "previous_webhook_secret", "previous_webhook_secret_until", "refresh_token"}


def new_webhook_token() -> str:
    return secrets.token_urlsafe(24)


class Module(models.Model):
    code = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    integration = models.ForeignKey(Integration, models.CASCADE, related_name="modules")
    kind = models.CharField(max_length=20)
    active = models.BooleanField(default=True)
    # Fernet ciphertext of a JSON object (see iex/lib/secrets.py); empty until the merchant connects.
    credentials = models.TextField(blank=True, editable=False)
    settings = models.JSONField(default=dict, blank=True)
    # Empty means the real system; development and tests point it at the sandbox.
    base_url = models.URLField(blank=True)
    webhook_token = models.CharField(max_length=64, unique=True, default=new_webhook_token, editable=False)
    connected_at = models.DateTimeField(null=True, blank=True)
    # The system refused IEX (its credentials, 401/403, or too many requests: connections/gate.py): since when and
    # why. Its transfers are held meanwhile; cleared when the credentials are saved again or a test succeeds.
    credentials_failed_at = models.DateTimeField(null=True, blank=True, editable=False)
    credentials_error = models.CharField(max_length=300, blank=True, editable=False)
    # What the last "Test connection" (also the one after saving credentials) said: "" when it succeeded.
    test_error = models.CharField(max_length=300, blank=True, editable=False)
    # The system's account stopped answering (connections/gate.py): since when; cleared by its next answer.
    unreachable_since = models.DateTimeField(null=True, blank=True, editable=False)
    # Which account of the system the last successful test reached (the shop's domain or site address, the
    # agreement's or organisation's number): what the documents IEX made there are kept by (Mapping.detach).
    account = models.CharField(max_length=255, blank=True, editable=False)
    created = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["integration", "kind"], name="module_one_per_kind")]
        ordering = ["created"]

    def __str__(self) -> str:
        return f"{self.system.label} in {self.integration.number}"

    def get_absolute_url(self) -> str:
        return reverse("module", args=[self.integration.number, self.code])

    @property
    def system(self) -> System:
        return SYSTEMS[self.kind]

    @property
    def connected(self) -> bool:
        return bool(self.credentials)

    @cached_property
    def account_key(self) -> str:
        """The system's account this module reaches (its address and credentials), the same for every module that
        reaches it: what a rate budget is kept per."""
        identity = {
            k: v for k, v in self.get_credentials().items() if k not in NOT_IDENTITY and v not in ("", None)
        }
        described = json.dumps([self.kind, self.base_url, identity or self.pk], sort_keys=True, default=str)
        return hashlib.sha256(described.encode()).hexdigest()[:24]

    @cached_property
    def gate(self) -> Gate:
        return Gate(self)

    @property
    def status(self) -> tuple[str, str]:
        """What the module's heading and the Systems list say of it: (words, badge class), true to the last answer."""
        if not self.connected:
            return "Not connected", "badge-off"
        if self.credentials_failed_at is not None:
            return "Refused", "badge-off"
        if self.test_error:
            return "Test failed", "badge-warn"
        return "Connected", "badge-ok"

    def tested(self, error: str = "") -> None:
        """Note what a test of the connection said ("" when it succeeded)."""
        self.test_error = error[:300]
        type(self).objects.filter(pk=self.pk).update(test_error=self.test_error)

    def identified(self, account: str) -> None:
        """A test reached `account`: the mappings of the documents IEX made in it come back to this module's
        connections (the system was removed and added again), and those of an account it reached before are put
        aside until it reaches that one again."""
        if account == self.account:
            return
        connections = Connection.objects.filter(models.Q(source=self) | models.Q(target=self))
        Mapping.detach(connections)
        self.account = account
        type(self).objects.filter(pk=self.pk).update(account=account)
        Mapping.attach(connections)

    def delete(self, *args: Any, **kwargs: Any) -> Any:
        """Removed: its transfers stay in the Log, and the mappings of what it sent or received are put aside for
        the same account, should the system be added again (nothing is then sent or counted twice)."""
        Mapping.detach(Connection.objects.filter(models.Q(source=self) | models.Q(target=self)))
        return super().delete(*args, **kwargs)

    def credentials_refused(self, message: str) -> None:
        """Note that the system refused IEX (Home says so, and the error digest tells the members, once)."""
        if self.credentials_failed_at is None:
            self.credentials_failed_at = timezone.now()
        self.credentials_error = message[:300]
        type(self).objects.filter(pk=self.pk).update(
            credentials_failed_at=self.credentials_failed_at, credentials_error=self.credentials_error
        )

    def get_credentials(self) -> dict[str, Any]:
        """Decrypted credentials. Raises DecryptionError rather than ever passing ciphertext on."""
        if not self.credentials:
            return {}
        return json.loads(credentials_crypto.decrypt(self.credentials))

    def set_credentials(self, values: dict[str, Any]) -> None:
        """Encrypt and keep `values`. A new webhook secret replaces the old one, which stays valid for an hour:
        Shopify may sign with the old secret for up to an hour after it is rotated."""
        values = dict(values)
        try:
            old = self.get_credentials()
        except credentials_crypto.DecryptionError:
            old = {}  # unreadable with today's keys: nothing to keep
        if old.get("webhook_secret") and values.get("webhook_secret") != old["webhook_secret"]:
            values["previous_webhook_secret"] = old["webhook_secret"]
            values["previous_webhook_secret_until"] = (timezone.now() + PREVIOUS_SECRET_VALID).isoformat()
        elif old.get("previous_webhook_secret"):
            values["previous_webhook_secret"] = old["previous_webhook_secret"]
            values["previous_webhook_secret_until"] = old.get("previous_webhook_secret_until", "")
        self.credentials = credentials_crypto.encrypt(json.dumps(values))
        self.connected_at = timezone.now()
        self.credentials_failed_at, self.credentials_error, self.test_error = None, "", ""

    def save_credentials(self) -> None:
        """Save what `set_credentials` (and a new address) changed."""
        self.save(
            update_fields=[
                "credentials",
                "connected_at",
                "base_url",
                "credentials_failed_at",
                "credentials_error",
                "test_error",
            ]
        )

    def keep_credentials(self, values: dict[str, Any]) -> None:
        """Keep credentials the system changed (a refresh token it rotated): nothing else about the module changes."""
        self.credentials = credentials_crypto.encrypt(json.dumps(values))
        type(self).objects.filter(pk=self.pk).update(credentials=self.credentials)

    def disconnect(self) -> None:
        self.credentials = ""
        self.connected_at = None
        self.save(update_fields=["credentials", "connected_at"])
        self.outgoing.update(active=False)
        self.incoming.update(active=False)

    def settings_values(self) -> dict[str, Any]:
        return {**self.system.default_settings, **self.settings}

    def client(self) -> WebshopClient | AccountingClient:
        return self.system.client(self)

    @property
    def webhook_url(self) -> str:
        return f"{settings.SITE_URL}/hooks/{self.webhook_token}/"

    def rotate_webhook_token(self) -> None:
        self.webhook_token = new_webhook_token()
        self.save(update_fields=["webhook_token"])


class Trigger(models.TextChoices):
    SCHEDULE = "schedule", "Schedule"
    WEBHOOK = "webhook", "Webhook"


class Connection(models.Model):
    """One direction of data for one entity between two modules, e.g. Shopify > e-conomic: orders."""

    code = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    integration = models.ForeignKey(Integration, models.CASCADE, related_name="connections")
    flow = models.CharField(max_length=20)
    source = models.ForeignKey(Module, models.CASCADE, related_name="outgoing")
    target = models.ForeignKey(Module, models.CASCADE, related_name="incoming")
    active = models.BooleanField(default=False)
    trigger = models.CharField(max_length=10, choices=Trigger.choices, default=Trigger.SCHEDULE)
    created = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["source", "target", "flow"], name="connection_one_per_flow"),
        ]
        ordering = ["created"]

    def __str__(self) -> str:
        return self.label

    @property
    def flow_def(self) -> Flow:
        return FLOWS[self.flow]

    @property
    def entity(self) -> str:
        return self.flow_def.entity

    @property
    def label(self) -> str:
        return f"{self.source.system.label} > {self.target.system.label}: {self.flow_def.label}"

    def skip_reason(self) -> str:
        """Why nothing may move through this connection now, or "" if it may."""
        if not self.integration.active:
            return "Integration is inactive"
        for module in (self.source, self.target):
            if not module.active:
                return f"{module.system.label} is inactive"
            if not module.connected:
                return f"{module.system.label} is not connected"
        if not self.active:
            return "Connection is inactive"
        return ""

    def refused(self) -> Module | None:
        """The module of the connection that refused IEX (or that IEX stopped calling), if one did: nothing is sent
        to it or asked of it until it lets IEX in again."""
        return next((m for m in (self.source, self.target) if m.credentials_failed_at is not None), None)

    @classmethod
    def ensure_for(cls, integration: Integration) -> None:
        """Create (inactive) every connection the integration's modules allow."""
        for flow, source, target, why in cls._possible(integration):
            if not why:
                cls.objects.get_or_create(integration=integration, source=source, target=target, flow=flow.key)

    @classmethod
    def not_offered(cls, integration: Integration) -> list[tuple[str, str]]:
        """(label, why) of each flow between the integration's systems that one of them cannot take part in."""
        return [
            (f"{source.system.label} > {target.system.label}: {flow.label}", why)
            for flow, source, target, why in cls._possible(integration)
            if why
        ]

    @staticmethod
    def _possible(integration: Integration) -> Iterator[tuple[Flow, Module, Module, str]]:
        """Every flow the categories of the integration's systems allow, with why it is not offered ("" if it is)."""
        modules = list(integration.modules.all())
        for flow in FLOWS.values():
            for source in modules:
                for target in modules:
                    if source.system.category == flow.source and target.system.category == flow.target:
                        why = source.system.not_offered.get(flow.key) or target.system.not_offered.get(flow.key)
                        yield flow, source, target, why or ""


class Mapping(models.Model):
    """The receiving system's document for one source record: what makes sending idempotent.

    `leased_until` serialises work on one source record: two transfers of the same order (a webhook and the
    schedule's overlap, or a retry) claim the lease with a conditional UPDATE, and the loser retries later.
    """

    # None while it is put aside: its connection's system was removed, or reaches another account now (detach).
    connection = models.ForeignKey(Connection, models.SET_NULL, null=True, related_name="mappings")
    # Put aside: the integration and the accounts it belongs to, to come back by (attach).
    integration = models.ForeignKey(
        Integration, models.CASCADE, null=True, blank=True, related_name="+", db_index=False
    )  # indexed by mapping_put_aside: set only while put aside
    accounts = models.CharField(max_length=64, blank=True, db_default="")
    source_ref = models.CharField(max_length=100)
    target_ref = models.CharField(max_length=100, blank=True)
    target_state = models.CharField(max_length=20, blank=True)
    data = models.JSONField(null=True, blank=True)
    leased_until = models.DateTimeField(null=True, blank=True)
    leased_by = models.BigIntegerField(null=True, blank=True)  # the transfer holding the lease
    # The source version last sent: an older version arriving late (webhooks come out of order) is not sent.
    source_updated_at = models.DateTimeField(null=True, blank=True)
    updated = models.DateTimeField(default=timezone.now)

    LEASE = timedelta(minutes=5)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["connection", "source_ref"], name="mapping_one_per_source_record"),
        ]
        indexes = [
            models.Index(
                fields=["integration", "accounts"],
                condition=models.Q(integration__isnull=False),
                name="mapping_put_aside",
            )
        ]

    def __str__(self) -> str:
        return f"{self.source_ref} -> {self.target_ref or '?'}"

    @staticmethod
    def accounts_of(connection: Connection) -> str:
        """The flow between the two accounts its modules reach ("" while one is not known): what a mapping put
        aside is kept by."""
        source, target = connection.source, connection.target
        if not source.account or not target.account:
            return ""
        described = json.dumps([connection.flow, source.kind, source.account, target.kind, target.account])
        return hashlib.sha256(described.encode()).hexdigest()

    @classmethod
    def detach(cls, connections: models.QuerySet[Connection]) -> None:
        """Put the connections' mappings aside by their accounts (forgotten where an account is not known)."""
        for connection in connections.select_related("source", "target"):
            if accounts := cls.accounts_of(connection):
                connection.mappings.update(
                    connection=None, integration=connection.integration_id, accounts=accounts
                )
            else:
                connection.mappings.all().delete()

    @classmethod
    def attach(cls, connections: models.QuerySet[Connection]) -> int:
        """Give the connections back the mappings put aside for their accounts; how many came back. A record the
        connection has a mapping of by now keeps that one (the one put aside is forgotten)."""
        attached = 0
        for connection in connections.select_related("source", "target"):
            if not (accounts := cls.accounts_of(connection)):
                continue
            taken = cls.objects.filter(connection=connection).values("source_ref")
            aside = cls.objects.filter(connection=None, integration=connection.integration_id, accounts=accounts)
            attached += aside.exclude(source_ref__in=taken).update(
                connection=connection, integration=None, accounts=""
            )
            aside.delete()
        return attached

    @classmethod
    def lease(cls, connection: Connection, source_ref: str, holder: int) -> Mapping | None:
        """The record's mapping, leased to transfer `holder`; None while another transfer holds it. The holder
        itself may lease again: its worker died mid-send and the transfer runs again.

        One statement: it makes the row if there is none (whichever of two concurrent transfers comes first: the
        other one's insert becomes the conditional update), claims a free lease, and returns the row as leased."""
        now = timezone.now()
        table = cls._meta.db_table
        leased = cls.objects.raw(
            f"INSERT INTO {table} (connection_id, source_ref, target_ref, target_state, leased_until, leased_by, "  # noqa: S608 (our table)
            "updated) VALUES (%s, %s, '', '', %s, %s, %s) "
            "ON CONFLICT (connection_id, source_ref) DO UPDATE "
            "SET leased_until = excluded.leased_until, leased_by = excluded.leased_by "
            f"WHERE {table}.leased_until IS NULL OR {table}.leased_until < %s OR {table}.leased_by = %s "
            "RETURNING *",
            [connection.pk, source_ref, now + cls.LEASE, holder, now, now, holder],
        )
        return next(iter(leased), None)

    def release(self) -> None:
        """Let the lease go, saving what the transfer learnt: the document it made or found, and the version sent."""
        self.leased_until = self.leased_by = None
        self.updated = timezone.now()
        fields = [
            "target_ref",
            "target_state",
            "data",
            "source_updated_at",
            "leased_until",
            "leased_by",
            "updated",
        ]
        sql.update(Mapping, "id = %s", [self.pk], **{name: getattr(self, name) for name in fields})


class Delivery(models.Model):
    """A webhook a shop posted to us, stored before anything else happens (the inbox).

    Stored in the transaction that answers the shop, processed after commit by a drain of its module's inbox; the
    sweeper queues drains for what a crash or a broker outage left behind, so nothing acknowledged to the shop is
    lost.
    """

    class Status(models.TextChoices):
        RECEIVED = "received", "Received"
        PROCESSED = "processed", "Processed"
        IGNORED = "ignored", "Ignored"
        REJECTED = "rejected", "Rejected"

    integration = models.ForeignKey(Integration, models.CASCADE, related_name="deliveries")
    # No index of its own: the indexes below start with the module.
    module = models.ForeignKey(Module, models.CASCADE, related_name="deliveries", db_index=False)
    topic = models.CharField(max_length=100, blank=True)
    event_id = models.CharField(max_length=100, blank=True)
    headers = models.JSONField(default=dict)
    body = models.BinaryField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.RECEIVED)
    note = models.TextField(blank=True)
    received_at = models.DateTimeField(default=timezone.now)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            # Shops deliver an event more than once (retries, at-least-once): store it once.
            models.UniqueConstraint(
                fields=["module", "event_id"], condition=~models.Q(event_id=""), name="delivery_once_per_event"
            ),
        ]
        indexes = [
            # A drain's question: what is still waiting for this module, oldest first (the sweeper's too).
            models.Index(fields=["module", "id"], condition=models.Q(status="received"), name="delivery_waiting"),
            models.Index(fields=["module", "-received_at"], name="delivery_module_latest"),
        ]

    def __str__(self) -> str:
        return f"{self.topic} {self.event_id} ({self.status})"

    def done(self, status: str, note: str = "") -> None:
        self.status, self.note, self.processed_at = status, note, timezone.now()
        self.save(update_fields=["status", "note", "processed_at"])


class QueuedDrain(models.Model):
    """A drain of this module's inbox is queued and has not started, so intake need not queue another (intake.py).

    Written and removed with one statement each, in autocommit. A drain lost with the broker leaves its row behind:
    the sweeper takes a row older than its cutoff for lost and queues the drain again.
    """

    module = models.OneToOneField(Module, models.CASCADE, primary_key=True, related_name="+")
    queued_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"drain of module {self.module_id} queued at {self.queued_at}"
