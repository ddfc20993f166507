"""The first-run checklist on Home: the steps from a new integration to its first transfer, each ticked by what the
integration's rows say (nothing to tick by hand), each linking to the page where it is done. It goes away when the
first transfer is created."""

from __future__ import annotations

from dataclasses import dataclass, replace

from django.urls import reverse

from connections.models import Connection, Module
from iex.models import Integration
from transferlog.models import DailyCount, Transfer


@dataclass(frozen=True)
class Step:
    title: str
    done: bool
    url: str
    action: str  # the link's words, while the step is not done
    said: str  # what it means, in the product's words
    next: bool = False  # the first step not done: where to go now


def steps(integration: Integration) -> list[Step] | None:
    """The checklist, or None once the integration has created something (the first transfer is what it leads to)."""
    if DailyCount.objects.filter(integration=integration, created__gt=0).exists():
        return None
    number = integration.number
    modules = list(integration.modules.all())
    shop = next((m for m in modules if m.system.category == "webshop"), None)
    books = next((m for m in modules if m.system.category == "accounting"), None)
    orders = Connection.objects.filter(integration=integration, flow="orders").select_related("job").first()
    systems = reverse("systems", args=[number])
    connections = reverse("connections", args=[number])
    listed = [
        _system_step("shop", "webshop", shop, systems, "Shopify or WooCommerce: where the orders come from"),
        _system_step(
            "accounting system", "accounting", books, systems, "e-conomic or Dinero: where the invoices are made"
        ),
        Step(
            "Check the accounting settings",
            bool(books and books.settings),
            books.get_absolute_url() + "#settings" if books else systems,
            "Check the settings",
            "Which document an order becomes, and the VAT zones, layout and payment terms it is made with: chosen "
            "from your own lists once the system is connected. Saving them ticks this step.",
        ),
        Step(
            "Choose from which date orders are imported",
            orders is not None and hasattr(orders, "job") and orders.job.start_chosen,
            connections,
            "Choose the start date",
            "From now (the default), or the last days' orders too: each order created in the accounting system "
            "counts against this month's allowance.",
        ),
        Step(
            "Switch the orders connection on",
            bool(orders and orders.active),
            connections,
            "Switch it on",
            "On a schedule (every few minutes) or on the shop's webhooks.",
        ),
        Step(
            "See the first transfer",
            False,  # the checklist is gone once it is
            reverse("log", args=[number]),
            "Open the Log",
            "",
        ),
    ]
    first = next(i for i, step in enumerate(listed) if not step.done)
    listed[first] = replace(listed[first], next=True)
    if listed[-1].next:  # all set: say what the first transfer waits for
        listed[-1] = replace(listed[-1], said=_first_transfer(integration))
    return listed


def _system_step(name: str, category: str, module: Module | None, systems: str, which: str) -> Step:
    """Add the system and connect it: done when its last test passed (the badge says Connected)."""
    if module is None:
        return Step(f"Add your {name}", False, systems, f"Add your {name}", which)
    words, _ = module.status
    label = module.system.label
    if words == "Connected":
        return Step(f"Connect {label}", True, module.get_absolute_url(), "", f"{label} is connected.")
    said = (
        f"{label} is added but not connected: log in to it from its page, or enter its credentials."
        if words == "Not connected"
        else f"{label} says: {words}. Open its page to see why and connect it again."
    )
    return Step(f"Connect {label}", False, module.get_absolute_url(), f"Connect {label}", said)


def _first_transfer(integration: Integration) -> str:
    """What the last step waits for, as far as it got: nothing received yet, or why what came did not create."""
    latest = Transfer.objects.filter(integration=integration).order_by("-id").only("status", "reason").first()
    if latest is None:
        return (
            "Nothing has been received from the shop yet: new orders arrive at the next run, or when the shop posts "
            "them."
        )
    return f"The latest transfer is {latest.get_status_display().lower()}: {latest.reason or 'see the Log'}."
