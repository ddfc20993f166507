"""WooCommerce's credentials (the site and its REST API keys) and settings."""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django import forms

from connections.systems import Settings

if TYPE_CHECKING:
    from connections.models import Module

STATUSES = [
    ("pending", "Pending payment"),
    ("on-hold", "On hold"),
    ("processing", "Processing"),
    ("completed", "Completed"),
    ("refunded", "Refunded"),
    ("cancelled", "Cancelled"),
    ("failed", "Failed"),
]

DEFAULT_SETTINGS: Settings = {
    # Paid orders (processing, completed) and the refunded ones: they were sales too, an invoice that the refund's
    # credit note corrects. A cancelled or trashed order withdraws its document whatever this says.
    "statuses": ["processing", "completed", "refunded"],
    "prices_include_vat": True,
    "vat_rate": "25",  # percent: what taxable products are taxed at home (for products sent to the books)
}


class CredentialsForm(forms.Form):
    site_url = forms.URLField(
        assume_scheme="https",
        label="Site address",
        help_text="Your shop's address, e.g. https://nordic-bikes.dk.",
    )
    consumer_key = forms.RegexField(
        regex=r"^ck_\w+$",
        max_length=80,
        label="Consumer key",
        help_text="From WooCommerce > Settings > Advanced > REST API > Add key, with Read/Write permissions "
        "(read only works for orders and products, not for stock).",
        error_messages={"invalid": "A consumer key starts with ck_ (the secret, with cs_, goes below)."},
    )
    consumer_secret = forms.RegexField(
        regex=r"^cs_\w+$",
        max_length=80,
        widget=forms.PasswordInput(render_value=False),
        label="Consumer secret",
        error_messages={"invalid": "A consumer secret starts with cs_."},
    )
    webhook_secret = forms.CharField(
        max_length=255,
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="The secret you give each webhook in WooCommerce; it signs what WooCommerce posts. After you "
        "change it, webhooks signed with the previous secret are still accepted for an hour.",
    )
    base_url = forms.URLField(
        assume_scheme="https",
        required=False,
        label="API address (advanced)",
        help_text="Leave empty for the site itself. Set it to use a test server such as the IEX sandbox.",
    )

    def clean_site_url(self) -> str:
        value = self.cleaned_data["site_url"].rstrip("/")
        if not value.startswith("https://"):
            raise forms.ValidationError(
                "WooCommerce accepts REST API keys over HTTPS only: enter the https:// address of the shop."
            )
        return value


class SettingsForm(forms.Form):
    statuses = forms.MultipleChoiceField(
        choices=STATUSES,
        widget=forms.CheckboxSelectMultiple,
        label="Transfer orders that are",
        help_text="Orders in other states are skipped and logged as such. Refunded orders were sales: their "
        "invoice and the refund's credit note together come to what the customer paid.",
    )
    prices_include_vat = forms.BooleanField(
        required=False,
        label="Catalogue prices include VAT",
        help_text="As in WooCommerce > Settings > Tax. Orders say their own amounts; this is for products sent "
        "to the accounting system.",
    )
    vat_rate = forms.DecimalField(
        min_value=Decimal("0"),
        max_value=Decimal("100"),
        max_digits=5,
        decimal_places=2,
        label="VAT rate at home (%)",
        help_text="Products sent to the accounting system are taxed at this rate (WooCommerce's standard rate).",
    )

    def __init__(self, *args: Any, module: Module | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
