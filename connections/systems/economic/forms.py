"""e-conomic's credentials and settings. What the settings number (layouts, payment terms, customer groups, product
groups, VAT zones) is chosen from the merchant's own agreement, read through the API, not typed in."""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django import forms
from django.conf import settings

from connections.systems import UNREADABLE, Settings
from connections.systems.economic.client import EconomicClient
from connections.systems.economic.transforms import Chart

if TYPE_CHECKING:
    from connections.models import Module

logger = logging.getLogger(__name__)

DOCUMENT_TYPES = [("draft", "Invoice draft"), ("booked", "Booked invoice"), ("order", "Order")]
CUSTOMER_FIELDS = [("email", "Email"), ("phone", "Phone"), ("vat_number", "VAT number")]
DISCOUNTS = [
    ("percentage", "On each line, as a discount percentage"),
    ("lines", "As discount lines, on the discount product"),
]
ROUNDING = [
    ("line_price", "In each line's unit price and discount: every line to the cent"),
    ("rounding_line", "On a rounding line (the rounding product), within the rounding threshold"),
]

# e-conomic's standard settings (support article 167165), and the VAT setup of a Danish agreement: VAT zones 1
# Domestic, 2 EU, 3 Abroad; product groups 1 with VAT (25 % at home) and 2 without.
DEFAULT_SETTINGS: Settings = {
    "document_type": "draft",
    "customer_match": "email",
    "allow_customer_create": True,
    "base_currency": "DKK",
    "home_country": "DK",
    "customer_group": 1,
    "payment_terms": 1,
    "layout": 19,
    "product_group": 1,
    "product_group_no_vat": 2,
    "zone_domestic": 1,
    "zone_eu_vat": 1,  # EU consumers the shop charged VAT (distance sales): booked with home VAT
    "zone_eu": 2,  # EU businesses, no VAT charged (reverse charge)
    "zone_abroad": 3,
    "sales_tax_group": "",  # foreign sales tax (US state tax): held until a product group is chosen for it
    "sales_tax_product": "SALESTAX",
    "discounts": "percentage",
    "rounding": "line_price",  # where what two decimals cannot express goes
    "shipping_product": "SHIPPING",
    "shipping_product_no_vat": "SHIPPING-NOVAT",
    "fee_product": "FEE",
    "fee_product_no_vat": "FEE-NOVAT",
    "discount_product": "DISCOUNT",
    "discount_product_no_vat": "DISCOUNT-NOVAT",
    "default_product": "MISC",
    "refund_product": "REFUND",
    "refund_product_no_vat": "REFUND-NOVAT",
    "rounding_product": "ROUNDING",
    "auto_create_products": True,
    "update_drafts": True,
    "rounding_threshold": "0.10",
    "correction_line": True,
}

# Settings that number something of the agreement: (the list it comes from, the number's field in it).
LISTS = {
    "layout": ("layouts", "layoutNumber"),
    "payment_terms": ("payment-terms", "paymentTermsNumber"),
    "customer_group": ("customer-groups", "customerGroupNumber"),
}
GROUPS = ("product_group", "product_group_no_vat")
ZONES = ("zone_domestic", "zone_eu_vat", "zone_eu", "zone_abroad")


class CredentialsForm(forms.Form):
    agreement_grant_token = forms.CharField(
        max_length=255,
        widget=forms.PasswordInput(render_value=False),
        label="Agreement grant token",
        help_text="The token e-conomic shows when you add the app to your agreement (its installation link).",
    )
    app_secret_token = forms.CharField(
        max_length=255,
        widget=forms.PasswordInput(render_value=False),
        label="App secret token",
        required=False,
        help_text="Only for a private app of your own in e-conomic's developer portal: the token it shows when "
        "made. Leave it empty for IEX's app.",
    )
    base_url = forms.URLField(
        assume_scheme="https",
        required=False,
        label="API address (advanced)",
        help_text="Leave empty for e-conomic itself (restapi.e-conomic.com).",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        own = self.fields["app_secret_token"]
        if not settings.ECONOMIC_APP_SECRET_TOKEN:  # no app of IEX's here: the grant is to the merchant's own app
            own.required, own.help_text = True, "The token your app in e-conomic's developer portal shows."


def _number(**kwargs: Any) -> forms.TypedChoiceField:
    return forms.TypedChoiceField(coerce=int, **kwargs)


def _product(label: str, help_text: str = "") -> forms.CharField:
    return forms.CharField(max_length=25, label=label, help_text=help_text)


class SettingsForm(forms.Form):
    document_type = forms.ChoiceField(choices=DOCUMENT_TYPES, label="Transfer orders as")
    customer_match = forms.ChoiceField(choices=CUSTOMER_FIELDS, label="Find the customer by")
    allow_customer_create = forms.BooleanField(required=False, label="Create the customer when none is found")
    base_currency = forms.RegexField(regex=r"^[A-Z]{3}$", max_length=3, label="Base currency")
    home_country = forms.RegexField(
        regex=r"^[A-Z]{2}$", max_length=2, label="Home country", help_text="ISO code: orders to it are domestic."
    )
    customer_group = _number(label="Customer group for new customers")
    payment_terms = _number(label="Payment terms")
    layout = _number(label="Layout")
    product_group = _number(
        label="Product group for products with VAT",
        help_text="Products made from orders go here when the shop taxes them at home. e-conomic works out a "
        "line's VAT from its product's group and the document's VAT zone: the rates are shown for each.",
    )
    product_group_no_vat = _number(label="Product group for products without VAT")
    zone_domestic = _number(label="VAT zone for customers at home")
    zone_eu_vat = _number(
        label="VAT zone for EU consumers charged VAT",
        help_text="EU orders the shop charged VAT on (distance sales to consumers).",
    )
    zone_eu = _number(label="VAT zone for EU businesses", help_text="EU orders without VAT (reverse charge).")
    zone_abroad = _number(label="VAT zone for customers outside the EU")
    sales_tax_group = forms.TypedChoiceField(
        coerce=int,
        empty_value="",
        required=False,
        label="Foreign sales tax (e.g. US state tax)",
        help_text="No VAT code books a tax like this: it goes on a line of its own, on the product group whose sales "
        "account you choose here. Without one, such orders are held.",
    )
    sales_tax_product = _product("Product number for foreign sales tax")
    discounts = forms.ChoiceField(choices=DISCOUNTS, label="Discounts appear")
    rounding = forms.ChoiceField(
        choices=ROUNDING,
        label="Cents two decimals cannot express",
        help_text="e-conomic takes unit prices and discounts with two decimals: a price with VAT taken out, or a "
        "discount spread over several items, may not come to the shop's amount exactly.",
    )
    shipping_product = _product("Product number for shipping with VAT")
    shipping_product_no_vat = _product("Product number for shipping without VAT")
    fee_product = _product("Product number for payment fees with VAT")
    fee_product_no_vat = _product("Product number for payment fees without VAT")
    discount_product = _product("Product number for discounts with VAT")
    discount_product_no_vat = _product("Product number for discounts without VAT")
    default_product = _product("Default product number", "For order lines without a SKU.")
    refund_product = _product(
        "Product number for refunded amounts with VAT",
        "An amount refunded without goods: its VAT is credited at the order's rates.",
    )
    refund_product_no_vat = _product("Product number for refunded amounts without VAT")
    rounding_product = _product("Product number for rounding corrections")
    auto_create_products = forms.BooleanField(required=False, label="Create missing products")
    update_drafts = forms.BooleanField(required=False, label="Update drafts when the order changes")
    rounding_threshold = forms.DecimalField(
        min_value=Decimal("0"),
        max_digits=6,
        decimal_places=2,
        label="Rounding threshold",
        help_text="Above this difference between e-conomic's total and the shop's, the invoice stays a draft "
        'and the log says "Error in totals validation".',
    )
    correction_line = forms.BooleanField(
        required=False, label="Add a correction line for differences within the threshold"
    )

    def __init__(self, *args: Any, module: Module | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        current = module.settings_values() if module is not None else {**DEFAULT_SETTINGS, **self.initial}
        agreement = _agreement(module)
        self.read_from_system = agreement is not None  # else: the saved numbers only, to keep or change later
        chart, lists = agreement or (None, {})
        for name, (path, _) in LISTS.items():
            self._choices(name, lists.get(path), current)
        for name in GROUPS:
            self._choices(name, [(n, chart.describe(n)) for n in chart.groups] if chart else None, current)
        for name in ZONES:
            zones = [(n, f"{label} (no. {n})") for n, label in chart.zones.items()] if chart else None
            self._choices(name, zones, current)
        sales_tax = self.fields["sales_tax_group"]
        assert isinstance(sales_tax, forms.ChoiceField)
        groups = [(n, _sales_tax_label(chart, n)) for n in chart.groups] if chart else []
        saved = current.get("sales_tax_group")
        if saved and not chart:
            groups = [(int(saved), f"Product group no. {saved}")]
        sales_tax.choices = [("", "None: hold such orders"), *groups]

    def _choices(self, name: str, found: list[tuple[int, str]] | None, current: dict) -> None:
        field = self.fields[name]
        assert isinstance(field, forms.ChoiceField)
        if found:
            field.choices = found
        else:
            saved = int(current[name])
            field.choices = [(saved, f"No. {saved} (connect e-conomic to choose from its list)")]


def _sales_tax_label(chart: Chart, group: int) -> str:
    accounts = sorted(set(chart.accounts.get(group, {}).values()))
    return f"{chart.groups[group]} (no. {group}): account {', '.join(accounts) or 'none'}"


def _agreement(module: Module | None) -> tuple[Chart, dict[str, list[tuple[int, str]]]] | None:
    """The agreement's VAT chart and lists, read from e-conomic (kept an hour), or None when it cannot be read."""
    if module is None or not module.connected:
        return None
    try:
        client = EconomicClient(module)
        return client.chart(), client.lists(LISTS.values())
    except UNREADABLE as exc:
        logger.info("could not read the agreement's lists: %s", exc)
        return None
