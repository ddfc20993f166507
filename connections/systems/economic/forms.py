from decimal import Decimal

from django import forms

from connections.systems import Settings

DOCUMENT_TYPES = [("draft", "Invoice draft"), ("booked", "Booked invoice"), ("order", "Order")]
CUSTOMER_FIELDS = [("email", "Email"), ("phone", "Phone"), ("vat_number", "VAT number")]

# e-conomic's standard settings (support article 167165).
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
    "shipping_product": "SHIPPING",
    "fee_product": "FEE",
    "discount_product": "DISCOUNT",
    "default_product": "MISC",
    "rounding_product": "ROUNDING",
    "auto_create_products": True,
    "update_drafts": True,
    "rounding_threshold": "0.10",
    "correction_line": True,
}


class CredentialsForm(forms.Form):
    app_secret_token = forms.CharField(
        max_length=255,
        widget=forms.PasswordInput(render_value=False),
        label="App secret token",
        help_text="Sent as X-AppSecretToken.",
    )
    agreement_grant_token = forms.CharField(
        max_length=255,
        widget=forms.PasswordInput(render_value=False),
        label="Agreement grant token",
        help_text="Given when you granted IEX access to your agreement; sent as X-AgreementGrantToken.",
    )
    base_url = forms.URLField(
        assume_scheme="https",
        required=False,
        label="API address (advanced)",
        help_text="Leave empty for e-conomic itself (restapi.e-conomic.com).",
    )


class SettingsForm(forms.Form):
    document_type = forms.ChoiceField(choices=DOCUMENT_TYPES, label="Transfer orders as")
    customer_match = forms.ChoiceField(choices=CUSTOMER_FIELDS, label="Find the customer by")
    allow_customer_create = forms.BooleanField(required=False, label="Create the customer when none is found")
    base_currency = forms.RegexField(regex=r"^[A-Z]{3}$", max_length=3, label="Base currency")
    home_country = forms.RegexField(
        regex=r"^[A-Z]{2}$", max_length=2, label="Home country", help_text="ISO code; decides the VAT zone."
    )
    customer_group = forms.IntegerField(min_value=1, label="Customer group for new customers")
    payment_terms = forms.IntegerField(min_value=1, label="Payment terms number")
    layout = forms.IntegerField(min_value=1, label="Layout number")
    product_group = forms.IntegerField(min_value=1, label="Product group for new products (with VAT)")
    product_group_no_vat = forms.IntegerField(min_value=1, label="Product group for new products (without VAT)")
    shipping_product = forms.CharField(max_length=25, label="Product number for shipping")
    fee_product = forms.CharField(max_length=25, label="Product number for payment fees")
    discount_product = forms.CharField(max_length=25, label="Product number for discounts")
    default_product = forms.CharField(
        max_length=25, label="Default product number", help_text="For order lines without a SKU."
    )
    rounding_product = forms.CharField(max_length=25, label="Product number for rounding corrections")
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
