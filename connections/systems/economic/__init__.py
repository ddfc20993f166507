"""e-conomic (accounting): orders become invoice drafts, booked invoices or orders; products are created; stock
levels are read. REST API with an app secret token and an agreement grant token."""

from connections.systems import Accounting, Budget
from connections.systems.economic import client, forms

SYSTEM: Accounting = Accounting(
    kind="economic",
    label="e-conomic",
    credentials_form=forms.CredentialsForm,
    settings_form=forms.SettingsForm,
    default_settings=forms.DEFAULT_SETTINGS,
    client=client.EconomicClient,
    budget=Budget(50_000, 86_400),  # fair use: 50,000 calls a day per agreement
    about="Orders become invoice drafts (or booked invoices, or orders) with the shop's VAT, refunds credit notes, "
    "and stock levels go back to the shop. Connect it with your agreement's grant token.",
)
