import json
import secrets
from decimal import Decimal
from typing import Any, cast

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import redirect_to_login
from django.core import signing
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import transaction
from django.db.models import Q
from django.http import Http404, HttpRequest, HttpResponse, QueryDict
from django.shortcuts import get_object_or_404, redirect, render
from django.template.defaultfilters import pluralize
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from connections import subscriptions
from connections.models import Connection, Module
from connections.systems import SYSTEMS, Busy, System
from iex.access import AuthedRequest, get_member, get_member_owner, get_member_rw
from iex.lib import http
from iex.lib.queueing import publish_on_commit
from iex.lib.secrets import DecryptionError, decrypt, encrypt
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
        # On the embedded defaults (`make run`) a system starts out pointed at the sandbox that runs beside it.
        sandbox = f"{settings.SANDBOX_URL}/{kind}" if settings.DEBUG else ""
        module, created = Module.objects.get_or_create(
            integration=member.integration, kind=kind, defaults={"base_url": sandbox}
        )
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
    # Back from the system's own page (authorize_module): it says whether the merchant let IEX in.
    if request.GET.get("success") == "1":
        messages.success(request, f"{mod.system.label} says it gave IEX a key: test the connection to be sure.")
    elif request.GET.get("success") == "0":
        messages.error(request, f"Access was not granted in {mod.system.label}: nothing changed.")
    return _render_module(request, mod)


def _render_module(
    request: AuthedRequest,
    mod: Module,
    credentials_form: forms.Form | None = None,
    settings_form: forms.Form | None = None,
    login_form: forms.Form | None = None,
    status: int = 200,
    typed: str = "",
) -> HttpResponse:
    oauth = mod.system.oauth
    try:
        saved = mod.get_credentials()
    except DecryptionError:
        saved = {}
    # The system's login lets IEX in (OAuth), when this installation is registered with it as an app.
    can_log_in = oauth is not None and oauth.available()
    if login_form is None and oauth is not None and oauth.asks is not None:
        login_form = oauth.asks(prefix=LOGIN, initial=saved)
    by_login = oauth is not None and bool(saved.get(oauth.marks))
    credentials_form = credentials_form or _credentials_form(request, mod)
    ctx = {
        "module": mod,
        "credentials_form": credentials_form,
        "can_log_in": can_log_in,
        "login_form": login_form,
        "login_button": (oauth and oauth.button) or f"Connect with {mod.system.label}",
        "connected_by_login": by_login,
        # Entering credentials by hand is the alternative to the login, shown open when it is what is used (or
        # what needs correcting).
        "by_hand_open": not can_log_in or credentials_form.errors or (mod.connected and not by_login),
        # Secrets typed into a form with errors wait under this key (connect_module).
        "typed": typed,
        "settings_form": settings_form or mod.system.settings_form(initial=mod.settings_values(), module=mod),
        "connections": Connection.objects.filter(Q(source=mod) | Q(target=mod)).select_related("source", "target"),
        # The webhooks IEX registered in the system itself (None: the merchant registers them, as the system says)
        "subscribed": subscriptions.registered(mod),
        # The system's own page can give IEX the credentials only when it can post them to IEX over HTTPS.
        "can_authorize": mod.system.authorize is not None and settings.SITE_URL.startswith("https://"),
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
    if not settings.API_ADDRESSES:
        form.fields.pop("base_url", None)  # production: the systems' own addresses (a shop's is its site address)
    if mod.connected:
        for name in _secret_fields(form):
            form.fields[name].required = False
            if initial.get(name):
                form.fields[name].widget.attrs["placeholder"] = "Saved; leave empty to keep"
    return form


def _test(request: AuthedRequest, mod: Module) -> bool:
    """Test the connection, say how it went, and note it on the module (its heading and the Systems list say it)."""
    try:
        client = mod.client()
        answer = client.test()
        account = client.account()
    except http.HTTPError as exc:
        failure = _failure(mod, exc)
        if isinstance(exc, http.PermanentError) and exc.status in (401, 403):
            mod.credentials_refused(failure)  # its held transfers stay held (in IEX's words, as said here)
    except ValueError:  # an answer, but not JSON: not the system's API
        failure = f"the address answered, but not as {mod.system.label} does"
    except Busy as exc:  # its account's gate: the rate budget is spent, or it does not answer
        messages.error(request, f"Test connection could not be made now: {exc}")
        return False
    except (DecryptionError, KeyError):
        failure = "the saved credentials are incomplete; enter them again."
    else:
        mod.tested()
        mod.identified(account)  # what IEX made in this account before comes back to this module
        messages.success(request, f"Test connection succeeded: {answer}")
        _let_in(request, mod)
        return True
    mod.tested(failure)
    messages.error(request, f"Test connection failed: {failure}")
    return False


def _failure(mod: Module, exc: http.HTTPError) -> str:
    """What a failed test says: IEX's own words, never the answering server's (an address entered by a merchant
    must not show them what a server says, nor which of its ports are open)."""
    label, status = mod.system.label, exc.status
    if not exc.remote:  # IEX's own words, but one for every way of not reaching an address
        return (
            f"could not reach {label} at this address"
            if exc.message.startswith("Could not reach")
            else exc.message
        )
    if status in (401, 403):
        return f"{label} refused the credentials ({status}): check them"
    if status == 404:
        return f"nothing {label} knows answered at this address ({status}): check it"
    if status == 429:
        return f"{label} asks IEX to slow down (429): test again in a minute"
    if status and status >= 500:
        return f"{label} answered with an error ({status}): test again later"
    return f"{label} refused the request ({status})"


def _let_in(request: AuthedRequest, mod: Module) -> None:
    """The system answered a test: IEX calls it again, and the transfers held until it let IEX in go, oldest first."""
    Module.objects.filter(pk=mod.pk).exclude(credentials_failed_at=None).update(
        credentials_failed_at=None, credentials_error=""
    )
    mod.gate.forgive()
    because = f"a test of {mod.system.label} by {request.user.email}"
    if released := Transfer.release_held(mod.integration, because, HeldFor.access(mod.pk)):
        messages.info(request, f"{released} held transfer{pluralize(released)} queued again.")


@sensitive_post_parameters()
@sensitive_variables("values", "old", "kept", "form", "data")
@login_required
@require_POST
def connect_module(request: AuthedRequest, number: str, code: str) -> HttpResponse:
    member = get_member_rw(request, number)
    mod = _module(member, code)
    data = _with_typed(request, mod)
    form = _credentials_form(request, mod, data)
    if not form.is_valid():
        return _render_module(
            request, mod, credentials_form=form, status=400, typed=_keep_typed(request, mod, form)
        )
    values = dict(form.cleaned_data)
    address = values.pop("base_url", "") or ""
    try:
        old = mod.get_credentials()
    except DecryptionError:
        old = {}  # unreadable with today's keys: only what was entered now is kept
    for name in _secret_fields(form):
        values[name] = values.get(name) or old.get(name, "")
    # What the form does not show (a refresh token a system's login gave) is kept, for the same address only; the
    # login's mark only until the credential it gave is typed over (what was typed is then what IEX uses).
    kept = old if address == mod.base_url else {}
    mark = mod.system.oauth.marks if mod.system.oauth else ""
    if any(data.get(name) for name in _secret_fields(form) if form.base_fields[name].required):
        kept = {name: value for name, value in kept.items() if name != mark}
    mod.base_url = address
    mod.set_credentials({**kept, **values})
    mod.save_credentials()
    messages.info(request, f"Credentials for {mod.system.label} saved.")
    _test(request, mod)
    return redirect("module", number, mod.code)


TYPED_SALT = "iex.connections.typed"
TYPED_SECONDS = 600  # secrets typed into a form with errors wait this long for it to be sent again
TYPED_PLACEHOLDER = "Unchanged: what you typed is kept unless you enter another"


@sensitive_variables("typed", "data")
def _with_typed(request: AuthedRequest, mod: Module) -> QueryDict:
    """The posted credentials, with the secrets typed into them before a form error where they were sent empty this
    time (the page showed them as unchanged). What waited is used once: a new error keeps it again."""
    data, key = request.POST.copy(), f"{TYPED_SALT}:{request.POST.get('typed', '')}"
    stored = cache.get(key) if request.POST.get("typed") else None
    try:
        typed = json.loads(decrypt(stored)) if stored else {}
    except DecryptionError:  # the keys changed meanwhile
        typed = {}
    if typed.get("module") == str(mod.code) and typed.get("user") == request.user.pk:
        cache.delete(key)
        for name, value in typed["values"].items():
            data[name] = data.get(name) or value
    return data


@sensitive_variables("typed")
def _keep_typed(request: AuthedRequest, mod: Module, form: forms.Form) -> str:
    """Keep the secrets typed into a form with errors a few minutes, encrypted, for this user and module: they are
    never shown again, so the page says they are kept, and sending the form again without them uses them. The key
    they wait under ("" when none were typed)."""
    typed = {name: form.data[name] for name in _secret_fields(form) if form.data.get(name)}
    if not typed:
        return ""
    key = secrets.token_urlsafe(16)
    kept = {"module": str(mod.code), "user": request.user.pk, "values": typed}
    cache.set(f"{TYPED_SALT}:{key}", encrypt(json.dumps(kept)), TYPED_SECONDS)
    for name in typed:
        form.fields[name].widget.attrs["placeholder"] = TYPED_PLACEHOLDER
    return key


# --- connecting on the system's own page ----------------------------------------------------------------------

CONNECT_SALT = "iex.connections.authorize"
# The prefix of what a system's login asks first (a Shopify shop's address), on the page beside its credentials
LOGIN = "login"
CONNECT_SECONDS = 3600  # the merchant has an hour on the system's page
ANSWER_SECONDS = 600  # an OAuth answer waits this long for the browser's own request (after signing in, say)
NOT_ASKED = (
    "This is not an answer IEX asked for in this browser, or it was taken already: connect {} again from its page "
    "in IEX.\n"
)


def _state(mod: Module, flow: str, **asked: Any) -> str:
    """IEX's state for the system's page: which module asked in which flow (and what else it needs), signed, and
    good for one answer within the hour."""
    once = secrets.token_urlsafe(16)
    cache.set(f"{CONNECT_SALT}:{once}", str(mod.code), CONNECT_SECONDS)
    described = {"module": str(mod.code), "flow": flow, "once": once, **asked}
    return signing.dumps(described, salt=CONNECT_SALT, compress=True)


def _signed(state: str, flow: str, **by: Any) -> dict[str, Any] | None:
    """What IEX asked for in `flow` (`by` whom) with this state; None when IEX did not give it so."""
    try:
        asked = signing.loads(state, salt=CONNECT_SALT, max_age=CONNECT_SECONDS)
    except signing.BadSignature:
        return None
    if asked.get("flow") != flow or any(asked.get(name) != value for name, value in by.items()):
        return None
    return dict(asked)


def _asked(state: str, flow: str, **by: Any) -> dict[str, Any] | None:
    """What IEX asked for with this state, which is used up; None when IEX did not give it so, or it was used."""
    asked = _signed(state, flow, **by)
    if asked is None:
        return None
    once = f"{CONNECT_SALT}:{asked.get('once')}"
    if cache.get(once) != asked.get("module") or not cache.delete(once):
        return None
    return asked


@login_required
@require_POST
def authorize_module(request: AuthedRequest, number: str, code: str) -> HttpResponse:
    """Send the merchant to the system's own page to let IEX in (WooCommerce's key generation); the system posts the
    credentials to `take_credentials`, and sends the browser back to the module's page."""
    member = get_member_rw(request, number)
    mod = _module(member, code)
    if mod.system.authorize is None:
        raise Http404
    site = (request.POST.get("site_url") or "").strip().rstrip("/")
    try:
        URLValidator(schemes=["https"])(site)
    except ValidationError:
        messages.error(request, f"Enter the https:// address of your {mod.system.label} shop.")
        return redirect("module", number, mod.code)
    callback = settings.SITE_URL + reverse("take_credentials", args=[mod.kind])
    back = settings.SITE_URL + reverse("module", args=[number, mod.code])
    return redirect(mod.system.authorize.url(site, _state(mod, "authorize", site=site), back, callback))


@sensitive_variables("credentials", "kept")
@csrf_exempt
@require_POST
def take_credentials(request: HttpRequest, kind: str) -> HttpResponse:
    """The system's post of the credentials a merchant let IEX have (see authorize_module). It must answer 200 for the
    system to keep them."""
    system = SYSTEMS.get(kind)
    if system is None or system.authorize is None:
        raise Http404
    try:
        state, credentials = system.authorize.keys(request.body)
    except ValueError:
        state, credentials = "", {}
    asked = _asked(state, "authorize")
    if asked is None:
        return HttpResponse("These are not credentials IEX asked for (or they were given already)\n", status=400)
    mod = Module.objects.filter(code=asked["module"], kind=kind).first()
    if mod is None:
        return HttpResponse("The system they were asked for is no longer there\n", status=404)
    try:
        kept = mod.get_credentials()
    except DecryptionError:
        kept = {}
    mod.set_credentials({**kept, "site_url": asked["site"], **credentials})
    mod.base_url = ""  # the keys are the site's: never sent to another API address set before
    mod.save_credentials()
    return HttpResponse("OK\n")


@login_required
@require_POST
def oauth_module(request: AuthedRequest, number: str, code: str) -> HttpResponse:
    """Send the merchant to the system's login to let IEX in (OAuth 2.0's authorization-code flow, or a flow shaped
    like it), with what it asks first (the address of a Shopify shop, where its page is)."""
    member = get_member_rw(request, number)
    mod = _module(member, code)
    oauth = mod.system.oauth
    if oauth is None or not oauth.available():
        raise Http404
    asked: dict[str, str] = {}
    if oauth.asks is not None:
        form = oauth.asks(request.POST, prefix=LOGIN)
        if not form.is_valid():
            return _render_module(request, mod, login_form=form, status=400)
        asked = form.cleaned_data
    # The answer is taken only in this user's browser, and checked against what was asked.
    state = _state(mod, "oauth", user=request.user.pk, asked=asked)
    return redirect(oauth.url(mod, state, _oauth_return_url(mod.kind), asked))


def _oauth_return_url(kind: str) -> str:
    return settings.SITE_URL + reverse("oauth_return", args=[kind])


@sensitive_post_parameters()
@csrf_exempt
@require_http_methods(["GET", "POST"])
def oauth_return(request: HttpRequest, kind: str) -> HttpResponse:
    """Where the system sends the merchant's browser back with a code (or an error) and IEX's state. A system that
    POSTs it (Dinero's form_post) does so from its own site, so the browser sends no session cookie with it: the
    answer is kept a few minutes under a key of its own, and the browser is sent on to a GET of this address, which
    carries the session, to take it."""
    system = SYSTEMS.get(kind)
    if system is None or system.oauth is None:
        raise Http404
    here = reverse("oauth_return", args=[kind])
    if request.method == "POST":
        answer = {name: request.POST.get(name, "")[:4096] for name in (system.oauth.code, "state", "error")}
        if _signed(answer["state"], "oauth") is None:
            return HttpResponse(
                NOT_ASKED.format(system.label), status=400, content_type="text/plain; charset=utf-8"
            )
        key = secrets.token_urlsafe(16)
        cache.set(f"{CONNECT_SALT}:answer:{key}", answer, ANSWER_SECONDS)
        return redirect(f"{here}?answer={key}")
    if not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    return _take_answer(cast(AuthedRequest, request), system, kind)


@sensitive_variables("answer", "credentials")
def _take_answer(request: AuthedRequest, system: System, kind: str) -> HttpResponse:
    """The signed-in merchant's answer from the system: the code exchanged for credentials, kept on the module."""
    oauth = system.oauth
    assert oauth is not None
    if key := request.GET.get("answer", ""):
        answer = cache.get(f"{CONNECT_SALT}:answer:{key}") or {}
    else:
        answer = request.GET.dict()  # all of it: the system may have signed it (Shopify's hmac)
    asked = _asked(answer.get("state", ""), "oauth", user=request.user.pk)
    if key and asked:
        cache.delete(f"{CONNECT_SALT}:answer:{key}")
    if asked is None:
        return HttpResponse(NOT_ASKED.format(system.label), status=400, content_type="text/plain; charset=utf-8")
    mod = get_object_or_404(Module.objects.select_related("integration"), code=asked["module"], kind=kind)
    get_member_rw(request, mod.integration.number)  # may still change it
    if answer.get("error") or not answer.get(oauth.code):
        messages.error(
            request,
            f"{system.label} did not let IEX in ({answer.get('error') or f'no {oauth.code}'}): nothing changed.",
        )
        return redirect(mod.get_absolute_url())
    entered = asked.get("asked", {})
    if oauth.verify is not None and (wrong := oauth.verify(answer, entered)):
        messages.error(request, f"IEX did not take this answer as {system.label}'s: {wrong}. Nothing changed.")
        return redirect(mod.get_absolute_url())
    try:
        credentials = oauth.exchange(mod, answer[oauth.code], _oauth_return_url(kind), entered)
    except (http.HTTPError, Busy) as exc:
        messages.error(request, f"Connecting {system.label} failed: {exc}. Nothing changed.")
        return redirect(mod.get_absolute_url())
    mod.set_credentials(credentials)
    mod.save_credentials()
    messages.success(request, f"{system.label} let IEX in through your login.")
    _test(request, mod)
    # Installed, IEX's app registers the webhooks the module's webhook-driven connections need itself.
    if failure := subscriptions.subscribe_or_schedule(mod):
        messages.error(
            request,
            f"IEX could not register its webhooks in {system.label}: {failure}. Its webhook-driven connections run "
            "on a schedule now.",
        )
    return redirect(mod.get_absolute_url())


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
    subscriptions.unsubscribe(mod)
    mod.disconnect()
    messages.success(
        request,
        f"{mod.system.label} is disconnected: its credentials are deleted and its connections switched off.",
    )
    return redirect("module", number, mod.code)


@login_required
@require_POST
def remove_module(request: AuthedRequest, number: str, code: str) -> HttpResponse:
    member = get_member_owner(request, number)  # it changes the subscription's price (ROLE_HELP)
    mod = _module(member, code)
    label = mod.system.label
    subscriptions.unsubscribe(mod)
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
    before = mod.webhook_url
    mod.rotate_webhook_token()
    label = mod.system.label
    if subscriptions.registered(mod) is None:
        messages.warning(
            request, "The webhook address changed: update it in the shop, or its webhooks are refused."
        )
    elif failure := subscriptions.subscribe_or_schedule(mod, replaces=before):
        messages.error(
            request,
            f"The webhook address changed, but IEX could not move its webhooks in {label} to it: {failure}. "
            "Its webhook-driven connections run on a schedule now.",
        )
    else:
        messages.success(request, f"The webhook address changed: IEX moved its webhooks in {label} to it.")
    return redirect("module", number, mod.code)
