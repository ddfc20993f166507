"""IEX's own webhook subscriptions. A shop connected by installing IEX's app (Shopify's OAuth flow) gets its webhooks
without the merchant copying anything: IEX subscribes the module's address, through the shop's API, to the topics
its webhook-driven connections need, and the shop signs them with IEX's app secret. A shop connected with the
merchant's own app is set up by hand, as its page says (the system's webhook_setup)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Collection, Iterable

from django.db.models import QuerySet

from connections.models import Connection, Module, Trigger
from connections.systems import Busy
from iex.lib import http
from iex.lib.secrets import DecryptionError

Subscribe = Callable[[Module, Collection[str], str], None]


def _subscriber(module: Module) -> Subscribe | None:
    """How IEX subscribes the module's address in its system, when the module was connected by installing IEX's
    app there; None when the merchant registers its webhooks by hand."""
    oauth = module.system.oauth
    if oauth is None or oauth.subscribe is None:
        return None
    try:
        return oauth.subscribe if module.get_credentials().get(oauth.marks) else None
    except DecryptionError:
        return None


def _driven(module: Module) -> QuerySet[Connection]:
    return module.outgoing.filter(trigger=Trigger.WEBHOOK)


def topics(module: Module, driven: Iterable[Connection]) -> list[str]:
    """The topics the `driven` connections (webhook-driven, from the module) need, with the events about the app
    itself (its uninstall) beside them; none for none."""
    hooks = module.system.webhooks
    if hooks is None:
        return []
    posted = set(hooks.TOPICS.values())
    # A flow the system posts no topic of is announced by another's (WooCommerce's refunds, by its orders)
    wanted = {c.entity if c.entity in posted else c.flow_def.announced_by for c in driven}
    if not wanted:
        return []
    return [topic for topic, entity in hooks.TOPICS.items() if entity in wanted or not entity]


def registered(module: Module, driven: Iterable[Connection] | None = None) -> list[str] | None:
    """The topics IEX subscribed the module's address to (those of its webhook-driven connections, `driven` if
    given); None when the merchant registers the module's webhooks by hand."""
    if _subscriber(module) is None:
        return None
    return topics(module, _driven(module) if driven is None else driven)


def subscribe(module: Module, replaces: str = "") -> str:
    """Make IEX's subscriptions to the module's address those its webhook-driven connections need now (none: they
    are taken away), and take away those at `replaces` (the address it had). Returns why the shop refused, or ""
    (also when the merchant registers the module's webhooks by hand: there is nothing for IEX to do)."""
    subscriber = _subscriber(module)
    if subscriber is None:
        return ""
    try:
        subscriber(module, topics(module, _driven(module)), replaces)
    except (http.HTTPError, Busy) as exc:
        return str(exc)
    return ""


def subscribe_or_schedule(module: Module, replaces: str = "") -> str:
    """`subscribe`; refused, the module's webhook-driven connections go back to their schedules (their jobs go on
    fetching, so nothing is missed) and what is left of IEX's subscriptions is taken away, if the shop lets IEX.
    Returns why the shop refused, or ""."""
    failure = subscribe(module, replaces)
    if failure:
        _driven(module).update(trigger=Trigger.SCHEDULE)
        subscribe(module, replaces)
    return failure


def unsubscribe(module: Module) -> None:
    """Take IEX's subscriptions away before the module is removed or disconnected (the shop would go on posting to
    an address that refuses them). A shop that does not answer now drops them itself once they keep failing."""
    subscriber = _subscriber(module)
    if subscriber is not None:
        with contextlib.suppress(http.HTTPError, Busy):
            subscriber(module, [], "")
