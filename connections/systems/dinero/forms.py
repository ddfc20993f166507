"""Dinero's credentials (the organisation and its API key) and settings. The accounts lines are booked on are chosen
from the organisation's own chart, read through the API, with the VAT each one books."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from django import forms

from connections.systems import UNREADABLE, Settings
from connections.systems.dinero.client import DineroClient
from connections.systems.dinero.transforms import UNITS, Chart

if TYPE_CHECKING:
    from connections.models import Module

logger = logging.getLogger(__name__)

DOCUMENT_TYPES = [("draft", "Invoice draft"), ("booked", "Booked invoice")]
CUSTOMER_FIELDS = [("email", "Email"), ("vat_number", "VAT number")]
PAYMENT_CONDITIONS = [
    ("Netto", "Net, a number of days"),
    ("CurrentMonthOut", "Current month out, plus a number of days"),
    ("NettoCash", "Cash"),
    ("Paid", "Paid (the shop took the payment)"),
]
LANGUAGES = [("da-DK", "Danish"), ("en-GB", "English")]

# A Danish organisation's standard chart: 1000 sales with 25 % VAT, 1100 without VAT, 1200 goods to EU businesses
# (reverse charge), 1250 sales outside the EU.
DEFAULT_SETTINGS: Settings = {
    "document_type": "draft",
    "customer_match": "email",
    "allow_customer_create": True,
    "home_country": "DK",
    "account_vat": 1000,  # sales with VAT at home: the account of every taxed line (its VAT code books the rate)
    "account_no_vat": 1100,  # sales without VAT at home, and the rounding line
    "account_eu": 1200,  # EU businesses, no VAT charged (reverse charge)
    "account_abroad": 1250,  # outside the EU, no VAT
    "payment_condition": "Paid",  # a webshop's customer has paid when the order is made
    "payment_days": 8,
    "language": "da-DK",
    "unit": "parts",
    "update_drafts": True,
    "rounding_threshold": "0.10",
    "correction_line": True,
}

ACCOUNTS = ("account_vat", "account_no_vat", "account_eu", "account_abroad")


class CredentialsForm(forms.Form):
    api_key = forms.CharField(
        max_length=255,
        widget=forms.PasswordInput(render_value=False),
        label="API key",
        help_text="From Dinero > Settings > Integrations > API key (your organisation's own key; needs Dinero Pro).",
    )
    organization_id = forms.IntegerField(
        min_value=1,
        required=False,
        label="Organisation ID",
        help_text="Shown at the bottom left in Dinero. Leave empty when the key opens one organisation.",
    )
    base_url = forms.URLField(
        assume_scheme="https",
        required=False,
        label="API address (advanced)",
        help_text="Leave empty for Dinero itself (api.dinero.dk). Set it to use a test server such as the IEX sandbox.",
    )


def _account(label: str, help_text: str = "") -> forms.TypedChoiceField:
    return forms.TypedChoiceField(coerce=int, label=label, help_text=help_text)


class SettingsForm(forms.Form):
    document_type = forms.ChoiceField(choices=DOCUMENT_TYPES, label="Transfer orders as")
    customer_match = forms.ChoiceField(choices=CUSTOMER_FIELDS, label="Find the customer by")
    allow_customer_create = forms.BooleanField(required=False, label="Create the customer when none is found")
    home_country = forms.RegexField(
        regex=r"^[A-Z]{2}$", max_length=2, label="Home country", help_text="ISO code: orders to it are domestic."
    )
    account_vat = _account(
        "Sales account for lines with VAT",
        "Dinero works out a line's VAT from its account's VAT code: the rate each account books is shown.",
    )
    account_no_vat = _account("Sales account for lines without VAT", "Also where a cent of rounding goes.")
    account_eu = _account("Sales account for EU businesses (reverse charge)")
    account_abroad = _account("Sales account for customers outside the EU")
    payment_condition = forms.ChoiceField(choices=PAYMENT_CONDITIONS, label="Payment condition")
    payment_days = forms.IntegerField(min_value=0, max_value=365, label="Days (for net and month out)")
    language = forms.ChoiceField(choices=LANGUAGES, label="Language of the documents")
    unit = forms.ChoiceField(choices=[(u, u) for u in UNITS], label="Unit of product lines")
    update_drafts = forms.BooleanField(required=False, label="Update drafts when the order changes")
    rounding_threshold = forms.DecimalField(
        min_value=0,
        max_value=1,
        decimal_places=2,
        label="Rounding threshold",
        help_text="In the order's currency.",
    )
    correction_line = forms.BooleanField(
        required=False,
        label="Add a rounding line",
        help_text="When Dinero's total differs from the shop's within the threshold, a line without VAT makes it equal.",
    )

    def __init__(self, *args: Any, module: Module | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        initial = {**DEFAULT_SETTINGS, **(kwargs.get("initial") or {})}
        chart = _chart(module)
        for name in ACCOUNTS:
            field = self.fields[name]
            assert isinstance(field, forms.ChoiceField)
            if chart is not None:
                field.choices = [(n, chart.label(n)) for n in chart.sales_accounts()]
            else:
                saved = int(initial[name])
                field.choices = [(saved, f"No. {saved} (connect Dinero to choose from its chart)")]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("payment_condition") in ("Paid", "NettoCash"):
            data["payment_days"] = 0  # Dinero takes no days with these
        return data


def _chart(module: Module | None) -> Chart | None:
    """The organisation's accounts and the VAT each books, read from Dinero (kept an hour), or None."""
    if module is None or not module.connected:
        return None
    try:
        return DineroClient(module).chart()
    except UNREADABLE as exc:
        logger.info("could not read the organisation's chart: %s", exc)
        return None
