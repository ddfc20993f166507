"""Run the sandbox: `python -m sandbox --port 8900 --order-interval 30 --webhook-url URL --webhook-secret S`
(and for WooCommerce `--woocommerce-order-interval 30 --woocommerce-webhook-url URL --woocommerce-webhook-secret S`)."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

from sandbox.server import make_server


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m sandbox", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8900)
    parser.add_argument("--latency-ms", type=int, default=0, help="sleep this long in every API request")
    parser.add_argument("--order-interval", type=float, default=0, help="create an order every N seconds (0: off)")
    parser.add_argument(
        "--refund-every",
        type=int,
        default=0,
        help="with every N-th order, refund an item of an earlier one (0: never)",
    )
    parser.add_argument("--webhook-url", help="where to POST Shopify webhooks")
    parser.add_argument("--webhook-secret", help="the secret that signs the webhooks")
    parser.add_argument(
        "--woocommerce-order-interval",
        type=float,
        default=0,
        help="create a WooCommerce order every N seconds (0: off)",
    )
    parser.add_argument("--woocommerce-webhook-url", help="where to POST WooCommerce webhooks")
    parser.add_argument("--woocommerce-webhook-secret", help="the secret that signs the WooCommerce webhooks")
    parser.add_argument("--seed", type=int, help="seed for the order generator (default: random)")
    parser.add_argument("--verbose", action="store_true", help="log every request")
    args = parser.parse_args(argv)

    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    try:
        sandbox = make_server(
            args.host,
            args.port,
            latency_ms=args.latency_ms,
            order_interval=args.order_interval,
            refund_every=args.refund_every,
            webhook_url=args.webhook_url,
            webhook_secret=args.webhook_secret,
            woocommerce_order_interval=args.woocommerce_order_interval,
            woocommerce_webhook_url=args.woocommerce_webhook_url,
            woocommerce_webhook_secret=args.woocommerce_webhook_secret,
            seed=args.seed,
        )
    except ValueError as exc:
        parser.error(str(exc))
    # `docker stop` sends SIGTERM: leave through the same door as Ctrl-C.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    sandbox.start()
    logging.getLogger("sandbox").info(
        "Listening on %s (Shopify API base %s/shopify, e-conomic API base %s/economic, WooCommerce store %s/woocommerce"
        " with keys ck_sandbox / cs_sandbox, Dinero API and token host %s/dinero with the API key dinero-sandbox-key,"
        " control %s/_sandbox/)",
        sandbox.url,
        sandbox.url,
        sandbox.url,
        sandbox.url,
        sandbox.url,
        sandbox.url,
    )
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        sandbox.stop()


if __name__ == "__main__":
    main()
