from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.db.models import Q
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.defaultfilters import pluralize
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from connections.models import Connection, Module
from connections.systems import SYSTEMS
from iex.access import AuthedRequest, get_member, get_member_rw
from iex.lib import http
from iex.lib.queueing import publish_on_commit
from iex.lib.secrets import DecryptionError
from iex.models import Member
from transferlog.models import HeldFor, Transfer


def _module(member: Member, code: str) -> Module:
    return get_object_or_404(member.integration.modules, code=code)


def _back(request: AuthedRequest, default: str) -> HttpResponse:
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(target, {request.get_host()}, request.is_secure()):
        return redirect(target)
    return redirect(default)


# /i/<number>/systems/


@login_required
@require_GET
def systems(request: AuthedRequest, number: str) -> HttpResponse:
    member = get_member(request, number)
    modules = list(member.integration.modules.all())
    added = {m.kind for m in modules}
    catalogue = [system for kind, system in SYSTEMS.items() if kind not in added]
    return render(request, "connections/systems.html", {"modules": modules, "catalogue": catalogue})


def _price_changed(integration_id: int) -> None:
    """Each module is an item of the Stripe subscription: keep them in step, in the background."""
    publish_on_commit("billing.tasks.sync_subscription_items", integration_id)


@login_required
@require_POST
def add_system(request: AuthedRequest, number: str) -> HttpResponse:
    member = get_member_rw(request, number)
    kind = request.POST.get("kind", "")
    if kind not in SYSTEMS:
        messages.error(request, "Choose a system from the list.")
        return redirect("systems", number)
    with transaction.atomic():
        module, created = Module.objects.get_or_create(integration=member.integration, kind=kind)
        Connection.ensure_for(member.integration)
        if created:
            _price_changed(member.integration.pk)
    if created:
        messages.success(request, f"{module.system.label} added. Enter its credentials to connect it.")
    return redirect("module", number, module.code)


@login_required
@require_GET
def module(request: AuthedRequest, number: str, code: str) -> HttpResponse:
    member = get_member(request, number)
    mod = _module(member, code)
    return _render_module(request, mod)


def _render_module(
    request: AuthedRequest,
    mod: Module,
    credentials_form: forms.Form | None = None,
    settings_form: forms.Form | None = None,
    status: int = 200,
) -> HttpResponse:
    ctx = {
        "module": mod,
        "credentials_form": credentials_form or _credentials_form(request, mod),
        "settings_form": settings_form or mod.system.settings_form(initial=mod.settings_values(), module=mod),
        "connections": Connection.objects.filter(Q(source=mod) | Q(target=mod)).select_related("source", "target"),
    }
    return render(request, "connections/module.html", ctx, status=status)


def _secret_fields(form: forms.Form) -> list[str]:
    return [name for name, field in form.fields.items() if isinstance(field.widget, forms.PasswordInput)]


def _credentials_form(request: AuthedRequest, mod: Module, data: Any = None) -> forms.Form:
    initial: dict[str, Any] = {"base_url": mod.base_url}
    try:
        initial.update(mod.get_credentials())
    except DecryptionError:
        messages.error(
            request, "The saved credentials cannot be decrypted with the configured keys: enter them again."
        )
    form = mod.system.credentials_form(data, initial=initial)
    if mod.connected:
        for name in _secret_fields(form):
            form.fields[name].required = False
            form.fields[name].widget.attrs["placeholder"] = "Saved; leave empty to keep"
    return form


def _test(request: AuthedRequest, mod: Module) -> bool:
    try:
        answer = mod.client().test()
    except http.HTTPError as exc:
        messages.error(request, f"Test connection failed: {exc.message}")
        return False
    except (DecryptionError, KeyError):
        messages.error(request, "Test connection failed: the saved credentials are incomplete; enter them again.")
        return False
    messages.success(request, f"Test connection succeeded: {answer}")
    return True


@login_required
@require_POST
def connect_module(request: AuthedRequest, number: str, code: str) -> HttpResponse:
    member = get_member_rw(request, number)
    mod = _module(member, code)
    form = _credentials_form(request, mod, request.POST)
    if not form.is_valid():
        return _render_module(request, mod, credentials_form=form, status=400)
    values = dict(form.cleaned_data)
    mod.base_url = values.pop("base_url", "") or ""
    try:
        old = mod.get_credentials()
    except DecryptionError:
        old = {}  # unreadable with today's keys: only what was entered now is kept
    for name in _secret_fields(form):
        values[name] = values.get(name) or old.get(name, "")
    mod.set_credentials(values)
    mod.save(
        update_fields=["credentials", "connected_at", "base_url", "credentials_failed_at", "credentials_error"]
    )
    messages.info(request, f"Credentials for {mod.system.label} saved.")
    _test(request, mod)
    return redirect("module", number, mod.code)


@login_required
@require_POST
def test_module(request: AuthedRequest, number: str, code: str) -> HttpResponse:
    # Viewers may test: it changes nothing and is the first thing support asks for.
    member = get_member(request, number)
    mod = _module(member, code)
    if not mod.connected:
        messages.error(request, f"Enter the credentials of {mod.system.label} first.")
    else:
        _test(request, mod)
    return redirect("module", number, mod.code)


@login_required
@require_POST
def save_module_settings(request: AuthedRequest, number: str, code: str) -> HttpResponse:
    member = get_member_rw(request, number)
    mod = _module(member, code)
    form = mod.system.settings_form(request.POST, module=mod)
    if not form.is_valid():
        return _render_module(request, mod, settings_form=form, status=400)
    mod.settings = {k: str(v) if isinstance(v, Decimal) else v for k, v in form.cleaned_data.items()}
    mod.save(update_fields=["settings"])
    # What its settings could not book (a VAT rate) runs again with them.
    because = f"the settings of {mod.system.label} saved by {request.user.email}"
    released = Transfer.release_held(member.integration, because, HeldFor.SETTINGS)
    again = f" {released} held transfer{pluralize(released)} queued again." if released else ""
    messages.success(request, f"Settings of {mod.system.label} saved.{again}")
    return redirect("module", number, mod.code)


@login_required
@require_POST
def set_module_active(request: AuthedRequest, number: str, code: str) -> HttpResponse:
    member = get_member_rw(request, number)
    mod = _module(member, code)
    mod.active = request.POST.get("active") == "on"
    mod.save(update_fields=["active"])
    state = "active" if mod.active else "inactive: nothing moves to or from it"
    messages.success(request, f"{mod.system.label} is {state}.")
    return _back(request, mod.get_absolute_url())


@login_required
@require_POST
def disconnect_module(request: AuthedRequest, number: str, code: str) -> HttpResponse:
    member = get_member_rw(request, number)
    mod = _module(member, code)
    mod.disconnect()
    messages.success(
        request,
        f"{mod.system.label} is disconnected: its credentials are deleted and its connections switched off.",
    )
    return redirect("module", number, mod.code)


@login_required
@require_POST
def remove_module(request: AuthedRequest, number: str, code: str) -> HttpResponse:
    member = get_member_rw(request, number)
    mod = _module(member, code)
    label = mod.system.label
    with transaction.atomic():
        mod.delete()
        _price_changed(member.integration.pk)
    messages.success(request, f"{label} was removed with its connections. Its transfers stay in the log.")
    return redirect("systems", number)


@login_required
@require_POST
def rotate_webhook_address(request: AuthedRequest, number: str, code: str) -> HttpResponse:
    member = get_member_rw(request, number)
    mod = _module(member, code)
    mod.rotate_webhook_token()
    messages.warning(request, "The webhook address changed: update it in the shop, or its webhooks are refused.")
    return redirect("module", number, mod.code)
