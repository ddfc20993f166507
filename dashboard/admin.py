from django.contrib import admin
from django.db.models import F, OuterRef, QuerySet, Subquery
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.text import Truncator

from billing.models import Subscription, Usage, month_of
from iex.models import Integration, Invitation, Member
from transferlog.models import Status


class ReadOnlyAdmin:
    """Members change only through the dashboard, which keeps every integration with at least one owner."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class MemberInline(ReadOnlyAdmin, admin.TabularInline):
    model = Member
    extra = 0
    fields = readonly_fields = ("user", "role", "created")


@admin.register(Integration)
class IntegrationAdmin(admin.ModelAdmin):
    list_display = ["number", "name", "active", "plan", "orders_this_month", "modules", "created"]
    list_filter = ["active"]
    search_fields = ["number", "name"]
    # A page of integrations costs three queries: the rows with their plan and this month's usage, the count,
    # and their modules.
    list_select_related = ["subscription__plan"]
    # `active` changes on the Settings page only: Integration.set_active notes who and when, and activating there
    # releases the held transfers (and refuses an ended subscription).
    readonly_fields = [
        "number", "active", "created", "active_changed_at", "active_changed_by", "plan", "orders_this_month",
        "modules", "latest_failures",
    ]  # fmt: skip
    inlines = [MemberInline]

    def has_add_permission(self, request) -> bool:
        return False  # owners create integrations (or `manage.py create_integration`): it draws the number

    def has_delete_permission(self, request, obj=None) -> bool:
        # Deleting cascades to every transfer (millions), and the confirmation page would list them all.
        return False

    def get_queryset(self, request: HttpRequest) -> QuerySet[Integration]:
        # Read, never made: Usage.of would create this month's row (and a trial for an integration
        # without a subscription) on a page view. No row yet means nothing used of the plan's orders.
        usage = Usage.objects.filter(integration=OuterRef("pk"), month=month_of(timezone.now()))
        return (
            super()
            .get_queryset(request)
            .annotate(
                orders_used=Subquery(usage.values("used")[:1]),
                orders_allowance=Subquery(usage.annotate(n=F("included") + F("bought")).values("n")[:1]),
            )
            .prefetch_related("modules")
        )

    @admin.display(description="Plan")
    def plan(self, obj: Integration) -> str:
        sub = _subscription(obj)
        return f"{sub.plan.name} ({sub.get_status_display().lower()})" if sub else "No subscription"

    @admin.display(description="Orders this month")
    def orders_this_month(self, obj: Integration) -> str:
        allowance = obj.orders_allowance  # type: ignore[attr-defined]
        if allowance is None:
            allowance = obj.included_orders()
        return f"{obj.orders_used or 0:,} of {allowance:,}"  # type: ignore[attr-defined]

    @admin.display(description="Systems")
    def modules(self, obj: Integration) -> str:
        return ", ".join(f"{m.kind}{'' if m.active else ' (inactive)'}" for m in obj.modules.all()) or "None"

    @admin.display(description="Latest failures")
    def latest_failures(self, obj: Integration) -> str:
        """The ten latest failed transfers, linked to the read-only Transfer admin (read off the partial index of
        failed transfers, without their data)."""
        failed = list(
            obj.transfers.filter(status=Status.FAILED)
            .order_by("-updated")
            .only("pk", "connection_label", "reference", "source_ref", "reason", "updated")[:10]
        )
        if not failed:
            return "None"
        links = (
            (
                reverse("admin:transferlog_transfer_change", args=[t.pk]),
                f"{t.updated:%Y-%m-%d %H:%M}",
                t.connection_label,
                t.reference or t.source_ref,
                Truncator(t.reason).chars(120),
            )
            for t in failed
        )
        rows = format_html_join("", '<li><a href="{}">{} {} {}</a>: {}</li>', links)
        every = reverse("admin:transferlog_transfer_changelist") + f"?q={obj.number}&status__exact=failed"
        return format_html('<ul>{}</ul><a href="{}">Every failed transfer</a>', rows, every)


def _subscription(integration: Integration) -> Subscription | None:
    try:
        return integration.subscription
    except Subscription.DoesNotExist:
        return None


@admin.register(Member)
class MemberAdmin(ReadOnlyAdmin, admin.ModelAdmin):
    list_display = ["user__email", "integration", "role", "created"]
    list_filter = ["role"]
    search_fields = ["user__email", "integration__number", "integration__name"]
    list_select_related = ["user", "integration"]


@admin.register(Invitation)
class InvitationAdmin(admin.ModelAdmin):
    list_display = ["email", "integration", "role", "created", "expires", "accepted_at", "revoked_at"]
    list_filter = ["role"]
    search_fields = ["email", "integration__number", "integration__name"]
    list_select_related = ["integration"]
    # The token hash is left out: the link itself is never stored, and staff have no use for its hash.
    fields = [
        "integration",
        "email",
        "role",
        "invited_by",
        "created",
        "expires",
        "accepted_at",
        "accepted_by",
        "revoked_at",
    ]
    readonly_fields = ["integration", "email", "invited_by", "created", "accepted_at", "accepted_by"]

    def has_add_permission(self, request) -> bool:
        return False  # invitations are sent from the Settings page, which emails the link
