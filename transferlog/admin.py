import json
import re
from typing import Any

from django.contrib import admin, messages
from django.core.paginator import Paginator
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.utils.functional import cached_property
from django.utils.html import format_html
from django.utils.safestring import SafeString

from iex.models import Integration
from transferlog.models import ENTITIES, Transfer, TransferState


def pretty_json(data: Any) -> SafeString:
    return format_html("<pre>{}</pre>", json.dumps(data, indent=2, ensure_ascii=False, sort_keys=True))


class StateInline(admin.TabularInline):
    model = TransferState
    extra = 0
    fields = readonly_fields = ("kind", "at", "note", "data_pretty")
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="Data")
    def data_pretty(self, obj: TransferState) -> SafeString:
        return pretty_json(obj.data)


class CappedCountPaginator(Paginator):
    """Counts at most CAP rows: a COUNT(*) over millions of transfers takes seconds, and nobody pages that far."""

    CAP = 10_000

    @cached_property
    def count(self) -> int:
        rows = self.object_list
        assert isinstance(rows, QuerySet)  # the admin pages through querysets
        return rows.order_by()[: self.CAP].count()  # any CAP rows will do: no sort


class EntityFilter(admin.SimpleListFilter):
    """The entities the flows move, from the code: the default filter would read every row for the distinct values."""

    title = "entity"
    parameter_name = "entity"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return list(ENTITIES.items())

    def queryset(self, request: HttpRequest, queryset: QuerySet[Transfer]) -> QuerySet[Transfer]:
        return queryset.filter(entity=self.value()) if self.value() else queryset


@admin.register(Transfer)
class TransferAdmin(admin.ModelAdmin):
    """Read-only: transfers change only through the pipeline (and retry, on the Log or `manage.py retry_transfers`).

    Bounded on a table of millions of rows: newest first off the (integration, -created, -id) index when searching
    an integration and off the created index otherwise; no full COUNT (the paginator stops at 10,000, no facets, no
    total); filters that need no query.
    """

    list_display = ["created", "integration", "connection_label", "reference", "status", "attempts"]
    list_filter = ["status", EntityFilter]
    list_select_related = ["integration"]
    ordering = ["-created", "-id"]
    search_fields = ["integration__number"]  # shows the search box; get_search_results does the searching
    search_help_text = (
        "An integration's number, then optionally an order number (#1042, or how it begins) or the shop's id."
    )
    paginator = CappedCountPaginator
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    fields = readonly_fields = (
        "code", "integration", "connection_label", "entity", "reference", "source_ref", "source_updated_at",
        "status", "reason", "action", "target_ref", "attempts", "created", "updated", "due_at", "source_data_pretty",
    )  # fmt: skip
    inlines = [StateInline]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # retention deletes them (`manage.py purge_transfers`)

    @admin.display(description="Source data")
    def source_data_pretty(self, obj: Transfer) -> SafeString:
        return pretty_json(obj.source_data)

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Transfer], search_term: str
    ) -> tuple[QuerySet[Transfer], bool]:
        """Within one integration, as the Log searches: an order number alone would read every row (its index
        starts with the integration), so the number comes first."""
        number, _, ref = search_term.strip().partition(" ")
        if not number:
            return queryset, False
        integration = (
            Integration.objects.filter(number=number).first() if re.fullmatch("[0-9]{6}", number) else None
        )
        if integration is None:
            messages.warning(request, f"Start with an integration's number (6 digits); no integration {number!r}.")
            return queryset.none(), False
        rows = queryset.filter(integration=integration)
        if ref := ref.strip():
            rows = rows.filter(Q(reference__startswith=ref) | Q(source_ref=ref))
        return rows, False
