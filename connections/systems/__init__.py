"""The system catalogue. Each kind is a sub-package of the same shape: `client.py` (the system's API),
`transforms.py` (its records to and from connections/common.py), `forms.py` (credentials and settings),
and for webshops `webhooks.py` (signature verification). Adding a system means adding a folder and a line below.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Literal

from django import forms


@dataclass(frozen=True)
class System:
    kind: str
    label: str
    category: Literal["webshop", "accounting"]
    credentials_form: type[forms.Form]
    settings_form: type[forms.Form]
    default_settings: dict[str, Any]
    client: Callable[[Any], Any]
    transforms: ModuleType
    # Webshops: how their webhooks are verified and read (see shopify/webhooks.py).
    webhooks: ModuleType | None = None

    @property
    def posts_webhooks(self) -> bool:
        return self.webhooks is not None


# The kinds import System from this module, so they are imported after it is defined.
from connections.systems import economic, shopify  # noqa: E402

SYSTEMS: dict[str, System] = {system.kind: system for system in (shopify.SYSTEM, economic.SYSTEM)}
