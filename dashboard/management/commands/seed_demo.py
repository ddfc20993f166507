import json
import secrets

from allauth.account.models import EmailAddress
from django.conf import settings
from django.contrib.auth.models import User
from django.core.management.base import BaseCommand
from django.db import transaction

from billing import stripe_api, subscriptions
from billing.models import Subscription
from connections.models import Connection, Module
from iex.models import Integration, Role
from scheduling.models import Job

DEMO_EMAIL = "demo@iex.local"
DEMO_INTEGRATION = "Demo Shop"


class Command(BaseCommand):
    help = "Create (or refresh) the demo owner, the demo integration and its sandbox systems; safe to run again."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--json", action="store_true", help="print the demo logins and modules as JSON")
        parser.add_argument(
            "--stripe",
            action="store_true",
            help="also give the demo billing information and a test card in Stripe (make run: localstripe)",
        )

    def handle(self, *args, **options) -> None:
        password = self.demo_password()
        with transaction.atomic():
            user, _ = User.objects.get_or_create(username="demo", defaults={"email": DEMO_EMAIL})
            user.email = DEMO_EMAIL
            user.set_password(password)
            user.save()
            EmailAddress.objects.update_or_create(
                user=user, email=DEMO_EMAIL, defaults={"verified": True, "primary": True}
            )
            member = user.memberships.filter(role=Role.OWNER, integration__name=DEMO_INTEGRATION).first()
            integration = member.integration if member else Integration.create_for(user, DEMO_INTEGRATION)
            made = "created" if member is None else "refreshed"
            modules = self.sandbox_systems(integration)
            sub = Subscription.of(integration)
        if options["stripe"]:
            self.stripe_billing(sub)

        login_url = f"{settings.SITE_URL}/accounts/login/"
        data = {
            "login": {"email": DEMO_EMAIL, "password": password, "url": login_url},
            "integration": {
                "number": integration.number,
                "name": integration.name,
                "url": settings.SITE_URL + integration.get_absolute_url(),
            },
            "modules": [
                {
                    "kind": m.kind,
                    "base_url": m.base_url,
                    "webhook_url": m.webhook_url,
                    "webhook_secret": m.get_credentials().get("webhook_secret", ""),
                }
                for m in modules
            ],
        }
        if options["json"]:
            self.stdout.write(json.dumps(data, indent=2))
        else:
            self.stdout.write(
                f"Demo integration {integration.name} (no. {integration.number}): Shopify and e-conomic in the "
                f"sandbox at {settings.SANDBOX_URL}.\n"
                f"Log in at {login_url} as {DEMO_EMAIL} with password {password}\n"
                f"seed_demo: {made} {integration.number} ({integration.name}) owned by {DEMO_EMAIL}, "
                f"{' and '.join(m.kind for m in modules)} in the sandbox"
                f"{', billing in Stripe' if options['stripe'] else ''}"
            )

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

    def sandbox_systems(self, integration: Integration) -> list[Module]:
        """Shopify and e-conomic in the sandbox, orders arriving by webhook (and reconciled hourly). Set up once;
        later runs keep whatever the demo user changed."""
        shop, created = Module.objects.get_or_create(integration=integration, kind="shopify")
        if created or not shop.connected:
            shop.base_url = f"{settings.SANDBOX_URL}/shopify"
            shop.set_credentials(
                {
                    "shop_domain": "sandbox.myshopify.com",
                    "access_token": "shpat_sandbox",
                    "webhook_secret": secrets.token_urlsafe(24),
                }
            )
            shop.save()
        books, created = Module.objects.get_or_create(integration=integration, kind="economic")
        # The sandbox's own agreement (its documented demo tokens only read, as e-conomic's do).
        if created or not books.connected or books.get_credentials().get("app_secret_token") == "demo":
            books.base_url = f"{settings.SANDBOX_URL}/economic"
            books.set_credentials(
                {"app_secret_token": "sandbox-app-secret", "agreement_grant_token": "sandbox-grant"}
            )
            # US sales tax goes on the sandbox agreement's product group 3 (account 7300 Skyldig salgsskat).
            books.settings = {"sales_tax_group": 3, **books.settings}
            books.save()
        Connection.ensure_for(integration)
        Job.ensure_all(integration)
        for flow in ("orders", "credit_notes"):
            connection = integration.connections.get(flow=flow, source=shop, target=books)
            if not connection.job.last_finished_at and not connection.active:
                connection.active = True
                connection.trigger = "webhook"
                connection.save(update_fields=["active", "trigger"])
                connection.job.start_now()
        return [shop, books]

    def demo_password(self) -> str:
        """Generated once per checkout and kept under var/, so the printed login keeps working."""
        path = settings.VAR_DIR / "demo-password"
        if not path.exists():
            path.write_text(secrets.token_urlsafe(12))
            path.chmod(0o600)
        return path.read_text().strip()
