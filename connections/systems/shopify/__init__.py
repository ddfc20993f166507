"""Shopify (webshop): orders and products out, stock levels in. Admin REST API, one access token per shop."""

from connections.systems import Budget, Webshop
from connections.systems.shopify import client, forms, transforms, webhooks

SYSTEM: Webshop = Webshop(
    kind="shopify",
    label="Shopify",
    budget=Budget(38, 20),  # a bucket of 40 refilling at 2 a second per shop: 40 in any 20 s, with a margin
    credentials_form=forms.CredentialsForm,
    settings_form=forms.SettingsForm,
    default_settings=forms.DEFAULT_SETTINGS,
    client=client.ShopifyClient,
    transforms=transforms,
    webhooks=webhooks,
    about="Paid orders and their refunds go to your accounting system, products too, and stock comes back. "
    "Connect it with the Admin API access token of a custom app in your Shopify admin.",
    webhook_setup="In Shopify admin > Settings > Notifications > Webhooks (or your custom app), add webhooks for "
    "Order creation, Order update, Order payment, Order cancellation, Refund creation and Product creation/update "
    "in JSON with this address. Shopify signs them with your app's API secret key: enter it as the webhook secret.",
)
