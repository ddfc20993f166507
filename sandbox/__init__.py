"""A local stand-in for the Shopify Admin REST API, a WooCommerce store, the e-conomic REST API and the Dinero API,
for development, demos and tests.

Run it with `python -m sandbox`, or embed it with `sandbox.server.make_server(...)`.
"""
