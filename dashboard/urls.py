from django.contrib import admin
from django.urls import include, path, register_converter

from billing import views as billing_views
from billing import webhooks as billing_webhooks
from connections import intake
from connections import views as connections_views
from dashboard import help, metrics, views
from iex import accounts
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

# URL names: pages are nouns, actions read verb-noun (`remove_member`); each view is named as its URL.
tenant_urls = [
    # /i/<number>/ and /i/<number>/settings/
    path("", views.home, name="home"),
    path("settings/", views.settings_page, name="settings"),
    path("settings/active/", views.set_integration_active, name="set_integration_active"),
    path("settings/notifications/", views.save_notifications, name="save_notifications"),
    path("members/<uuid:code>/role/", views.change_member_role, name="change_member_role"),
    path("members/<uuid:code>/remove/", views.remove_member, name="remove_member"),
    path("members/<uuid:code>/error-emails/", views.set_member_error_emails, name="set_member_error_emails"),
    path("invitations/", views.invite_member, name="invite_member"),
    path("invitations/<uuid:code>/resend/", views.resend_invitation, name="resend_invitation"),
    path("invitations/<uuid:code>/revoke/", views.revoke_invitation, name="revoke_invitation"),
    # /i/<number>/systems/
    path("systems/", connections_views.systems, name="systems"),
    path("systems/add/", connections_views.add_system, name="add_system"),
    path("systems/<uuid:code>/", connections_views.module, name="module"),
    path("systems/<uuid:code>/credentials/", connections_views.connect_module, name="connect_module"),
    path("systems/<uuid:code>/authorize/", connections_views.authorize_module, name="authorize_module"),
    path("systems/<uuid:code>/login/", connections_views.oauth_module, name="oauth_module"),
    path("systems/<uuid:code>/test/", connections_views.test_module, name="test_module"),
    path("systems/<uuid:code>/settings/", connections_views.save_module_settings, name="save_module_settings"),
    path("systems/<uuid:code>/active/", connections_views.set_module_active, name="set_module_active"),
    path("systems/<uuid:code>/disconnect/", connections_views.disconnect_module, name="disconnect_module"),
    path("systems/<uuid:code>/remove/", connections_views.remove_module, name="remove_module"),
    path("systems/<uuid:code>/webhook/", connections_views.rotate_webhook_address, name="rotate_webhook_address"),
    # /i/<number>/schedule/
    path("schedule/", scheduling_views.schedule, name="schedule"),
    path("schedule/<uuid:code>/", scheduling_views.job_row, name="job_row"),
    path("schedule/<uuid:code>/run/", scheduling_views.run_job_now, name="run_job_now"),
    path("schedule/<uuid:code>/interval/", scheduling_views.set_job_interval, name="set_job_interval"),
    # /i/<number>/log/
    path("log/", transferlog_views.log, name="log"),
    path("log/retry-failed/", transferlog_views.retry_failed_transfers, name="retry_failed_transfers"),
    path("log/export.csv", transferlog_views.export_log, name="export_log"),
    path("log/<uuid:code>/", transferlog_views.transfer_detail, name="transfer_detail"),
    path("log/<uuid:code>/row/", transferlog_views.transfer_row, name="transfer_row"),
    path("log/<uuid:code>/retry/", transferlog_views.retry_transfer, name="retry_transfer"),
    path("log/<uuid:code>/handled/", transferlog_views.mark_handled, name="mark_handled"),
    path("log/<uuid:code>/handled/undo/", transferlog_views.unmark_handled, name="unmark_handled"),
    # /i/<number>/subscription/
    path("subscription/", billing_views.subscription, name="subscription"),
    path("subscription/billing/", billing_views.save_billing_info, name="save_billing_info"),
    path("subscription/card/", billing_views.save_card, name="save_card"),
    path("subscription/card/done/", billing_views.return_from_checkout, name="return_from_checkout"),
    path("subscription/packs/preview/", billing_views.preview_packs, name="preview_packs"),
    path("subscription/packs/", billing_views.buy_packs, name="buy_packs"),
    path("subscription/packs/<uuid:code>/confirm/", billing_views.confirm_pack, name="confirm_pack"),
    path("subscription/packs/<uuid:code>/back/", billing_views.return_from_bank, name="return_from_bank"),
    path("subscription/top-up/", billing_views.set_topup, name="set_topup"),
    path("subscription/plan/preview/", billing_views.preview_plan_change, name="preview_plan_change"),
    path("subscription/plan/", billing_views.change_plan, name="change_plan"),
    path("subscription/cancel/", billing_views.cancel_subscription, name="cancel_subscription"),
    # /i/<number>/connections/ (scheduling: when and how each connection runs)
    path("connections/", scheduling_views.connections, name="connections"),
    path("connections/<uuid:code>/", scheduling_views.update_connection, name="update_connection"),
]

urlpatterns = [
    path("", views.index, name="index"),
    path("healthz", views.healthz, name="healthz"),
    path("connect/<slug:kind>/credentials/", connections_views.take_credentials, name="take_credentials"),
    path("connect/<slug:kind>/return/", connections_views.oauth_return, name="oauth_return"),
    path("metrics", metrics.metrics, name="metrics"),  # Prometheus; staff and METRICS_ALLOWED_NETWORKS only
    path("accounts/", include("allauth.urls")),
    path("admin/login/", accounts.admin_login),  # staff sign in as everyone does, with the same limits
    path("admin/", admin.site.urls),
    # /integrations/
    path("integrations/new/", views.create_integration, name="create_integration"),
    # /i/<number>/ : everything inside one integration
    path("i/<number:number>/", include(tenant_urls)),
    # /hooks/<token>/ : shops post webhooks here, one token per module
    path("hooks/<str:token>/", intake.receive_webhook, name="receive_webhook"),
    # /stripe/webhook/ : Stripe's events about payments and subscriptions
    path("stripe/webhook/", billing_webhooks.receive_stripe_event, name="receive_stripe_event"),
    # /invitations/<token>/
    path("invitations/<str:token>/", views.invitation, name="invitation"),
    # /help/ : public, a page for each page of the dashboard
    path("help/", help.index, name="help"),
    path("help/<slug:page>/", help.page, name="help_page"),
]
