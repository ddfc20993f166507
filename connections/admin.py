from django.contrib import admin

from connections.models import Connection, Module


@admin.register(Module)
class ModuleAdmin(admin.ModelAdmin):
    list_display = ["kind", "integration", "active", "connected_at"]
    list_filter = ["kind", "active"]
    search_fields = ["integration__number", "integration__name"]
    list_select_related = ["integration"]
    # Credentials never appear here, not even encrypted.
    fields = ["integration", "kind", "active", "base_url", "settings", "connected_at", "created"]
    readonly_fields = ["integration", "kind", "base_url", "connected_at", "created"]

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(Connection)
class ConnectionAdmin(admin.ModelAdmin):
    list_display = ["__str__", "integration", "active", "trigger"]
    list_filter = ["flow", "active", "trigger"]
    search_fields = ["integration__number", "integration__name"]
    list_select_related = ["integration", "source", "target"]
    fields = ["integration", "flow", "source", "target", "active", "trigger"]
    readonly_fields = ["integration", "flow", "source", "target"]

    def has_add_permission(self, request) -> bool:
        return False
