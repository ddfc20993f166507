from django.http import HttpRequest

from iex.models import Member


def tenant(request: HttpRequest) -> dict:
    """The current membership (set by the access helper) and the user's others, for the menu and switcher."""
    member = getattr(request, "member", None)
    if member is None:
        return {}
    memberships = Member.objects.filter(user=member.user).select_related("integration")
    return {"member": member, "integration": member.integration, "memberships": memberships}
