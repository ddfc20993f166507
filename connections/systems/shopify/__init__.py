"""Shopify (webshop): orders and products out, stock levels in. Admin REST API, one access token per shop: IEX's app
installed in the shop (oauth.py), or a custom app the merchant made."""

from connections.systems import Budget, OAuth, Webshop
from connections.systems.shopify import client, forms, oauth, transforms, webhooks

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
    "Install IEX in your shop from here (Shopify asks you to approve it), or connect a custom app you made in "
    "your Shopify admin with its access token.",
    oauth=OAuth(
        url=oauth.url,
        exchange=oauth.exchange,
        available=oauth.available,
        button="Install IEX in your Shopify shop",
        asks=forms.InstallForm,
        verify=oauth.verify,
        marks="scope",  # a custom app's token is pasted without the scopes Shopify granted
        webhook_secret=oauth.app_secret,
        subscribe=client.subscribe,
    ),
    webhook_setup="Installed in your shop, IEX registers its webhooks there itself. With a custom app: in Shopify "
    "admin > Settings > Notifications > Webhooks (or your custom app), add webhooks for Order creation, Order update, "
    "Order payment, Order cancellation, Refund creation and Product creation/update in JSON with this address. "
    "Shopify signs them with your app's API secret key: enter it as the webhook secret.",
)
