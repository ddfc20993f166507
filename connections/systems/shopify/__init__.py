"""Shopify (webshop): orders and products out, stock levels in. Admin REST API, one access token per shop."""

from connections.systems import Webshop
from connections.systems.shopify import client, forms, transforms, webhooks

SYSTEM: Webshop = Webshop(
    kind="shopify",
    label="Shopify",
    credentials_form=forms.CredentialsForm,
    settings_form=forms.SettingsForm,
    default_settings=forms.DEFAULT_SETTINGS,
    client=client.ShopifyClient,
    transforms=transforms,
    webhooks=webhooks,
)
