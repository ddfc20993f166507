"""Property: for any order, the e-conomic document's total equals the shop's total, or the transfer says why not.

Orders are generated the way Shopify computes them (prices with or without VAT, line discounts, shipping, 0 % and
25 % VAT); e-conomic is faked at the HTTP boundary computing totals by its documented rule (each line's net
rounded to the cent, VAT per line at its product's rate)."""

import json
from decimal import ROUND_HALF_UP, Decimal

import responses
from hypothesis import given, settings
from hypothesis import strategies as st

from connections.systems.economic import forms
from connections.systems.economic.client import EconomicClient
from connections.systems.shopify import forms as shopify_forms
from connections.systems.shopify import transforms as shopify

API = "https://restapi.e-conomic.com"
CENT = Decimal("0.01")


def cents(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


money = st.integers(min_value=1, max_value=500_000).map(lambda c: Decimal(c) / 100)
rate = st.sampled_from([Decimal("0"), Decimal("0.25")])


@st.composite
def shopify_orders(draw):
    includes_vat = draw(st.booleans())
    items, total, skus = [], Decimal("0"), {}
    for n in range(draw(st.integers(min_value=1, max_value=5))):
        price, quantity, vat = draw(money), draw(st.integers(min_value=1, max_value=9)), draw(rate)
        gross = price * quantity
        discount = cents(gross * Decimal(draw(st.integers(min_value=0, max_value=50))) / 100)
        after = gross - discount
        total += after if includes_vat else after + cents(after * vat)
        sku = f"SKU-{n}"
        skus[sku] = vat
        items.append(
            {
                "id": n,
                "sku": sku,
                "name": sku,
                "quantity": quantity,
                "price": str(price),
                "taxable": True,
                "tax_lines": [{"rate": float(vat), "price": "0.00"}],
                "discount_allocations": [{"amount": str(discount)}] if discount else [],
            }
        )
    shipping = []
    if draw(st.booleans()):
        fee = draw(money)
        total += fee if includes_vat else fee + cents(fee * Decimal("0.25"))
        shipping = [{"title": "Post", "price": str(fee), "tax_lines": [{"rate": 0.25, "price": "0.00"}]}]
    order = {
        "id": 1,
        "name": "#1",
        "updated_at": "2026-11-20T10:00:00+00:00",
        "created_at": "2026-11-20T10:00:00+00:00",
        "currency": "DKK",
        "financial_status": "paid",
        "taxes_included": includes_vat,
        "total_price": str(cents(total)),
        "total_discounts": "0.00",
        "line_items": items,
        "shipping_lines": shipping,
        "email": "a@b.example",
    }
    return order, {**skus, "SHIPPING": Decimal("0.25"), "ROUNDING": Decimal("0")}


def economic_total(body: dict, rates: dict) -> float:
    total = Decimal("0")
    for line in body["lines"]:
        net = cents(Decimal(str(line["quantity"])) * Decimal(str(line["unitNetPrice"])))
        total += net + cents(net * rates[line["product"]["productNumber"]])
    return float(total)


class Module:
    base_url = ""

    def get_credentials(self):
        return {"app_secret_token": "a", "agreement_grant_token": "b"}

    def settings_values(self):
        return forms.DEFAULT_SETTINGS


class Mapping:
    target_ref = target_state = ""


@settings(max_examples=150, deadline=None)
@given(shopify_orders())
def test_document_total_equals_the_order_total_or_the_transfer_says_why(generated):
    data, rates = generated
    order = shopify.to_order(data, shopify_forms.DEFAULT_SETTINGS)
    documents = []

    def save(request):
        body = json.loads(request.body)
        documents.append(economic_total(body, rates))
        return 200, {}, json.dumps({"draftInvoiceNumber": 1, "grossAmount": documents[-1]})

    with responses.RequestsMock(assert_all_requests_are_fired=False) as api:
        api.get(f"{API}/customers", json={"collection": [{"customerNumber": 1}]})
        api.get(f"{API}/invoices/drafts", json={"collection": []})
        api.get(f"{API}/invoices/booked", json={"collection": []})
        for number in rates:
            api.get(f"{API}/products/{number}", json={"productNumber": number})
        api.add_callback(responses.POST, f"{API}/invoices/drafts", callback=save)
        api.add_callback(responses.PUT, f"{API}/invoices/drafts/1", callback=save)
        outcome = EconomicClient(Module()).send_order(order, Mapping(), lambda *a: None)

    difference = Decimal(str(documents[0])) - order.total
    if outcome.status == "created":
        assert Decimal(str(documents[-1])).quantize(CENT) == order.total
        assert abs(difference) <= Decimal("0.10")
    else:
        assert outcome.status == "warning"
        assert outcome.reason.startswith("Error in totals validation")
        assert abs(difference) > Decimal("0.10")
