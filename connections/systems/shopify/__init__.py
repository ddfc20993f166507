"""Shopify (webshop): orders and products out, stock levels in. Admin REST API, one access token per shop."""

from connections.systems import System
from connections.systems.shopify import client, forms, transforms, webhooks

SYSTEM: System = System(
    kind="shopify",
    label="Shopify",
    category="webshop",
    credentials_form=forms.CredentialsForm,
    settings_form=forms.SettingsForm,
    default_settings=forms.DEFAULT_SETTINGS,
    client=client.ShopifyClient,
    transforms=transforms,
    webhooks=webhooks,
)
