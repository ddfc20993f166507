import json
import secrets
from typing import Any

from allauth.account.models import EmailAddress
from django.conf import settings
from django.contrib.auth.models import User
from django.core.management.base import BaseCommand
from django.db import transaction

from billing import stripe_api, subscriptions
from billing.models import Subscription
from connections.models import Connection, Delivery, Mapping, Module
from iex.models import Integration, Role
from scheduling.models import Job

DEMO_EMAIL = "demo@iex.local"
DEMO_INTEGRATION = "Demo Shop"
# Each demo: (name, its shop, its books); together they show all four systems.
DEMOS = [(DEMO_INTEGRATION, "shopify", "economic"), ("Demo WooCommerce", "woocommerce", "dinero")]
# The sandbox's well-known credentials (not secrets); the webhook secret is made per demo.
SHOP_CREDENTIALS = {
    "shopify": {"shop_domain": "sandbox.myshopify.com", "access_token": "shpat_sandbox"},
    "woocommerce": {
        "site_url": "https://sandbox-shop.example",
        "consumer_key": "ck_sandbox",
        "consumer_secret": "cs_sandbox",
    },
}
BOOKS_CREDENTIALS = {
    "economic": {"app_secret_token": "sandbox-app-secret", "agreement_grant_token": "sandbox-grant"},
    "dinero": {"api_key": "dinero-sandbox-key"},
}


class Command(BaseCommand):
    help = "Create (or refresh) the demo owner, the demo integration and its sandbox systems; safe to run again."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--json", action="store_true", help="print the demo logins and modules as JSON")
        parser.add_argument(
            "--fresh-sandbox",
            action="store_true",
            help="the sandbox starts empty (make run): forget the documents, transfers and webhooks of the last one",
        )
        parser.add_argument(
            "--stripe",
            action="store_true",
            help="also give the demo billing information and a test card in Stripe (make run: localstripe)",
        )

    def handle(self, *args, **options) -> None:
        password = self.demo_password()
        with transaction.atomic():
            user = self.demo_user(password)
            demos = []
            for name, shop_kind, books_kind in DEMOS:
                member = user.memberships.filter(role=Role.OWNER, integration__name=name).first()
                integration = member.integration if member else Integration.create_for(user, name)
                made = "created" if member is None else "refreshed"
                demos.append((integration, made, self.sandbox_systems(integration, shop_kind, books_kind)))
                if options["fresh_sandbox"]:
                    forget_the_sandbox(integration)
        if options["stripe"]:
            for each, _, _ in demos:
                self.stripe_billing(Subscription.of(each))
        if options["json"]:
            self.stdout.write(json.dumps(_as_data(password, demos), indent=2))
            return
        billing = ", billing in Stripe" if options["stripe"] else ""
        self.stdout.write(
            f"Demo integrations {' and '.join(f'{each.name} (no. {each.number})' for each, _, _ in demos)}: "
            f"their shops and books in the sandbox at {settings.SANDBOX_URL}.\n"
            f"Log in at {settings.SITE_URL}/accounts/login/ as {DEMO_EMAIL} with password {password}\n"
            + "\n".join(
                f"seed_demo: {made} {each.number} ({each.name}) owned by {DEMO_EMAIL}, "
                f"{' and '.join(m.kind for m in modules)} in the sandbox{billing}"
                for each, made, modules in demos
            )
        )

    def demo_user(self, password: str) -> User:
        user, _ = User.objects.get_or_create(username="demo", defaults={"email": DEMO_EMAIL})
        user.email = DEMO_EMAIL
        user.set_password(password)
        user.save()
        EmailAddress.objects.update_or_create(
            user=user, email=DEMO_EMAIL, defaults={"verified": True, "primary": True}
        )
        return user

    def stripe_billing(self, sub: Subscription) -> None:
        """Billing information and a Visa test card, made again when Stripe (a restarted localstripe) lost them."""
        if sub.stripe_customer and sub.has_card and stripe_api.customer_exists(sub.stripe_customer):
            return
        sub.stripe_customer = sub.stripe_subscription = ""
        sub.stripe_items = {}
        fields = {
            "company": "Demo Shop ApS",
            "address": "Demovej 1",
            "postcode": "8000",
            "city": "Aarhus C",
            "country": "DK",
            "vat_number": "DK12345678",
            "invoice_email": DEMO_EMAIL,
        }
        with transaction.atomic():
            subscriptions.save_billing_info(sub, fields)
            subscriptions.set_card(sub, stripe_api.test_card("4242424242424242", 12, 2030, "123"))

    def sandbox_systems(self, integration: Integration, shop_kind: str, books_kind: str) -> list[Module]:
        """The shop and the books in the sandbox, orders and refunds arriving by webhook (and reconciled hourly).
        Set up once; later runs keep whatever the demo user changed."""
        shop, created = Module.objects.get_or_create(integration=integration, kind=shop_kind)
        if created or not shop.connected:
            shop.base_url = f"{settings.SANDBOX_URL}/{shop_kind}"
            shop.set_credentials({**SHOP_CREDENTIALS[shop_kind], "webhook_secret": secrets.token_urlsafe(24)})
            shop.save()
        books, created = Module.objects.get_or_create(integration=integration, kind=books_kind)
        # Books an earlier demo kept in the sandbox (before this demo's books were these) would get its orders too.
        earlier = integration.modules.exclude(kind=books_kind).filter(base_url__startswith=settings.SANDBOX_URL)
        earlier.filter(kind__in=[kind for _, _, kind in DEMOS]).delete()
        # The sandbox's own agreement or organisation (e-conomic's documented demo tokens only read, as e-conomic's do).
        if created or not books.connected or books.get_credentials().get("app_secret_token") == "demo":
            books.base_url = f"{settings.SANDBOX_URL}/{books_kind}"
            books.set_credentials(BOOKS_CREDENTIALS[books_kind])
            if books_kind == "economic":
                # US sales tax goes on the sandbox agreement's product group 3 (account 7300 Skyldig salgsskat).
                books.settings = {"sales_tax_group": 3, **books.settings}
            # The demo is set up as a merchant leaves it: its settings checked and saved (Home's checklist).
            books.settings = {**books.system.default_settings, **books.settings}
            books.save()
        Connection.ensure_for(integration)
        Job.ensure_all(integration)
        for flow in ("orders", "credit_notes"):
            connection = integration.connections.get(flow=flow, source=shop, target=books)
            if not connection.job.last_finished_at and not connection.active:
                connection.active = True
                connection.trigger = "webhook"
                connection.save(update_fields=["active", "trigger"])
                if flow == "orders":
                    connection.job.choose_start(None)  # the demo's orders: from now on
                connection.job.start_now()
        return [shop, books]

    def demo_password(self) -> str:
        """Generated once per checkout and kept under var/, so the printed login keeps working."""
        path = settings.VAR_DIR / "demo-password"
        if not path.exists():
            path.write_text(secrets.token_urlsafe(12))
            path.chmod(0o600)
        return path.read_text().strip()


def _as_data(password: str, demos: list[tuple[Integration, str, list[Module]]]) -> dict[str, Any]:
    """The login, the first demo integration and its modules (as before there were two), and every demo."""
    integration, _, modules = demos[0]
    return {
        "login": {"email": DEMO_EMAIL, "password": password, "url": f"{settings.SITE_URL}/accounts/login/"},
        "integration": {
            "number": integration.number,
            "name": integration.name,
            "url": settings.SITE_URL + integration.get_absolute_url(),
        },
        "modules": [_module_data(m) for m in modules],
        "integrations": [
            {"number": each.number, "name": each.name, "modules": [_module_data(m) for m in its]}
            for each, _, its in demos
        ],
    }


def _module_data(module: Module) -> dict[str, str]:
    return {
        "kind": module.kind,
        "base_url": module.base_url,
        "webhook_url": module.webhook_url,
        "webhook_secret": module.get_credentials().get("webhook_secret", ""),
    }


def forget_the_sandbox(integration: Integration) -> None:
    """A new sandbox reuses its order ids and document numbers: what the demo knew of the last one would point at
    documents that are not there (and refunds would wait for invoices never to come)."""
    Mapping.objects.filter(connection__integration=integration).delete()
    Delivery.objects.filter(integration=integration).delete()
    integration.transfers.all().delete()
    integration.daily_counts.all().delete()
