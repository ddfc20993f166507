"""WooCommerce (webshop): orders, refunds and products out, stock levels in. REST API v3 with the store's API keys."""

from connections.systems import Authorize, Webshop
from connections.systems.woocommerce import authorize, client, forms, transforms, webhooks

SYSTEM: Webshop = Webshop(
    kind="woocommerce",
    label="WooCommerce",
    credentials_form=forms.CredentialsForm,
    settings_form=forms.SettingsForm,
    default_settings=forms.DEFAULT_SETTINGS,
    client=client.WooCommerceClient,
    transforms=transforms,
    webhooks=webhooks,
    authorize=Authorize(url=authorize.url, keys=authorize.keys),
    about="Paid orders (processing, completed) and their refunds go to your accounting system, products too, and "
    "stock comes back. Connect it with a REST API key (Read/Write) from WooCommerce > Settings > Advanced > REST API.",
    webhook_setup="In WooCommerce > Settings > Advanced > Webhooks, add a webhook for each of Order created, Order "
    "updated, Order deleted, Order restored, Product created and Product updated, with this address as the delivery URL, API "
    "version WP REST API Integration v3, and the same secret as the webhook secret above. WooCommerce disables a "
    "webhook after repeated failed deliveries and never sends a missed one again; IEX also asks WooCommerce every "
    "hour for what changed, which catches what was lost.",
)
