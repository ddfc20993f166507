from django.contrib import admin
from django.urls import include, path, register_converter

from iex import views


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
    path("members/<uuid:code>/role/", views.member_role, name="member_role"),
    path("members/<uuid:code>/remove/", views.member_remove, name="member_remove"),
    path("invitations/", views.invite, name="invite"),
    path("invitations/<uuid:code>/resend/", views.invitation_resend, name="invitation_resend"),
    path("invitations/<uuid:code>/revoke/", views.invitation_revoke, name="invitation_revoke"),
]

urlpatterns = [
    path("", views.index, name="index"),
    path("healthz", views.healthz, name="healthz"),
    path("accounts/", include("allauth.urls")),
    path("admin/", admin.site.urls),
    # /integrations/
    path("integrations/new/", views.integration_new, name="integration_new"),
    # /i/<number>/ : everything inside one integration
    path("i/<number:number>/", include(tenant_urls)),
    # /invitations/<token>/
    path("invitations/<str:token>/", views.invitation, name="invitation"),
]
