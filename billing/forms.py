from __future__ import annotations

import re
from datetime import date

from django import forms

from billing.models import Plan, Subscription


class BillingInfoForm(forms.ModelForm):
    class Meta:
        model = Subscription
        fields = ["company", "address", "postcode", "city", "country", "vat_number", "invoice_email"]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        for name in ("company", "address", "postcode", "city", "invoice_email"):
            self.fields[name].required = True

    def clean_country(self) -> str:
        country = self.cleaned_data["country"].strip().upper()
        if not re.fullmatch(r"[A-Z]{2}", country):
            raise forms.ValidationError("Use the two-letter country code, for example DK.")
        return country

    def clean_vat_number(self) -> str:
        vat = re.sub(r"[\s.-]", "", self.cleaned_data["vat_number"]).upper()
        if vat and not re.fullmatch(r"[A-Z]{2}[0-9A-Z]{2,13}", vat):
            raise forms.ValidationError("Start with the country code, for example DK12345678.")
        return vat


class TestCardForm(forms.Form):
    """Where the Stripe API is the local fake: a card number goes straight to it. (Production uses Checkout.)"""

    number = forms.CharField(label="Card number", max_length=19, initial="4242 4242 4242 4242")
    expiry = forms.CharField(label="Expiry (MM/YY)", max_length=5, initial=f"12/{date.today().year % 100 + 3}")
    cvc = forms.CharField(label="CVC", max_length=3, initial="123")

    def clean_number(self) -> str:
        number = re.sub(r"\s", "", self.cleaned_data["number"])
        if not re.fullmatch(r"[0-9]{16}", number):
            raise forms.ValidationError("Enter the 16 digits of the card number.")
        return number

    def clean_expiry(self) -> tuple[int, int]:
        match = re.fullmatch(r"(\d{2})/(\d{2})", self.cleaned_data["expiry"].strip())
        if not match or not 1 <= int(match[1]) <= 12:
            raise forms.ValidationError("Enter the expiry as MM/YY.")
        month, year = int(match[1]), 2000 + int(match[2])
        if (year, month) < (date.today().year, date.today().month):
            raise forms.ValidationError("This card has expired.")
        return month, year

    def clean_cvc(self) -> str:
        cvc = self.cleaned_data["cvc"].strip()
        if not re.fullmatch(r"[0-9]{3}", cvc):
            raise forms.ValidationError("Enter the three digits on the back of the card.")
        return cvc


class BuyPacksForm(forms.Form):
    packs = forms.IntegerField(label="Packs", min_value=1, max_value=50, initial=1)
    # A token made when the page was shown: the pack's code, so a form sent twice buys once.
    code = forms.UUIDField(widget=forms.HiddenInput)


class ConfirmPacksForm(BuyPacksForm):
    # The amount shown and confirmed, in øre: charged only if it is still the price.
    amount = forms.IntegerField(min_value=0, widget=forms.HiddenInput)


class TopUpForm(forms.ModelForm):
    class Meta:
        model = Subscription
        fields = ["topup_enabled", "topup_cap"]

    def clean_topup_cap(self) -> int:
        cap = self.cleaned_data["topup_cap"]
        if cap > 100:
            raise forms.ValidationError("At most 100 packs a month.")
        return cap


class PlanForm(forms.Form):
    plan = forms.ModelChoiceField(queryset=Plan.objects.filter(available=True), empty_label=None)
