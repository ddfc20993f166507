from django.contrib import admin

from transferlog.models import Transfer, TransferState


class StateInline(admin.TabularInline):
    model = TransferState
    extra = 0
    fields = readonly_fields = ("kind", "at", "note", "data")
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Transfer)
class TransferAdmin(admin.ModelAdmin):
    list_display = ["created", "integration", "connection_label", "reference", "status", "attempts"]
    list_filter = ["status", "entity"]
    search_fields = ["reference", "source_ref", "integration__number"]
    list_select_related = ["integration"]
    readonly_fields = [f.name for f in Transfer._meta.fields]
    inlines = [StateInline]

    def has_add_permission(self, request) -> bool:
        return False
