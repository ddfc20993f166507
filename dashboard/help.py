"""Help: a short page for each page of the dashboard (what it is for, what each status means, what to do when nothing
transfers), linked from every page's heading. Public: it is read before signing in, and without an integration."""

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from billing import stripe_api
from connections.systems import SYSTEMS
from dashboard.management.commands.seed_demo import BOOKS_CREDENTIALS, DEMO_EMAIL, SHOP_CREDENTIALS
from iex.models import ROLE_HELP

# The dashboard's pages in the menu's order: a help page's address (templates/help/<name>.html) and its title.
PAGES = {
    "home": "Home",
    "systems": "Systems",
    "schedule": "Schedule settings",
    "connections": "Connections",
    "subscription": "Subscription",
    "settings": "Settings",
    "log": "Log",
}

# The help page of the page a URL shows, by the URL's name: a form with errors shows its page again under the
# action's name (an invitation to an address already invited shows Settings).
FOR_URL_NAME = {
    "home": "home",
    "systems": "systems",
    "module": "systems",
    "connect_module": "systems",
    "save_module_settings": "systems",
    "schedule": "schedule",
    "connections": "connections",
    "subscription": "subscription",
    "save_billing_info": "subscription",
    "save_card": "subscription",
    "buy_packs": "subscription",
    "set_topup": "subscription",
    "settings": "settings",
    "invite_member": "settings",
    "log": "log",
    "transfer_detail": "log",
}


# /help/


@require_GET
def index(request: HttpRequest) -> HttpResponse:
    return render(request, "help/index.html", _context())


@require_GET
def page(request: HttpRequest, page: str) -> HttpResponse:
    if page not in PAGES:
        raise Http404("There is no help page of that name")
    return render(request, f"help/{page}.html", {**_context(), "page": page, "title": PAGES[page]})


def _context() -> dict:
    return {
        "pages": PAGES,
        "role_help": [(role.label, text) for role, text in ROLE_HELP.items()],
        "valid_hours": settings.INVITATION_VALID_HOURS,
        # Only on the embedded defaults (`make run`): a production site has no sandbox, and its help says nothing of one.
        "sandbox": _sandbox() if settings.DEBUG else None,
    }


def _sandbox() -> dict:
    """Where `make run`'s logins are: the demo login it prints, and the keys the sandbox's systems take when one is
    connected by hand (the same ones the demo integrations use), under the labels of each system's form."""
    keys = []
    for kind, credentials in {**SHOP_CREDENTIALS, **BOOKS_CREDENTIALS}.items():
        system = SYSTEMS[kind]
        form = system.credentials_form()
        keys.append(
            (system, [(form[name].label, value) for name, value in credentials.items() if name in form.fields])
        )
    return {
        "url": settings.SANDBOX_URL,
        "demo_email": DEMO_EMAIL,
        "keys": keys,
        "local_stripe": stripe_api.is_local_fake(),  # the test cards it takes, as the Subscription page says
    }
