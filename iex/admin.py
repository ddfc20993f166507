from django.contrib import admin

from iex.models import Integration, Invitation, Member


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
    fields = ["user", "role", "created"]


@admin.register(Integration)
class IntegrationAdmin(admin.ModelAdmin):
    list_display = ["number", "name", "active", "created"]
    list_filter = ["active"]
    search_fields = ["number", "name"]
    readonly_fields = ["number", "created", "active_changed_at", "active_changed_by"]
    inlines = [MemberInline]

    def has_add_permission(self, request) -> bool:
        return False  # integrations are created by their owners, which draws the number and the owner member


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
