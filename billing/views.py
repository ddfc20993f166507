"""The Subscription page. Every member sees the plan and the month's usage; only owners change anything."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core import signing
from django.db import transaction
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods

from billing import invoices, packs, stripe_api, subscriptions
from billing.forms import BillingInfoForm, BuyPacksForm, ConfirmPacksForm, PlanForm, TestCardForm, TopUpForm
from billing.models import Pack, Plan, Subscription, Usage, kroner
from billing.usage import banners
from iex.access import AuthedRequest, get_member, get_member_owner
from iex.models import Member
from transferlog.models import Transfer

logger = logging.getLogger(__name__)


@login_required
@require_GET
def subscription(request: AuthedRequest, number: str) -> HttpResponse:
    member = get_member(request, number)
    return _render(request, member)


def _render(request: AuthedRequest, member: Member, status: int = 200, **forms: Any) -> HttpResponse:
    integration = member.integration
    sub = Subscription.of(integration)
    usage = Usage.of(integration)
    lines, total = subscriptions.monthly_total(sub)
    listed = invoices.page(sub, request.GET.get("invoices_after", "")) if member.is_owner else None
    waiting = banners(integration)
    ctx = {
        "sub": sub,
        "usage": usage,
        "used_width": usage.percent_used,
        "plan_summary": subscriptions.plan_summary(sub, usage),
        "lines": [{**line, "display": kroner(line["amount"])} for line in lines],
        "total": kroner(total),
        "plans": Plan.objects.filter(available=True),
        "packs": Pack.objects.filter(integration=integration, month=usage.month),
        "invoices": listed,
        # The owner's list of invoices could not be read: Stripe does not answer (said in a banner too).
        "invoices_unavailable": member.is_owner and listed is None,
        # Packs paid whose invoice Stripe has not made yet (`packs.invoice_paid_packs` asks again).
        "invoices_waiting": packs.awaiting_invoice().filter(integration=integration).count(),
        "local_stripe": stripe_api.is_local_fake(),
        "billing_form": forms.get("billing_form") or BillingInfoForm(instance=sub),
        "card_form": forms.get("card_form") or TestCardForm(),
        "buy_form": forms.get("buy_form") or BuyPacksForm(initial={"packs": 1, "code": uuid.uuid4()}),
        "topup_form": forms.get("topup_form") or TopUpForm(instance=sub),
        "plan_form": PlanForm(initial={"plan": sub.plan}),
        **waiting,
        "stripe_down": waiting["stripe_down"] or (member.is_owner and listed is None),
    }
    return render(request, "billing/subscription.html", ctx, status=status)


NOTHING_CHANGED = "Stripe did not answer as expected ({error}). Nothing was changed; please try again."


def _owner_action(
    method: str = "POST", if_stripe_fails: str = NOTHING_CHANGED
) -> Callable[[Callable[..., HttpResponse]], Callable[..., HttpResponse]]:
    """Owners only. When Stripe does not answer, the owner is told `if_stripe_fails` (its {error}) back on the
    Subscription page: what Stripe has not confirmed is not saved."""

    def decorate(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @wraps(view)
        @login_required
        @require_http_methods([method])
        def wrapper(request: AuthedRequest, number: str, **kwargs: Any) -> HttpResponse:
            member = get_member_owner(request, number)
            sub = Subscription.of(member.integration)
            try:
                return view(request, member, sub, **kwargs)
            except stripe_api.StripeError as exc:
                logger.warning("Stripe error on %s: %s", view.__name__, exc)
                messages.error(request, if_stripe_fails.format(error=exc.user_message or exc))
                return redirect("subscription", number)

        return wrapper

    return decorate


@_owner_action()
def save_billing_info(request: AuthedRequest, member: Member, sub: Subscription) -> HttpResponse:
    form = BillingInfoForm(request.POST, instance=Subscription.objects.get(pk=sub.pk))
    if not form.is_valid():
        return _render(request, member, 400, billing_form=form)
    subscriptions.save_billing_info(sub, form.cleaned_data)
    messages.success(request, "Billing information saved.")
    return redirect("subscription", member.integration.number)


@_owner_action()
def save_card(request: AuthedRequest, member: Member, sub: Subscription) -> HttpResponse:
    number = member.integration.number
    if not sub.company:
        messages.error(request, "Fill in the billing information before adding a card.")
        return redirect("subscription", number)
    if not stripe_api.is_local_fake():
        if not sub.stripe_customer:
            subscriptions.save_billing_info(sub, subscriptions.billing_fields(sub))
        url = reverse("return_from_checkout", args=[number])
        back = request.build_absolute_uri(reverse("subscription", args=[number]))
        return redirect(stripe_api.setup_session(sub.stripe_customer, request.build_absolute_uri(url), back))
    form = TestCardForm(request.POST)
    if not form.is_valid():
        return _render(request, member, 400, card_form=form)
    month, year = form.cleaned_data["expiry"]
    try:
        pm = stripe_api.test_card(form.cleaned_data["number"], month, year, form.cleaned_data["cvc"])
        subscriptions.set_card(sub, pm)
    except stripe_api.CardError as exc:
        form.add_error("number", exc.user_message or "The card was declined.")
        return _render(request, member, 400, card_form=form)
    messages.success(request, f"Card ending in {sub.card_last4} saved.")
    return redirect("subscription", number)


@_owner_action("GET", if_stripe_fails="Stripe did not confirm a card. Nothing was changed; please try again.")
def return_from_checkout(request: AuthedRequest, member: Member, sub: Subscription) -> HttpResponse:
    """Back from Stripe Checkout (setup mode): take the card it saved."""
    number = member.integration.number
    session_id = request.GET.get("session_id", "")
    payment_method = stripe_api.setup_session_card(session_id, sub.stripe_customer) if session_id else ""
    if not payment_method:
        messages.error(request, "Stripe did not confirm a card. Nothing was changed; please try again.")
        return redirect("subscription", number)
    if payment_method != sub.payment_method:  # else Stripe's event has saved it already
        with transaction.atomic():
            subscriptions.set_card(sub, payment_method)
    messages.success(request, f"Card ending in {sub.card_last4} saved.")
    return redirect("subscription", number)


@_owner_action()
def preview_packs(request: AuthedRequest, member: Member, sub: Subscription) -> HttpResponse:
    """The first step of buying by hand: what it costs, to confirm. Nothing is charged yet."""
    form = BuyPacksForm(request.POST)
    if not sub.has_card:
        form.add_error(None, "Add a card before buying orders.")
    if not form.is_valid():
        return _render(request, member, 400, buy_form=form)
    return _confirm_packs(request, member, sub, form.cleaned_data["packs"], form.cleaned_data["code"])


def _confirm_packs(
    request: AuthedRequest, member: Member, sub: Subscription, count: int, code: uuid.UUID, status: int = 200
) -> HttpResponse:
    quote = packs.quote(member.integration, count)
    ctx = {"sub": sub, "quote": quote, "code": code, "integration": member.integration, "member": member}
    return render(request, "billing/buy_packs.html", ctx, status=status)


@_owner_action()
def buy_packs(request: AuthedRequest, member: Member, sub: Subscription) -> HttpResponse:
    """The confirmed purchase: charged for the amount the owner confirmed, once per form."""
    form = ConfirmPacksForm(request.POST)
    if not sub.has_card:
        form.add_error(None, "Add a card before buying orders.")
    if not form.is_valid():
        return _render(request, member, 400, buy_form=form)
    count, code = form.cleaned_data["packs"], form.cleaned_data["code"]
    try:
        pack = packs.buy_by_hand(member.integration, count, code, form.cleaned_data["amount"])
    except packs.PriceChanged:
        messages.error(request, "The price changed since it was shown. Nothing was charged; confirm the new one.")
        return _confirm_packs(request, member, sub, count, code, status=409)
    except packs.PackInFlight:
        messages.info(request, "An order pack is being paid for right now. Look again in a moment.")
        return redirect("subscription", member.integration.number)
    except stripe_api.StripeError as exc:
        # The payment may have gone through: not "nothing was changed". The pack is asked about again, same key.
        logger.warning("Stripe's answer to a pack bought by hand was lost: %s", exc)
        messages.info(
            request,
            "Stripe did not confirm the payment yet. IEX asks Stripe again within a few minutes, in a way that never "
            "charges twice; until then the pack is listed below as pending.",
        )
        return redirect("subscription", member.integration.number)
    if pack is None:
        messages.info(request, "That purchase was already made; nothing more was charged.")
        return redirect("subscription", member.integration.number)
    return _paid_or_to_the_bank(request, pack)


def _paid_or_to_the_bank(request: AuthedRequest, pack: Pack) -> HttpResponse:
    """After a pack's payment: to the bank's page when it asks the card holder, else back, saying how it went."""
    if pack.bank_url:
        return redirect(pack.bank_url)
    if pack.status == Pack.Status.PAID:
        messages.success(
            request, f"Bought {pack.orders} orders for {pack.amount_display} A receipt is on its way."
        )
    elif pack.status == Pack.Status.PENDING:
        messages.info(
            request, "Stripe is still processing the payment; the pack is listed below until it is done."
        )
    elif pack.status == Pack.Status.ACTION_REQUIRED:
        messages.error(
            request, "Your bank did not confirm the payment. Nothing was charged; confirm it again below."
        )
    else:
        messages.error(
            request,
            f"The purchase was declined: {pack.failure}. Nothing was charged. Update the card, then try again.",
        )
    return redirect(reverse("subscription", args=[pack.integration.number]) + "#buy")


@_owner_action(if_stripe_fails="Stripe could not be reached. Nothing was charged; please try again.")
def confirm_pack(request: AuthedRequest, member: Member, sub: Subscription, code: str) -> HttpResponse:
    """The owner confirms a pack's payment that their bank asked them for (off-session it could not)."""
    pack = get_object_or_404(
        Pack.objects.select_related("integration"),
        integration=member.integration,
        code=code,
        status=Pack.Status.ACTION_REQUIRED,
    )
    return _paid_or_to_the_bank(request, packs.confirm(pack))


@_owner_action(
    "GET", if_stripe_fails="Stripe could not be reached to say how the payment went. Look again shortly."
)
def return_from_bank(request: AuthedRequest, member: Member, sub: Subscription, code: str) -> HttpResponse:
    """Back from the bank's page: Stripe says how the payment went (the address is never trusted on its own)."""
    pack = get_object_or_404(Pack.objects.select_related("integration"), integration=member.integration, code=code)
    if pack.payment_intent and pack.status != Pack.Status.PAID:
        pack = packs.read_after_bank(pack)
    return _paid_or_to_the_bank(request, pack)


@_owner_action()
def set_topup(request: AuthedRequest, member: Member, sub: Subscription) -> HttpResponse:
    form = TopUpForm(request.POST, instance=Subscription.objects.get(pk=sub.pk))
    if not form.is_valid():
        return _render(request, member, 400, topup_form=form)
    sub = form.save()
    if sub.topup_enabled:
        transaction.on_commit(lambda: Transfer.release_held(member.integration, "automatic top-up turned on"))
        messages.success(request, f"Automatic top-up is on, at most {sub.topup_cap} packs a month.")
    else:
        messages.success(request, "Automatic top-up is off. Orders beyond the allowance will be held.")
    return redirect("subscription", member.integration.number)


# A plan change's price is confirmed within this many seconds, and only while the subscription is as it was shown.
PLAN_PREVIEW_SECONDS = 15 * 60
PLAN_PREVIEW_SALT = "billing.plan-change"


@_owner_action(if_stripe_fails="Stripe could not tell the price of that change ({error}). Nothing was changed.")
def preview_plan_change(request: AuthedRequest, member: Member, sub: Subscription) -> HttpResponse:
    """The first step of a plan change: what it costs now and from when, to confirm. Nothing changes yet."""
    form = PlanForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose one of the plans.")
        return redirect("subscription", member.integration.number)
    plan = form.cleaned_data["plan"]
    if plan == sub.plan and sub.next_plan is None:
        messages.info(request, f"You are on {plan.name} already.")
        return redirect("subscription", member.integration.number)
    change = subscriptions.preview_plan_change(sub, plan)
    # What the confirmation applies: the plan shown (the current one, to take a waiting downgrade back), from the
    # instant shown, to the subscription as it was shown.
    applies = sub.plan if change.when == "take back" else plan
    token = signing.dumps(
        {"plan": applies.pk, "at": change.proration_date, "was": _as_shown(sub)}, salt=PLAN_PREVIEW_SALT
    )
    ctx = {"sub": sub, "change": change, "token": token, "integration": member.integration, "member": member}
    return render(request, "billing/plan_change.html", ctx)


def _as_shown(sub: Subscription) -> list:
    period_end = int(sub.current_period_end.timestamp()) if sub.current_period_end else None
    return [sub.plan_id, sub.next_plan_id, sub.status, sub.plan_changes, period_end]


@_owner_action()
def change_plan(request: AuthedRequest, member: Member, sub: Subscription) -> HttpResponse:
    """The confirmed plan change, as its preview said it."""
    number = member.integration.number
    try:
        asked = signing.loads(request.POST.get("token", ""), salt=PLAN_PREVIEW_SALT, max_age=PLAN_PREVIEW_SECONDS)
    except signing.BadSignature:  # expired too
        asked = None
    plan = Plan.objects.filter(available=True, pk=asked["plan"]).first() if asked else None
    if asked is None or plan is None or asked["was"] != _as_shown(sub):
        messages.error(
            request, "That price is out of date. Nothing was changed; choose the plan again to see it now."
        )
        return redirect(reverse("subscription", args=[number]) + "#change-plan")
    messages.success(request, subscriptions.change_plan(sub, plan, asked["at"]))
    return redirect("subscription", number)


@_owner_action()
def cancel_subscription(request: AuthedRequest, member: Member, sub: Subscription) -> HttpResponse:
    undo = request.POST.get("undo") == "1"
    subscriptions.set_cancel(sub, not undo)
    if undo:
        messages.success(request, "The subscription continues.")
    else:
        end = sub.current_period_end or sub.trial_ends
        messages.success(request, f"The subscription ends on {end:%d %B %Y}. The integration is deactivated then.")
    return redirect("subscription", member.integration.number)
