"""Dinero (accounting): orders become invoice drafts or booked invoices, refunds credit notes, and products are
created. API v1, through the merchant's Dinero login (oauth.py) or their organisation's API key; Dinero keeps no
stock levels, so no stock flow is offered."""

from connections.systems import Accounting, Budget, OAuth
from connections.systems.dinero import client, forms, oauth

SYSTEM: Accounting = Accounting(
    kind="dinero",
    label="Dinero",
    credentials_form=forms.CredentialsForm,
    settings_form=forms.SettingsForm,
    default_settings=forms.DEFAULT_SETTINGS,
    client=client.DineroClient,
    about="Orders become invoices (drafts, or booked) with the shop's VAT on the right sales accounts, and refunds "
    "credit notes; products are created. Connect it through Dinero's login, or with your organisation's API key "
    "(Dinero Pro).",
    oauth=OAuth(url=oauth.url, exchange=oauth.exchange, available=oauth.available),
    budget=Budget(90, 60),  # 100 calls a minute per organisation, then 429 (a margin for clocks and latency)
    not_offered={"stock": "Dinero keeps no stock levels, so there is no stock to send to the shop"},
)
