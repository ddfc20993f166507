from allauth.account.adapter import get_adapter
from allauth.account.models import EmailAddress
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.core.validators import validate_email
from django.db import transaction
from django.db.models import Q

from billing.models import Plan, Subscription
from iex.models import Integration


class Command(BaseCommand):
    help = "Create an integration on a trial of --plan, owned by the user with --owner's email; prints its number."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--name", required=True, help="the integration's name, usually the shop's")
        parser.add_argument("--owner", required=True, help="email address of the user who will own it")
        parser.add_argument("--plan", default="standard", help="code of the plan of the trial (default standard)")
        parser.add_argument(
            "--create-user",
            action="store_true",
            help="create the owner if no user has that email: verified address, no password (they set one "
            "through 'Forgot your password?')",
        )

    def handle(self, *args, **options) -> None:
        name = " ".join(options["name"].split())
        if not name or len(name) > 100:
            raise CommandError("--name must be 1 to 100 characters")
        email = options["owner"].strip().lower()
        try:
            validate_email(email)
        except ValidationError:
            raise CommandError(f"--owner must be an email address; got {options['owner']!r}") from None
        plan = Plan.objects.filter(code=options["plan"]).first()
        if plan is None:
            codes = ", ".join(Plan.objects.values_list("code", flat=True))
            raise CommandError(f"No plan {options['plan']!r}; the plans are: {codes}")

        with transaction.atomic():
            users = list(
                User.objects.filter(Q(email__iexact=email) | Q(emailaddress__email__iexact=email)).distinct()
            )
            if len(users) > 1:
                raise CommandError(f"{len(users)} users have the email {email}; pick one in the admin")
            if users:
                user, new_user = users[0], False
            elif options["create_user"]:
                user, new_user = self.create_user(email), True
            else:
                raise CommandError(f"No user has the email {email}; pass --create-user to create one")
            integration = Integration.create_for(user, name)
            sub = Subscription.of(integration, plan)

        self.stdout.write(
            f"create_integration: created {integration.number} ({integration.name}) owned by {email}"
            f"{' (new user, no password yet)' if new_user else ''}, {plan.name} trial until {sub.trial_ends:%Y-%m-%d}"
        )

    def create_user(self, email: str) -> User:
        """As a signup would, but verified (the operator vouches for the address) and with no usable password."""
        user = User(email=email, username=get_adapter().generate_unique_username([email, "user"]))
        user.set_unusable_password()
        user.save()
        EmailAddress.objects.create(user=user, email=email, verified=True, primary=True)
        return user
