from django.contrib import admin
from django.urls import include, path, register_converter

from billing import views as billing_views
from billing import webhooks as billing_webhooks
from connections import intake
from connections import views as connections_views
from iex import metrics, views
from scheduling import views as scheduling_views
from transferlog import views as transferlog_views


class NumberConverter:
    """An integration number: the public id of a tenant in every tenant URL."""

    regex = "[0-9]{6}"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(NumberConverter, "number")

tenant_urls = [
    path("", views.home, name="home"),
    path("settings/", views.settings_page, name="settings"),
    path("settings/active/", views.set_active, name="set_active"),
    path("settings/notifications/", views.notifications, name="notifications"),
    path("members/<uuid:code>/role/", views.member_role, name="member_role"),
    path("members/<uuid:code>/remove/", views.member_remove, name="member_remove"),
    path("members/<uuid:code>/error-emails/", views.member_error_emails, name="member_error_emails"),
    path("invitations/", views.invite, name="invite"),
    path("invitations/<uuid:code>/resend/", views.invitation_resend, name="invitation_resend"),
    path("invitations/<uuid:code>/revoke/", views.invitation_revoke, name="invitation_revoke"),
    # /i/<number>/systems/
    path("systems/", connections_views.systems, name="systems"),
    path("systems/add/", connections_views.system_add, name="system_add"),
    path("systems/<uuid:code>/", connections_views.module, name="module"),
    path("systems/<uuid:code>/credentials/", connections_views.module_connect, name="module_connect"),
    path("systems/<uuid:code>/test/", connections_views.module_test, name="module_test"),
    path("systems/<uuid:code>/settings/", connections_views.module_settings, name="module_settings"),
    path("systems/<uuid:code>/active/", connections_views.module_active, name="module_active"),
    path("systems/<uuid:code>/disconnect/", connections_views.module_disconnect, name="module_disconnect"),
    path("systems/<uuid:code>/remove/", connections_views.module_remove, name="module_remove"),
    path("systems/<uuid:code>/webhook/", connections_views.module_rotate_webhook, name="module_rotate_webhook"),
    # /i/<number>/schedule/
    path("schedule/", scheduling_views.schedule, name="schedule"),
    path("schedule/<uuid:code>/", scheduling_views.job_row, name="job_row"),
    path("schedule/<uuid:code>/run/", scheduling_views.job_run_now, name="job_run_now"),
    path("schedule/<uuid:code>/interval/", scheduling_views.job_interval, name="job_interval"),
    # /i/<number>/log/
    path("log/", transferlog_views.log, name="log"),
    path("log/retry-failed/", transferlog_views.transfers_retry_failed, name="transfers_retry_failed"),
    path("log/export.csv", transferlog_views.log_export, name="log_export"),
    path("log/<uuid:code>/", transferlog_views.transfer_detail, name="transfer_detail"),
    path("log/<uuid:code>/retry/", transferlog_views.transfer_retry, name="transfer_retry"),
    # /i/<number>/subscription/
    path("subscription/", billing_views.subscription, name="subscription"),
    path("subscription/billing/", billing_views.billing_info, name="subscription_billing"),
    path("subscription/card/", billing_views.card, name="subscription_card"),
    path("subscription/card/done/", billing_views.card_done, name="subscription_card_done"),
    path("subscription/packs/", billing_views.buy_packs, name="subscription_packs"),
    path("subscription/packs/<uuid:code>/confirm/", billing_views.confirm_pack, name="subscription_pack_confirm"),
    path("subscription/packs/<uuid:code>/back/", billing_views.pack_back, name="subscription_pack_back"),
    path("subscription/top-up/", billing_views.topup, name="subscription_topup"),
    path("subscription/plan/", billing_views.change_plan, name="subscription_plan"),
    path("subscription/cancel/", billing_views.cancel, name="subscription_cancel"),
    # /i/<number>/connections/
    path("connections/", connections_views.connections, name="connections"),
    path("connections/<uuid:code>/", connections_views.connection_update, name="connection_update"),
]

urlpatterns = [
    path("", views.index, name="index"),
    path("healthz", views.healthz, name="healthz"),
    path("metrics", metrics.metrics, name="metrics"),  # Prometheus; staff and METRICS_ALLOWED_NETWORKS only
    path("accounts/", include("allauth.urls")),
    path("admin/", admin.site.urls),
    # /integrations/
    path("integrations/new/", views.integration_new, name="integration_new"),
    # /i/<number>/ : everything inside one integration
    path("i/<number:number>/", include(tenant_urls)),
    # /hooks/<token>/ : shops post webhooks here, one token per module
    path("hooks/<str:token>/", intake.hook, name="hook"),
    # /stripe/webhook/ : Stripe's events about payments and subscriptions
    path("stripe/webhook/", billing_webhooks.stripe_webhook, name="stripe_webhook"),
    # /invitations/<token>/
    path("invitations/<str:token>/", views.invitation, name="invitation"),
]
