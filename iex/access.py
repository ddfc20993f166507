"""The one way into a tenant's data.

Every tenant view calls one of these first. A user who is not a member gets 404 whatever the URL (an outsider
cannot tell a foreign integration from a missing one); a member without the needed role gets 403.
"""

from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest

from iex.lib.logs import bind_log_context
from iex.models import Integration, Member


class AuthedRequest(HttpRequest):
    """The request of a view behind @login_required: its user is a real User."""

    user: User


def get_member(request: AuthedRequest, number: str) -> Member:
    """The signed-in user's membership of integration `number`, or 404."""
    member = (
        Member.objects.select_related("integration", "user")
        .filter(integration__number=number, user=request.user)
        .first()
    )
    if member is None:
        raise Http404("No such integration")
    bind_log_context(integration=number)  # the request's log lines say which integration (iex/lib/logs.py)
    request.member = member  # type: ignore[attr-defined]  # read by the tenant context processor
    if request.session.get("integration") != number:
        request.session["integration"] = number  # written only when it changes: no session UPDATE per page view
    return member


def get_member_rw(request: AuthedRequest, number: str) -> Member:
    """As get_member, and 403 for viewers: for every view that changes something."""
    member = get_member(request, number)
    if not member.can_write:
        raise PermissionDenied("Viewers cannot change this integration")
    return member


def get_member_owner(request: AuthedRequest, number: str) -> Member:
    """As get_member, and 403 for anyone but an owner: billing, roles, deleting."""
    member = get_member(request, number)
    if not member.is_owner:
        raise PermissionDenied("Only an owner can do this")
    return member


def lock_member(member: Member) -> Member:
    """Inside a transaction: lock the integration and re-read the acting membership.

    Role changes, removals and invitations of one integration run one at a time, and each re-checks
    its actor under the lock: a request that passed the access check just before its actor was demoted
    or removed must not act on the stale role, and two owners demoting each other at once must not
    leave the integration without an owner.
    """
    Integration.objects.select_for_update().filter(pk=member.integration_id).first()
    fresh = Member.objects.select_related("integration", "user").filter(pk=member.pk).first()
    if fresh is None:
        raise Http404("No such integration")
    return fresh
