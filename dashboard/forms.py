from django import forms

from billing.models import TRIAL_DAYS, Plan
from iex.models import Member, Role


class IntegrationForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="Usually the name of the shop or the company.")
    plan = forms.ModelChoiceField(
        queryset=Plan.objects.filter(available=True),
        empty_label=None,
        help_text=f"Free for {TRIAL_DAYS} days; change the plan any time on the Subscription page.",
    )

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        plan = self.fields["plan"]
        assert isinstance(plan, forms.ModelChoiceField)
        plan.label_from_instance = _plan_label  # type: ignore[method-assign,assignment]
        self.initial.setdefault("plan", Plan.objects.filter(code="standard").first())

    def clean_name(self) -> str:
        name = " ".join(self.cleaned_data["name"].split())
        if not name:
            raise forms.ValidationError("Give the integration a name.")
        return name


def _plan_label(plan: Plan) -> str:
    return f"{plan.name}: {plan.included_orders:,} orders a month, {plan.price_display}"


class InviteForm(forms.Form):
    email = forms.EmailField(max_length=254)
    role = forms.ChoiceField(choices=Role.choices, initial=Role.VIEWER)

    def __init__(self, *args, roles: list[Role], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        role = self.fields["role"]
        assert isinstance(role, forms.ChoiceField)
        role.choices = [(r.value, r.label) for r in roles]

    def clean_email(self) -> str:
        return self.cleaned_data["email"].strip().lower()


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)


class NotificationsForm(forms.ModelForm):
    class Meta:
        model = Member
        fields = ["error_emails", "report_frequency"]
