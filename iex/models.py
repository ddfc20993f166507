"""The tenant core: an Integration, its Members and the Invitations that make new members."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import ObjectDoesNotExist
from django.db import IntegrityError, models, transaction
from django.db.models.functions import Lower
from django.urls import reverse
from django.utils import timezone


class Role(models.TextChoices):
    OWNER = "owner", "Owner"
    ADMIN = "admin", "Admin"
    VIEWER = "viewer", "Viewer"


ROLE_HELP = {
    Role.OWNER: "Everything, including billing and managing owners.",
    Role.ADMIN: "Everything but billing, removing systems and managing owners (an owner's error emails too).",
    Role.VIEWER: "Read-only; may retry failed transfers.",
}


class Integration(models.Model):
    """The tenant: one merchant's set of connected systems. Users quote its number to support."""

    number = models.CharField(max_length=6, unique=True, editable=False)
    name = models.CharField(max_length=100)
    active = models.BooleanField(default=True)
    active_changed_at = models.DateTimeField(null=True, blank=True, editable=False)
    active_changed_by = models.ForeignKey(
        User, models.SET_NULL, null=True, blank=True, related_name="+", editable=False
    )
    created = models.DateTimeField(default=timezone.now, editable=False)
    # Error digests: when the last one went out, and up to which failure time it told.
    digest_sent_at = models.DateTimeField(null=True, blank=True, editable=False)
    digest_cursor = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["name", "number"]

    def __str__(self) -> str:
        return f"{self.name} ({self.number})"

    def get_absolute_url(self) -> str:
        return reverse("home", args=[self.number])

    @classmethod
    def create_for(cls, user: User, name: str) -> Integration:
        """Create an integration with a fresh random number and make `user` its owner."""
        for _ in range(20):
            number = str(secrets.randbelow(900_000) + 100_000)
            try:
                with transaction.atomic():
                    integration = cls.objects.create(number=number, name=name)
                    integration.members.create(user=user, role=Role.OWNER)
                    return integration
            except IntegrityError:
                # Another integration drew the same number (the unique index decides, not a prior SELECT).
                continue
        raise RuntimeError("could not draw a free integration number")

    def set_active(self, active: bool, by: User) -> None:
        self.active = active
        self.active_changed_at = timezone.now()
        self.active_changed_by = by
        self.save(update_fields=["active", "active_changed_at", "active_changed_by"])

    def owner_count(self) -> int:
        return self.members.filter(role=Role.OWNER).count()

    def owner_emails(self) -> list[str]:
        return list(self.members.filter(role=Role.OWNER).values_list("user__email", flat=True))

    # --- plan limits ----------------------------------------------------------------------------------------
    # The plan of the integration's subscription sets them. Billing owns both, a floor above: they are reached through
    # the `subscription` relation, so the tenant core imports no app. An integration has no plan until billing starts
    # its trial (Subscription.of, on first use): until then the Log keeps LOG_RETENTION_DAYS, the owner is the only
    # member and no orders are included.

    def _plan(self) -> Any:
        try:
            return self.subscription.plan  # the reverse one-to-one from billing.Subscription
        except ObjectDoesNotExist:
            return None

    def retention_days(self) -> int:
        """Days the Log keeps this integration's transfers; failed ones are kept twice as long."""
        plan = self._plan()
        return plan.retention_days if plan else settings.LOG_RETENTION_DAYS

    def member_limit(self) -> int:
        """Members and pending invitations at most."""
        plan = self._plan()
        return plan.member_limit if plan else 1

    def included_orders(self) -> int:
        """Orders a month the plan includes (packs bought come on top)."""
        plan = self._plan()
        return plan.included_orders if plan else 0

    def invitations_sent_last_hour(self) -> int:
        # A resend issues a new invitation row, so resends count against the hourly limit too.
        return self.invitations.filter(created__gte=timezone.now() - timedelta(hours=1)).count()


class ReportFrequency(models.TextChoices):
    DAILY = "daily", "Daily"
    WEEKLY = "weekly", "Weekly (Mondays)"
    MONTHLY = "monthly", "Monthly (on the 1st)"
    OFF = "off", "Off"


class Member(models.Model):
    code = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    integration = models.ForeignKey(Integration, models.CASCADE, related_name="members")
    # PROTECT: deleting a user must not silently leave an integration without its last owner.
    user = models.ForeignKey(User, models.PROTECT, related_name="memberships")
    role = models.CharField(max_length=10, choices=Role.choices)
    created = models.DateTimeField(default=timezone.now, editable=False)
    error_emails = models.BooleanField("Error emails", default=True)
    report_frequency = models.CharField(
        "Status report", max_length=10, choices=ReportFrequency.choices, default=ReportFrequency.WEEKLY
    )
    report_sent_on = models.DateField(null=True, blank=True, editable=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["integration", "user"], name="member_one_per_user_and_integration"),
        ]
        ordering = ["created"]

    def __str__(self) -> str:
        return f"{self.user.email} ({self.role}) in {self.integration.number}"

    @property
    def can_write(self) -> bool:
        return self.role != Role.VIEWER

    @property
    def is_owner(self) -> bool:
        return self.role == Role.OWNER

    def grantable_roles(self) -> list[Role]:
        """Roles this member may give others: only owners make owners."""
        return list(Role) if self.is_owner else [Role.ADMIN, Role.VIEWER]

    def may_remove(self, other: Member) -> bool:
        """Anyone may leave; admins remove admins and viewers; owners remove anyone."""
        if other.pk == self.pk:
            return True
        if not self.can_write:
            return False
        return self.is_owner or other.role != Role.OWNER

    def may_manage(self, other: Member) -> bool:
        """Whether this member may change another's settings (error emails): their own, and as admins everyone's
        but an owner's; owners anyone's."""
        return other.pk == self.pk or self.is_owner or (self.can_write and other.role != Role.OWNER)

    def is_last_owner(self) -> bool:
        return self.is_owner and self.integration.owner_count() == 1


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class InvitationQuerySet(models.QuerySet["Invitation"]):
    def pending(self) -> InvitationQuerySet:
        return self.filter(accepted_at=None, revoked_at=None)


class Invitation(models.Model):
    """A single-use link, bound to one email address, that makes its accepter a member.

    Only the SHA-256 of the token is stored: a database leak does not hand out working links.
    """

    code = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    integration = models.ForeignKey(Integration, models.CASCADE, related_name="invitations")
    email = models.EmailField()
    role = models.CharField(max_length=10, choices=Role.choices)
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    invited_by = models.ForeignKey(User, models.SET_NULL, null=True, related_name="+")
    created = models.DateTimeField(default=timezone.now, editable=False)
    expires = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_by = models.ForeignKey(User, models.SET_NULL, null=True, blank=True, related_name="+")
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = InvitationQuerySet.as_manager()

    class Meta:
        indexes = [
            models.Index(fields=["integration", "created"], name="invitation_integration_created"),
        ]
        constraints = [
            # One live link per address and integration: resending revokes the old row first.
            models.UniqueConstraint(
                "integration",
                Lower("email"),
                condition=models.Q(accepted_at=None, revoked_at=None),
                name="invitation_one_pending_per_email",
            ),
        ]
        ordering = ["-created"]

    def __str__(self) -> str:
        return f"{self.email} ({self.role}) to {self.integration.number}"

    @classmethod
    def sent_by_last_day(cls, user: User) -> int:
        """Invitations (and resends) this person sent in the last 24 hours, to any integration."""
        return cls.objects.filter(invited_by=user, created__gte=timezone.now() - timedelta(days=1)).count()

    @classmethod
    def issue(cls, integration: Integration, email: str, role: str, by: User) -> tuple[Invitation, str]:
        """Create an invitation and return it with its token, which exists only here and in the email."""
        token = secrets.token_urlsafe(32)  # 256 bits
        now = timezone.now()
        invitation = cls.objects.create(
            integration=integration,
            email=email.lower(),
            role=role,
            token_hash=hash_token(token),
            invited_by=by,
            created=now,
            expires=now + timedelta(hours=settings.INVITATION_VALID_HOURS),
        )
        return invitation, token

    @classmethod
    def find(cls, token: str) -> Invitation | None:
        return cls.objects.select_related("integration", "invited_by").filter(token_hash=hash_token(token)).first()

    @property
    def status(self) -> str:
        if self.accepted_at:
            return "accepted"
        if self.revoked_at:
            return "revoked"
        if self.expires <= timezone.now():
            return "expired"
        return "pending"

    def url(self, token: str) -> str:
        return settings.SITE_URL + reverse("invitation", args=[token])

    def revoke(self) -> bool:
        """Revoke if still pending; False when it was accepted or revoked meanwhile."""
        return bool(Invitation.objects.pending().filter(pk=self.pk).update(revoked_at=timezone.now()))

    def resend(self, by: User) -> tuple[Invitation, str] | None:
        """Replace this invitation by a new one with a new link; the old link stops working."""
        with transaction.atomic():
            if not self.revoke():
                return None
            return Invitation.issue(self.integration, self.email, self.role, by)

    def accept(self, user: User) -> tuple[Member, bool] | None:
        """Make `user` a member: (membership, whether it is new), or None if the link is no longer valid.

        Two tabs may post the same link at once: the conditional UPDATE lets exactly one of them claim it.
        Someone who is already a member keeps their role.
        """
        now = timezone.now()
        with transaction.atomic():
            claimed = (
                Invitation.objects.pending()
                .filter(pk=self.pk, expires__gt=now)
                .update(accepted_at=now, accepted_by=user)
            )
            if not claimed:
                return None
            return Member.objects.get_or_create(
                integration=self.integration, user=user, defaults={"role": self.role}
            )
