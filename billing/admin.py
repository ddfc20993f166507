from django.contrib import admin

from billing.models import Pack, Plan, Subscription, SystemPrice, Usage


@admin.register(Plan)
class PlanAdmin(admin.ModelAdmin):
    list_display = [
        "name", "included_orders", "price_display", "pack_orders", "pack_price_display", "retention_days",
        "member_limit", "available",
    ]  # fmt: skip
    prepopulated_fields = {"code": ["name"]}


@admin.register(SystemPrice)
class SystemPriceAdmin(admin.ModelAdmin):
    list_display = ["kind", "price_display"]


@admin.register(Subscription)
class SubscriptionAdmin(admin.ModelAdmin):
    list_display = ["integration", "plan", "status", "trial_ends", "current_period_end", "cancel_at_period_end"]
    list_filter = ["status", "plan"]
    search_fields = ["integration__number", "integration__name", "company"]
    readonly_fields = [
        "stripe_customer", "stripe_subscription", "stripe_items", "payment_method", "card_brand", "card_last4",
        "card_expires", "card_updated",
    ]  # fmt: skip


@admin.register(Usage)
class UsageAdmin(admin.ModelAdmin):
    list_display = ["integration", "month", "included", "bought", "used", "reserved"]
    list_filter = ["month"]
    search_fields = ["integration__number", "integration__name"]

    def has_change_permission(self, request, obj=None) -> bool:  # changed only under its lock, by metering
        return False


@admin.register(Pack)
class PackAdmin(admin.ModelAdmin):
    list_display = ["integration", "month", "orders", "amount_display", "source", "status", "created"]
    list_filter = ["status", "source", "month"]
    search_fields = ["integration__number", "payment_intent"]

    def has_change_permission(self, request, obj=None) -> bool:
        return False
