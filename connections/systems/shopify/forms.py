import re

from django import forms

from connections.systems import Settings

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
    # IEX's default: transfer paid and partially paid orders (support article 81904).
    "financial_states": ["paid", "partially_paid"],
    "fulfillment_states": [],
    "prices_include_vat": True,
    "api_version": "2025-01",
}


class CredentialsForm(forms.Form):
    shop_domain = forms.CharField(
        max_length=255, help_text="Your shop's myshopify.com address, e.g. nordic-bikes.myshopify.com."
    )
    access_token = forms.CharField(
        max_length=255,
        widget=forms.PasswordInput(render_value=False),
        help_text="Admin API access token of your custom app (starts with shpat_).",
    )
    webhook_secret = forms.CharField(
        max_length=255,
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="The app's API secret key; Shopify signs webhooks with it.",
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
        help_text="Orders in other states are skipped and logged as such.",
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
    api_version = forms.RegexField(regex=r"^\d{4}-\d{2}$", max_length=7, label="Admin API version")
