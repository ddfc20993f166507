import logging

from allauth.account.models import EmailAddress
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db import connection, transaction
from django.db.models import Count
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from billing.models import Subscription, Usage
from billing.usage import banners
from dashboard.first_steps import steps as first_steps
from dashboard.forms import IntegrationForm, InviteForm, NotificationsForm, RoleForm
from dashboard.home import context as home_context
from iex.access import AuthedRequest, get_member, get_member_owner, get_member_rw, lock_member
from iex.celery import app as celery_app
from iex.lib import emails
from iex.models import ROLE_HELP, Integration, Invitation, Member, Role
from scheduling.models import Job
from transferlog.models import HeldFor, Status, Transfer

PENDING_INVITATION = "pending_invitation"

logger = logging.getLogger(__name__)


@login_required
@require_GET
def index(request: AuthedRequest) -> HttpResponse:
    """Send the user where they belong: a pending invitation, their last integration, or onboarding."""
    if token := request.session.pop(PENDING_INVITATION, None):
        return redirect("invitation", token)
    memberships = Member.objects.filter(user=request.user).select_related("integration")
    last = request.session.get("integration")
    for member in memberships:
        if member.integration.number == last:
            return redirect(member.integration)
    if first := memberships.first():
        return redirect(first.integration)
    return redirect("create_integration")


@login_required
@require_http_methods(["GET", "POST"])
def create_integration(request: AuthedRequest) -> HttpResponse:
    form = IntegrationForm(request.POST or None)
    trials = Subscription.objects.filter(
        integration__members__user=request.user,
        integration__members__role=Role.OWNER,
        status=Subscription.Status.TRIALING,
    )
    if request.method == "POST" and form.is_valid() and trials.count() >= settings.TRIALS_PER_ACCOUNT:
        form.add_error(
            None,
            f"You have {settings.TRIALS_PER_ACCOUNT} integrations in their free trial: subscribe to one of them (on "
            "its Subscription page) before you start another.",
        )
    if request.method == "POST" and form.is_valid():
        with transaction.atomic():
            integration = Integration.create_for(request.user, form.cleaned_data["name"])
            Subscription.of(integration, form.cleaned_data["plan"])
        messages.success(request, f"Integration {integration.name} created. Its number is {integration.number}.")
        return redirect(integration)
    first = not Member.objects.filter(user=request.user).exists()
    return render(request, "dashboard/integration_new.html", {"form": form, "first": first})


# /i/<number>/


@login_required
@require_GET
def home(request: AuthedRequest, number: str) -> HttpResponse:
    member = get_member(request, number)
    integration = member.integration
    modules = list(integration.modules.all())
    waits = _waits_by_reason(integration)
    ctx = {
        **banners(integration),
        **home_context(integration),
        # Systems that refuse IEX (or that IEX stopped calling): their transfers are held until they let IEX in.
        "refused": [
            (module, integration.transfers.filter(status=Status.HELD, held_for=HeldFor.access(module.pk)).count())
            for module in modules
            if module.credentials_failed_at is not None
        ],
        # Systems that stopped answering: their orders wait (connections/gate.py), and how many do.
        "silent": [
            (module, _waiting_for(waits, f"{module.system.label} has not answered since"))
            for module in modules
            if module.unreachable_since is not None
        ],
        # Systems whose rate limit holds transfers back: they wait for their turn in its budget.
        "budgeted": [
            (module, waiting)
            for module in modules
            if module.system.budget and (waiting := _waiting_for(waits, f"{module.system.label}'s rate budget"))
        ],
        "usage": Usage.of(integration),
        "first_steps": (first := first_steps(integration)),
        "steps_done": sum(step.done for step in first or ()),
        "member_count": integration.members.count(),
        "pending_invitations": integration.invitations.pending().filter(expires__gt=timezone.now()).count(),
    }
    return render(request, "dashboard/home.html", ctx)


def _waits_by_reason(integration: Integration) -> dict[str, int]:
    """How many of the integration's transfers wait to be tried again, by reason: one query for every system's
    banner, off the index of what is not done (a handful of reasons: a gate's says its system, not the record)."""
    retrying = integration.transfers.filter(status=Status.RETRYING).values_list("reason").annotate(n=Count("id"))
    return dict(retrying.order_by())


def _waiting_for(waits: dict[str, int], said: str) -> int:
    """Transfers waiting at a system's gate, as their reason says (connections/gate.py)."""
    return sum(n for reason, n in waits.items() if reason.startswith(said))


@login_required
@require_GET
def settings_page(request: AuthedRequest, number: str) -> HttpResponse:
    member = get_member(request, number)
    return _render_settings(request, member, InviteForm(roles=member.grantable_roles()))


def _render_settings(
    request: HttpRequest, member: Member, invite_form: InviteForm, status: int = 200
) -> HttpResponse:
    integration = member.integration
    members = list(integration.members.select_related("user").order_by("created"))
    owner_count = sum(1 for m in members if m.is_owner)
    ctx = {
        "members": [
            {"m": m, "removable": member.may_remove(m) and not (m.is_owner and owner_count == 1)} for m in members
        ],
        "owner_count": owner_count,
        "roles": Role.choices,
        "role_help": [(role.label, text) for role, text in ROLE_HELP.items()],
        "invitations": integration.invitations.pending().select_related("invited_by"),
        "modules": integration.modules.all(),
        "invite_form": invite_form,
        "valid_hours": settings.INVITATION_VALID_HOURS,
        "notifications_form": NotificationsForm(instance=member),
    }
    return render(request, "dashboard/settings.html", ctx, status=status)


@login_required
@require_POST
def set_integration_active(request: AuthedRequest, number: str) -> HttpResponse:
    member = get_member_rw(request, number)
    active = request.POST.get("active") == "on"
    if active and Subscription.of(member.integration).status == Subscription.Status.CANCELED:
        messages.error(
            request,
            "The subscription has ended. An owner can add a card on the Subscription page to subscribe again.",
        )
        return redirect("settings", number)
    member.integration.set_active(active, request.user)
    if active:
        messages.success(request, "The integration is active: connections transfer data again.")
        Transfer.release_held(member.integration, f"activation by {request.user.email}")
    # Deactivating needs no message: the inactive banner on every page says it.
    return redirect("settings", number)


@login_required
@require_POST
def save_notifications(request: AuthedRequest, number: str) -> HttpResponse:
    """A member's own notification settings: every member, viewers too, decides what they get."""
    member = get_member(request, number)
    form = NotificationsForm(request.POST, instance=member)
    if form.is_valid():
        # Only these two fields: a full save could bring back a member removed (or a role changed) meanwhile.
        form.save(commit=False).save(update_fields=["error_emails", "report_frequency"])
        messages.success(request, "Your notification settings are saved.")
    else:
        messages.error(request, "Choose one of the report frequencies.")
    return redirect(reverse("settings", args=[number]) + "#notifications")


@login_required
@require_POST
def set_member_error_emails(request: AuthedRequest, number: str, code: str) -> HttpResponse:
    """Owners choose which members get error emails; admins too, but not an owner's (ROLE_HELP)."""
    member = get_member_rw(request, number)
    target = get_object_or_404(member.integration.members.select_related("user"), code=code)
    if not member.may_manage(target):
        raise PermissionDenied("Only owners change an owner's error emails")
    target.error_emails = request.POST.get("error_emails") == "on"
    target.save(update_fields=["error_emails"])
    state = "get" if target.error_emails else "no longer get"
    messages.success(request, f"{target.user.email} will {state} error emails.")
    return redirect(reverse("settings", args=[number]) + "#members")


@login_required
@require_POST
def change_member_role(request: AuthedRequest, number: str, code: str) -> HttpResponse:
    member = get_member_owner(request, number)
    form = RoleForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose one of the roles owner, admin or viewer.")
        return redirect("settings", number)
    with transaction.atomic():
        if not lock_member(member).is_owner:
            raise PermissionDenied("Only an owner can change roles")
        other = get_object_or_404(member.integration.members.select_related("user"), code=code)
        role = form.cleaned_data["role"]
        if other.is_last_owner() and role != Role.OWNER:
            messages.error(request, "An integration needs at least one owner: make someone else owner first.")
            return redirect("settings", number)
        other.role = role
        other.save(update_fields=["role"])
    messages.success(request, f"{other.user.email} is now {other.get_role_display().lower()}.")
    return redirect("settings", number)


@login_required
@require_POST
def remove_member(request: AuthedRequest, number: str, code: str) -> HttpResponse:
    """Remove a member, or leave (anyone may remove themselves, viewers too), but never the last owner."""
    member = get_member(request, number)
    with transaction.atomic():
        actor = lock_member(member)
        other = get_object_or_404(member.integration.members.select_related("user"), code=code)
        if not actor.may_remove(other):
            raise PermissionDenied("Viewers cannot remove members, and only owners remove owners")
        if other.is_last_owner():
            messages.error(request, "The last owner cannot be removed: make someone else owner first.")
            return redirect("settings", number)
        leaving = other.pk == member.pk
        other.delete()
    if leaving:
        messages.success(request, f"You left {member.integration.name}.")
        request.session.pop("integration", None)
        return redirect("index")
    messages.success(request, f"{other.user.email} was removed and no longer has access.")
    return redirect("settings", number)


@login_required
@require_POST
def invite_member(request: AuthedRequest, number: str) -> HttpResponse:
    member = get_member_rw(request, number)
    integration = member.integration
    form = InviteForm(request.POST, roles=member.grantable_roles())
    if not form.is_valid():
        return _render_settings(request, member, form, status=400)
    email = form.cleaned_data["email"]
    issued = None
    with transaction.atomic():
        # The integration lock also keeps concurrent invites from slipping past the hourly limit together.
        if not lock_member(member).can_write:
            raise PermissionDenied("Viewers cannot invite")
        if integration.invitations_sent_last_hour() >= settings.INVITATIONS_PER_HOUR:
            form.add_error(None, TOO_MANY_INVITATIONS)
        elif Invitation.sent_by_last_day(request.user) >= settings.INVITATIONS_PER_DAY:
            form.add_error(None, TOO_MANY_INVITATIONS_TODAY)
        elif integration.members.filter(user__email__iexact=email).exists():
            form.add_error("email", f"{email} is already a member.")
        elif integration.invitations.pending().filter(email__iexact=email).exists():
            form.add_error("email", f"{email} is already invited: resend that invitation below.")
        elif (seats := _seats_left(integration)) is not None:
            form.add_error(None, seats)
        else:
            issued = Invitation.issue(integration, email, form.cleaned_data["role"], request.user)
    if issued is None:
        return _render_settings(request, member, form, status=400)
    _send_invitation(request, *issued)
    return redirect("settings", number)


def _seats_left(integration: Integration) -> str | None:
    """None while the plan has room for one more member (pending invitations count), else why not."""
    plan = Subscription.of(integration).plan
    pending = integration.invitations.pending().filter(expires__gt=timezone.now()).count()
    if integration.members.count() + pending < integration.member_limit():
        return None
    return (
        f"The {plan.name} plan has room for {integration.member_limit()} members, invitations included. Remove a member "
        "or revoke an invitation, or choose a bigger plan on the Subscription page."
    )


@login_required
@require_POST
def resend_invitation(request: AuthedRequest, number: str, code: str) -> HttpResponse:
    member = get_member_rw(request, number)
    integration = member.integration
    invitation = get_object_or_404(integration.invitations, code=code)
    with transaction.atomic():
        actor = lock_member(member)
        if not actor.can_write or invitation.role not in actor.grantable_roles():
            raise PermissionDenied("Only an owner can invite an owner")
        if integration.invitations_sent_last_hour() >= settings.INVITATIONS_PER_HOUR:
            messages.error(request, TOO_MANY_INVITATIONS)
            return redirect("settings", number)
        if Invitation.sent_by_last_day(request.user) >= settings.INVITATIONS_PER_DAY:
            messages.error(request, TOO_MANY_INVITATIONS_TODAY)
            return redirect("settings", number)
        issued = invitation.resend(request.user)
    if issued is None:
        messages.error(request, f"The invitation to {invitation.email} was accepted or revoked meanwhile.")
    else:
        _send_invitation(request, *issued)
    return redirect("settings", number)


@login_required
@require_POST
def revoke_invitation(request: AuthedRequest, number: str, code: str) -> HttpResponse:
    member = get_member_rw(request, number)
    invitation = get_object_or_404(member.integration.invitations, code=code)
    if invitation.role not in member.grantable_roles():
        raise PermissionDenied("Only an owner can revoke an invitation to become owner")
    if invitation.revoke():
        messages.success(request, f"The invitation to {invitation.email} was revoked.")
    else:
        messages.error(request, f"The invitation to {invitation.email} was already accepted or revoked.")
    return redirect("settings", number)


TOO_MANY_INVITATIONS = f"At most {settings.INVITATIONS_PER_HOUR} invitations can be sent an hour. Try again later."
TOO_MANY_INVITATIONS_TODAY = (
    f"You have sent {settings.INVITATIONS_PER_DAY} invitations in the last 24 hours, the most one person may. "
    "Try again tomorrow."
)


def _send_invitation(request: AuthedRequest, invitation: Invitation, token: str) -> None:
    """Email the link. The invitation is already saved: if mail fails, say so and let the user resend."""
    try:
        emails.send(
            "invitation",
            [invitation.email],
            {
                "invitation": invitation,
                "inviter": request.user.email,
                "url": invitation.url(token),
                "valid_hours": settings.INVITATION_VALID_HOURS,
            },
        )
    except Exception:
        logger.exception("invitation email to %s failed", invitation.email)
        messages.warning(
            request,
            f"The invitation to {invitation.email} is saved, but the email could not be sent. "
            "Use Resend to try again.",
        )
    else:
        messages.success(request, f"Invitation sent to {invitation.email}.")


# /invitations/<token>/


@never_cache
@require_http_methods(["GET", "POST"])
def invitation(request: HttpRequest, token: str) -> HttpResponse:
    """Accept an invitation. The link is public; accepting needs the invited address, signed in."""
    found = Invitation.find(token)
    if request.user.is_authenticated or found is None or found.status != "pending":
        # Signed in now (or the link is dead): the remembered link has done its job.
        request.session.pop(PENDING_INVITATION, None)
    if found is None or found.status != "pending":
        return _invitation_invalid(request, found)
    ctx: dict = {"invitation": found, "token": token}
    if not request.user.is_authenticated:
        # Remember the link across sign-up, email verification and sign-in; `index` brings the user back here.
        request.session[PENDING_INVITATION] = token
        ctx["account_exists"] = EmailAddress.objects.filter(email__iexact=found.email).exists()
        return render(request, "dashboard/invitation.html", ctx)
    has_address = EmailAddress.objects.filter(user=request.user, email__iexact=found.email, verified=True).exists()
    if not has_address:
        ctx["wrong_address"] = True
        return render(request, "dashboard/invitation.html", ctx, status=403)
    if request.method == "POST":
        accepted = found.accept(request.user)
        if accepted is None:  # expired, revoked or used since the page was shown
            found.refresh_from_db()
            return _invitation_invalid(request, found)
        member, joined = accepted
        role = member.get_role_display().lower()
        if joined:
            messages.success(request, f"Welcome to {member.integration.name}. You are {role}.")
        else:
            messages.info(request, f"You were already a member of {member.integration.name} ({role}).")
        return redirect(member.integration)
    return render(request, "dashboard/invitation.html", ctx)


def _invitation_invalid(request: HttpRequest, found: Invitation | None) -> HttpResponse:
    reason = found.status if found else "unknown"
    ctx = {"reason": reason, "invitation": found}
    return render(request, "dashboard/invitation_invalid.html", ctx, status=410 if found else 404)


# /healthz


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """200 when the database answers (all a web process needs: webhooks are stored, pages read), 503 otherwise; the
    broker is reported beside it, not failing the probe: while Redis is away intake still stores and answers, and
    a balancer taking every web host out of rotation would refuse what could be kept."""
    state = {"database": "ok", "broker": "ok"}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as exc:
        state["database"] = f"error: {type(exc).__name__}"
    try:
        with celery_app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
    except Exception as exc:
        state["broker"] = f"error: {type(exc).__name__}"
    ok = state["database"] == "ok"
    body: dict = {"status": ("ok" if state["broker"] == "ok" else "degraded") if ok else "error", **state}
    if state["database"] == "ok":
        # Reported, not failing the probe: a late job needs an operator, not a restart of this web process.
        body["late_jobs"] = Job.count_late()
    return JsonResponse(body, status=200 if ok else 503)
