"""e-conomic (accounting): orders become invoice drafts, booked invoices or orders; products are created; stock
levels are read. REST API with an app secret token (IEX's app, or a private app of the merchant's) and the agreement
grant token that lets that app into the merchant's agreement (oauth.py: e-conomic's grant flow)."""

from connections.systems import Accounting, Budget, OAuth
from connections.systems.economic import client, forms, oauth

SYSTEM: Accounting = Accounting(
    kind="economic",
    label="e-conomic",
    credentials_form=forms.CredentialsForm,
    settings_form=forms.SettingsForm,
    default_settings=forms.DEFAULT_SETTINGS,
    client=client.EconomicClient,
    budget=Budget(50_000, 86_400),  # fair use: 50,000 calls a day per agreement
    about="Orders become invoice drafts (or booked invoices, or orders) with the shop's VAT, refunds credit notes, "
    "and stock levels go back to the shop. Connect it from here: you add IEX's app to your agreement in e-conomic, "
    "and nothing needs copying. Or enter the grant token of an app by hand.",
    oauth=OAuth(
        url=oauth.url,
        exchange=oauth.exchange,
        available=oauth.available,
        button="Connect to e-conomic",
        code="token",
        marks="app_public_token",  # tokens entered by hand come without the app they were granted to
    ),
)
