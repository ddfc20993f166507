import json
import secrets

from allauth.account.models import EmailAddress
from django.conf import settings
from django.contrib.auth.models import User
from django.core.management.base import BaseCommand
from django.db import transaction

from iex.models import Integration, Role

DEMO_EMAIL = "demo@iex.local"
DEMO_INTEGRATION = "Demo Shop"


class Command(BaseCommand):
    help = "Create (or refresh) the demo owner account and the demo integration; safe to run again."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--json", action="store_true", help="print the demo logins as JSON")

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

        data = {
            "login": {
                "email": DEMO_EMAIL,
                "password": password,
                "url": f"{settings.SITE_URL}/accounts/login/",
            },
            "integration": {
                "number": integration.number,
                "name": integration.name,
                "url": settings.SITE_URL + integration.get_absolute_url(),
            },
        }
        if options["json"]:
            self.stdout.write(json.dumps(data, indent=2))
        else:
            self.stdout.write(
                f"Demo integration {integration.name} (no. {integration.number}).\n"
                f"Log in at {data['login']['url']} as {DEMO_EMAIL} with password {password}"
            )

    def demo_password(self) -> str:
        """Generated once per checkout and kept under var/, so the printed login keeps working."""
        path = settings.VAR_DIR / "demo-password"
        if not path.exists():
            path.write_text(secrets.token_urlsafe(12))
            path.chmod(0o600)
        return path.read_text().strip()
