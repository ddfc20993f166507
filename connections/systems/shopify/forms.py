from __future__ import annotations

import logging
import re
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django import forms

from connections.systems import UNREADABLE, Settings
from connections.systems.shopify.client import ShopifyClient

if TYPE_CHECKING:
    from connections.models import Module

logger = logging.getLogger(__name__)

FINANCIAL_STATES = [
    ("pending", "Pending"),
    ("authorized", "Authorized"),
    ("partially_paid", "Partially paid"),
    ("paid", "Paid"),
    ("partially_refunded", "Partially refunded"),
    ("refunded", "Refunded"),
    ("voided", "Voided"),
]
FULFILLMENT_STATES = [
    ("unfulfilled", "Unfulfilled"),
    ("partial", "Partially fulfilled"),
    ("fulfilled", "Fulfilled"),
]

DEFAULT_SETTINGS: Settings = {
    # IEX's default: transfer paid and partially paid orders (support article 81904), and the refunded ones: they were
    # sales too, an invoice that the refund's credit note corrects.
    "financial_states": ["paid", "partially_paid", "partially_refunded", "refunded"],
    "fulfillment_states": [],
    "prices_include_vat": True,
    "vat_rate": "25",  # percent: what taxable products are taxed at home (products carry no rate in Shopify)
    "api_version": "2025-01",
    "stock_location": "",  # the shop's primary location
}


# A shop's own address at Shopify, where its admin (and the page that installs apps) lives.
MYSHOPIFY_DOMAIN = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9\-]*\.myshopify\.com")


class InstallForm(forms.Form):
    """The shop IEX is installed in (oauth.py): Shopify's page for installing an app is at the shop's own address."""

    shop_domain = forms.CharField(
        max_length=255,
        label="Your shop's myshopify.com address",
        help_text="e.g. nordic-bikes.myshopify.com (Shopify admin > Settings > Domains).",
    )

    def clean_shop_domain(self) -> str:
        value = self.cleaned_data["shop_domain"].strip().lower()
        value = re.sub(r"^https?://", "", value).split("/")[0]
        if value and "." not in value:
            value = f"{value}.myshopify.com"  # the shop's name alone
        if not MYSHOPIFY_DOMAIN.fullmatch(value):
            raise forms.ValidationError(
                "Enter your shop's myshopify.com address, e.g. nordic-bikes.myshopify.com."
            )
        return value


class CredentialsForm(forms.Form):
    shop_domain = forms.CharField(
        max_length=255, help_text="Your shop's myshopify.com address, e.g. nordic-bikes.myshopify.com."
    )
    access_token = forms.CharField(
        max_length=255,
        widget=forms.PasswordInput(render_value=False),
        help_text="The Admin API access token of a custom app you made in your Shopify admin (starts with shpat_).",
    )
    webhook_secret = forms.CharField(
        max_length=255,
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="The app's API secret key; Shopify signs webhooks with it. After you change it, webhooks signed "
        "with the previous secret are still accepted for an hour, as Shopify may go on using it that long.",
    )
    base_url = forms.URLField(
        assume_scheme="https",
        required=False,
        label="API address (advanced)",
        help_text="Leave empty for Shopify itself. Set it to use a test server such as the IEX sandbox.",
    )

    def clean_shop_domain(self) -> str:
        value = self.cleaned_data["shop_domain"].strip().lower()
        value = re.sub(r"^https?://", "", value).rstrip("/")
        if not re.fullmatch(r"[a-z0-9][a-z0-9.-]*\.[a-z]{2,}", value):
            raise forms.ValidationError("Enter the shop's domain, e.g. nordic-bikes.myshopify.com.")
        return value

    def clean_access_token(self) -> str:
        return self.cleaned_data["access_token"].strip()


class SettingsForm(forms.Form):
    financial_states = forms.MultipleChoiceField(
        choices=FINANCIAL_STATES,
        widget=forms.CheckboxSelectMultiple,
        label="Transfer orders that are",
        help_text="Orders in other states are skipped and logged as such. Refunded orders were sales: their "
        "invoice and the refund's credit note together come to what the customer paid.",
    )
    fulfillment_states = forms.MultipleChoiceField(
        choices=FULFILLMENT_STATES,
        widget=forms.CheckboxSelectMultiple,
        required=False,
        label="Only when fulfillment is",
        help_text="Leave all unticked to transfer whatever the fulfillment.",
    )
    prices_include_vat = forms.BooleanField(
        required=False,
        label="Prices include VAT",
        help_text="Used when an order does not say itself (Shopify's taxes_included).",
    )
    vat_rate = forms.DecimalField(
        min_value=Decimal("0"),
        max_value=Decimal("100"),
        max_digits=5,
        decimal_places=2,
        label="VAT rate at home (%)",
        help_text="Shopify keeps no rate on a product, only whether it is taxable: products sent to the accounting "
        "system are taxed at this rate. Orders carry the rates the shop charged.",
    )
    api_version = forms.RegexField(regex=r"^\d{4}-\d{2}$", max_length=7, label="Admin API version")
    stock_location = forms.ChoiceField(
        required=False,
        label="Stock location",
        help_text="Where stock from the accounting system is written. The shop's primary location unless you choose.",
    )

    def __init__(self, *args: Any, module: Module | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["stock_location"]
        assert isinstance(field, forms.ChoiceField)
        field.choices = [("", "The shop's primary location"), *_locations(module)]


def _locations(module: Module | None) -> list[tuple[str, str]]:
    """The shop's locations, read from the shop when it is connected (nothing to choose from otherwise)."""
    if module is None or not module.connected:
        return []
    try:
        return [(str(loc["id"]), loc.get("name") or str(loc["id"])) for loc in ShopifyClient(module).locations()]
    except UNREADABLE as exc:
        logger.info("could not read the shop's locations: %s", exc)
        return []
