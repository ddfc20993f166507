"""The fake WooCommerce REST API v3 of a Danish store: its catalogue, orders, refunds, stock, taxes and webhooks.

The store's home is /woocommerce/ and its REST base /woocommerce/wp-json/wc/v3/. It is as strict as WooCommerce
where WooCommerce's documentation or source says how:

- Routing: pretty permalinks (/wp-json/...) unless the plain-permalinks setting is on: then /wp-json/ is the web
  server's HTML 404 page and the API answers only at /woocommerce/?rest_route=/wc/v3/... (which works either way,
  with API keys too, as in recent WooCommerce). A REST route WordPress does not know: 404 `rest_no_route`.
- Authentication first, before routing: `consumer_key` and `consumer_secret` in the query string (they take
  precedence), else HTTP Basic (unless the store strips the Authorization header, as some security plugins and hosts
  do). The sandbox is plain HTTP but answers as a store served over HTTPS (WooCommerce takes Basic keys only over
  HTTPS and wants OAuth 1.0a signatures otherwise). A known key with the wrong secret: 401
  `woocommerce_rest_authentication_error` with a WWW-Authenticate header; a read-only key writing: the same code,
  "The API key provided does not have write permissions."; no key or an unknown one: the request runs as a guest,
  whom every route refuses (401 `woocommerce_rest_cannot_view` and kin) after checking its parameters.
- Parameters are checked as WordPress checks them (all at once: 400 `rest_invalid_param`); lists page with `page`
  and `per_page` (1..100), answer X-WP-Total, X-WP-TotalPages and a Link header with rel="prev"/"next" only, and a
  page past the end is []. Dates (`after`, `before`, `modified_after`, `modified_before`) compare with the site's
  time (Europe/Copenhagen), or with GMT when `dates_are_gmt` is true; dates are shown without an offset.
- JSON is encoded as PHP's json_encode does (no spaces, "/" escaped as "\\/", non-ASCII as \\uXXXX): a webhook
  signature holds over the bytes sent, never over JSON re-encoded by the receiver.

Money is WooCommerce's own arithmetic (WC_Cart_Totals, WC_Discounts, WC_Tax), in cents, per line:

- P, a line's price: unit price x quantity as the shop charges it (gross when the order's prices include tax; the
  catalogue prices include VAT at the product's rate, 25 %, 12.5 % or 0 % by tax class, and an order whose prices
  exclude tax is charged round(price / (1 + rate)));
- coupons take whole cents off P before tax, lines in order of P x quantity (dearest first): `percent` takes
  floor(P x %) of each line, then the cents the cart's round(sum P x %) still wants one per unit from the first line;
  `fixed_cart` shares the amount equally per unit (floor), again with what is left, the last cents one per unit;
- tax of an amount A at rate r: A x r / (1 + r) when prices include tax, else A x r, kept raw (unrounded, unpadded:
  "2.598", "22.5", "0") in a line's taxes[]; a line's subtotal_tax / total_tax is that rounded to cents (half down
  when prices include tax, else half up: wc_get_tax_rounding_mode); subtotal (before coupons) and total (after) are
  ex-tax: P (less the discount) less the raw tax when prices include tax, shown rounded half up;
- shipping (a flat rate, entered ex-tax) and fees (given as charged: gross when prices include tax, their net
  being that / 1.25) are taxed the same way; `price` = total / quantity, a JSON number;
- the order: cart_tax = sum of the line items' and fees' total_tax, shipping_tax = the shipping lines', total_tax =
  cart_tax + shipping_tax, and total = sum of (total + total_tax) over line items, shipping lines and fees, exactly.
  WooCommerce's own total (round(sum of rounded line totals + raw fee and shipping totals + sum of rounded line
  taxes)) is the same for this store: when prices include tax a line's gross is whole cents, its net rounds half up
  and its tax half down, so the two always add up to the gross (at any rate). A fee or shipping cost with more than
  two decimals (a plugin's) could put WooCommerce's total a cent away from that sum; the sandbox makes none.
- discount_total / discount_tax are the sums of the lines' raw discounts and their raw tax, rounded (so they can be
  a cent away from the sum of subtotal - total of the shown lines; with prices including tax they add up to the
  gross discount exactly); a coupon line's discount / discount_tax are the same rounded to cents, unpadded ("50").
  A 100 % coupon leaves every line's total and total_tax "0.00", its taxes[] still naming the rate (total "0").
- A tax line states its rate (`rate_percent`, a float), except on orders made while the sandbox plays a store
  older than WooCommerce 3.7 (the setting woocommerce_legacy_tax_lines): there it is null, and the order's
  `version` is that older one; the rate is then only to be had from the amounts.

A refund of r more of a line's Q units is cumulative, so refunding every unit gives back exactly the line:
total(r) = round(T x r / Q) and tax(r) = round(X x r / Q) per rate, T and X the line's shown total and tax. Its lines
are negative, with meta `_refunded_item_id`; its `amount` (positive) defaults to what the lines and shipping come to.
An amount alone is a refund too, with empty line_items (a goodwill refund).
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import itertools
import json
import math
import random
import re
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import ROUND_FLOOR, ROUND_HALF_DOWN, ROUND_HALF_UP, Decimal
from http import HTTPStatus
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, unquote, urlencode

from sandbox.common import Request, Response, dispatch, entries, route, to_decimal
from sandbox.orders import PEOPLE

PREFIX = "/woocommerce"
CURRENCY = "DKK"
WC_VERSION = "9.4.0"
LEGACY_VERSION = "3.6.5"  # a WooCommerce that stored no rate_percent on tax lines
USER_AGENT = f"WooCommerce/{WC_VERSION} Hookshot (WordPress/6.7)"
JSON_TYPE = "application/json; charset=UTF-8"
HTML_TYPE = "text/html; charset=UTF-8"
FIRST_ORDER_ID = 5001  # orders, refunds and products made later share WordPress's post ids from here
CATALOGUE_SINCE = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)
ADMIN_USER_ID = 1  # refunds are made by the shop's admin
STATUSES = ("pending", "processing", "on-hold", "completed", "cancelled", "refunded", "failed")
LISTED_STATUSES = ("any", "trash", *STATUSES, "checkout-draft")  # the v3 `status` enum
WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")
EDITABLE = ("POST", "PUT", "PATCH")  # WP_REST_Server::EDITABLE
DEFAULT_PER_PAGE, MAX_PER_PAGE = 10, 100
BATCH_LIMIT = 100
# Each topic is one webhook of the store: its X-WC-Webhook-ID is fixed.
WEBHOOK_IDS = {
    f"{resource}.{event}": n
    for n, (resource, event) in enumerate(
        itertools.product(
            ("order", "product", "coupon", "customer"), ("created", "updated", "deleted", "restored")
        ),
        start=1,
    )
}
NO_ROUTE = "No route was found matching the URL and request method"
NO_WRITE = "The API key provided does not have write permissions."
BAD_SECRET = "Consumer secret is invalid."  # noqa: S105 (a message)
REALM = (
    'Basic realm="WooCommerce API. Use a consumer key in the username field and a consumer secret in the password '
    'field."'
)
REFUSED_GUEST = {
    "list": ("woocommerce_rest_cannot_view", "Sorry, you cannot list resources."),
    "view": ("woocommerce_rest_cannot_view", "Sorry, you cannot view this resource."),
    "edit": ("woocommerce_rest_cannot_edit", "Sorry, you are not allowed to edit this resource."),
    "batch": ("woocommerce_rest_cannot_batch", "Sorry, you are not allowed to batch manipulate this resource."),
}
CANNOT_REFUND = "woocommerce_rest_cannot_create_order_refund"
ZERO = Decimal(0)
CENT = Decimal("0.01")


class TaxRate(NamedTuple):
    id: int
    name: str
    percent: Decimal
    tax_class: str  # "" is the standard class
    shipping: bool

    @property
    def code(self) -> str:
        """WC_Tax::get_rate_code: COUNTRY-NAME-PRIORITY, upper case."""
        return f"DK-{self.name.upper()}-1"


RATES = (
    TaxRate(1, "Moms", Decimal(25), "", True),
    TaxRate(2, "Moms 0 %", Decimal(0), "zero-rate", False),
    # Not a Danish rate: there so that orders mix three rates, and a client cannot assume 25 % or 0 %.
    TaxRate(3, "Moms reduceret", Decimal("12.5"), "reduced-rate", False),
)
RATE_OF_CLASS = {rate.tax_class: rate for rate in RATES}


class Item(NamedTuple):
    id: int
    sku: str
    name: str
    price: str  # DKK including VAT at its tax class's rate, as the shop enters it
    stock: int | None  # None: WooCommerce does not manage its stock
    tax_class: str = ""


CATALOGUE = [
    Item(11, "COFFEE-500", "Kaffebønner, husets blanding 500 g", "129.95", 40),
    Item(12, "MUG-WHITE", "Kaffekop, hvid", "89.00", 25),
    # Newspapers are zero-rated in Denmark.
    Item(13, "PAPER-KAFFE", "Avis: Kaffeavisen, weekendudgave", "35.00", 60, "zero-rate"),
    Item(14, "GRINDER", "Kaffekværn, manuel", "549.95", None),
    Item(19, "FILTER-100", "Kaffefiltre nr. 4, 100 stk.", "12.99", 200),
    Item(20, "BOOK-DK", "Bog: Kaffens historie", "199.00", 30, "reduced-rate"),
]
# The variable product (15) and its variations (16-18): a size each.
TSHIRT = Item(15, "TSHIRT", "T-shirt med logo", "249.00", None)
SIZES = [(16, "S", 10), (17, "M", 15), (18, "L", 5)]
SIZE_ID, SIZE_NAME, SIZE_TAXONOMY = 1, "Størrelse", "pa_size"  # the global attribute of the variations
SHIPPING = ("PostNord Pakke", Decimal("39.20"))  # a flat rate, ex-tax: 49.00 with VAT
FEE = ("Gebyr", Decimal("15.00"))  # as charged: incl. VAT
COUPONS = [("KAFFE10", "percent", Decimal(10)), ("VELKOMMEN50", "fixed_cart", Decimal(50))]
PAYMENTS = {"stripe": "Kort", "bacs": "Bankoverførsel"}
DANES = [person for person in PEOPLE if person.country == "DK"]
CUSTOMER_AGENT = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148"
ORDER_TOTALS = (
    "discount_total",
    "discount_tax",
    "shipping_total",
    "shipping_tax",
    "cart_tax",
    "total",
    "total_tax",
)
ORDER_OVERRIDES = {"status", "prices_include_tax", "line_items", "coupon", "fees", "shipping", "meta_data"}
ORDER_CHANGES = {
    *("status", "customer_note", "billing", "shipping", "payment_method", "payment_method_title"),
    *("transaction_id", "meta_data"),
}
PRODUCT_OVERRIDES = {"name", "sku", "regular_price", "manage_stock", "stock_quantity", "tax_class", "variations"}
VARIATION_KEYS = (
    *("id", "date_created", "date_created_gmt", "date_modified", "date_modified_gmt", "description", "permalink"),
    *("sku", "price", "regular_price", "sale_price", "date_on_sale_from", "date_on_sale_from_gmt"),
    *("date_on_sale_to", "date_on_sale_to_gmt", "on_sale", "status", "purchasable", "virtual", "downloadable"),
    *(
        "downloads",
        "download_limit",
        "download_expiry",
        "tax_status",
        "tax_class",
        "manage_stock",
        "stock_quantity",
    ),
    *("stock_status", "backorders", "backorders_allowed", "backordered", "low_stock_amount", "weight"),
    *("dimensions", "shipping_class", "shipping_class_id", "image", "attributes", "menu_order", "meta_data"),
)


# A new product's fields after its stock, the same for every product (copied: the lists are filled in later).
PRODUCT_EXTRAS: dict[str, Any] = {
    "low_stock_amount": None,
    "sold_individually": False,
    "weight": "",
    "dimensions": {"length": "", "width": "", "height": ""},
    "shipping_required": True,
    "shipping_taxable": True,
    "shipping_class": "",
    "shipping_class_id": 0,
    "reviews_allowed": True,
    "average_rating": "0.00",
    "rating_count": 0,
    "related_ids": [],
    "upsell_ids": [],
    "cross_sell_ids": [],
    "parent_id": 0,
    "purchase_note": "",
    "categories": [{"id": 15, "name": "Kaffe", "slug": "kaffe"}],
    "tags": [],
    "images": [],
    "attributes": [],
    "default_attributes": [],
    "variations": [],
    "grouped_products": [],
    "menu_order": 0,
    "meta_data": [],
}


class WooError(Exception):
    """An answer in WordPress's error shape: {"code", "message", "data": {"status", ...}}."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None, **data: Any):
        super().__init__(message)
        self.status, self.code, self.message, self.headers, self.data = status, code, message, headers or {}, data

    @property
    def body(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "data": {"status": self.status, **self.data}}

    def response(self) -> Response:
        return wp_response(self.status, self.body, self.headers)


class Settings(NamedTuple):
    """The store's keys and server quirks (from the sandbox's Config)."""

    read_write: tuple[str, str]  # consumer key, consumer secret
    read: tuple[str, str]
    strips_authorization: bool
    plain_permalinks: bool


class Links(NamedTuple):
    site: str  # the store's home, e.g. http://127.0.0.1:8900/woocommerce
    plain: bool  # plain permalinks: REST URLs carry the route in ?rest_route=

    def rest(self, path: str, params: dict[str, str] | None = None) -> str:
        """rest_url(path) with query parameters, as WordPress builds it."""
        if self.plain:
            query = {"rest_route": path, **{k: v for k, v in (params or {}).items() if k != "rest_route"}}
            return f"{self.site}/?{urlencode(query, safe='/:,')}"
        url = f"{self.site}/wp-json{path}"
        return f"{url}?{urlencode(params, safe='/:,')}" if params else url


class Event(NamedTuple):
    """A webhook to send: `item` rendered as the REST API shows it, or sent as given when `whole`."""

    topic: str
    item: dict[str, Any]
    whole: bool = False


# Formats ------------------------------------------------------------------------------------------------------------


def wp_json(payload: Any) -> bytes:
    """JSON as WordPress sends it (wp_json_encode): compact, "/" escaped, non-ASCII as \\uXXXX."""
    return json.dumps(payload, separators=(",", ":")).replace("/", "\\/").encode()


def wp_response(status: int, payload: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(status, wp_json(payload), {"Content-Type": JSON_TYPE, **(headers or {})})


def error(status: int, message: str) -> Response:
    """A fault's answer, in WordPress's error shape."""
    code = HTTPStatus(status).phrase.lower().replace(" ", "_").replace("-", "_")
    return WooError(status, code, message).response()


def padded(amount: Decimal) -> str:
    """wc_format_decimal(amount, 2): rounded half up to cents, two decimals (and no "-0.00")."""
    rounded = amount.quantize(CENT, ROUND_HALF_UP)
    return str(rounded if rounded else abs(rounded))


def raw(amount: Decimal) -> str:
    """A stored float as WooCommerce shows it unformatted (wc_format_decimal without dp): "0.9", "2.598", "0"."""
    text = format(amount.quantize(Decimal("0.000001"), ROUND_HALF_UP), "f").rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def site_time(moment: datetime) -> datetime:
    """The shop's wall-clock time (naive) of an aware moment in Copenhagen: CET, or CEST from the last Sunday of March
    to the last Sunday of October at 01:00 UTC (the EU rule; no tz database needed in a slim image)."""
    utc = moment.astimezone(UTC)
    summer = _last_sunday(utc.year, 3) <= utc < _last_sunday(utc.year, 10)
    return (utc + timedelta(hours=2 if summer else 1)).replace(tzinfo=None)


def _last_sunday(year: int, month: int) -> datetime:
    last = datetime(year, month + 1, 1, 1, tzinfo=UTC) - timedelta(days=1)
    return last - timedelta(days=(last.weekday() + 1) % 7)


def _text(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S")


def _stamp(record: dict[str, Any], name: str, moment: datetime | None) -> None:
    """Set a date field and its _gmt twin (None: both null)."""
    record[name] = _text(site_time(moment)) if moment else None
    record[f"{name}_gmt"] = _text(moment.astimezone(UTC)) if moment else None


def _gmt_of(record: dict[str, Any], name: str) -> datetime | None:
    value = record.get(f"{name}_gmt")
    return datetime.fromisoformat(value).replace(tzinfo=UTC) if isinstance(value, str) and value else None


def _price_html(price: str) -> str:
    amount = f"{Decimal(price):.2f}".replace(".", ",")
    return (
        f'<span class="woocommerce-Price-amount amount"><bdi>{amount}&nbsp;'
        '<span class="woocommerce-Price-currencySymbol">kr.</span></bdi></span>'
    )


def _slug(name: str) -> str:
    plain = name.lower().replace("æ", "ae").replace("ø", "o").replace("å", "a")
    return re.sub(r"[^a-z0-9]+", "-", plain).strip("-")


# Money, in cents --------------------------------------------------------------------------------------------------


def _tax(cents: Decimal, rate: TaxRate, included: bool) -> Decimal:
    """WC_Tax::calc_tax for one rate, unrounded: the part of `cents` the rate makes up, or the tax on top."""
    share = rate.percent / 100
    return cents * share / (1 + share) if included else cents * share


def _round_tax(cents: Decimal, included: bool) -> Decimal:
    """A line's tax to whole cents: half down when prices include tax (so net + tax keeps the gross), else half up."""
    return cents.quantize(Decimal(1), ROUND_HALF_DOWN if included else ROUND_HALF_UP)


def _whole(cents: Decimal) -> Decimal:
    return cents.quantize(Decimal(1), ROUND_HALF_UP)


def _money(cents: Decimal) -> str:
    return padded(cents / 100)


def _raw(cents: Decimal) -> str:
    return raw(cents / 100)


@dataclass
class _Line:
    item: dict[str, Any]  # the product or variation sold, as stored
    quantity: int
    unit: Decimal  # what one unit costs in the order's terms: gross when prices include tax

    @property
    def cents(self) -> Decimal:
        return self.unit * self.quantity * 100

    @property
    def rate(self) -> TaxRate:
        return RATE_OF_CLASS.get(self.item["tax_class"], RATES[0])


class _Coupon(NamedTuple):
    code: str
    kind: str  # percent | fixed_cart
    amount: Decimal


class _Sale(NamedTuple):
    """What an order sells and on what terms."""

    lines: list[_Line]
    coupon: _Coupon | None
    fees: list[tuple[str, Decimal, bool]]  # name, as charged, taxable
    shipping: tuple[str, Decimal] | None  # method title, cost ex-tax
    included: bool  # the prices include tax


def _discounts(lines: list[_Line], coupon: _Coupon | None) -> list[Decimal]:
    """Each line's discount in whole cents, as WC_Discounts shares a coupon out."""
    sharing = _Sharing(lines)
    if coupon is not None and coupon.kind == "percent":
        sharing.percent(coupon.amount)
    elif coupon is not None:
        sharing.fixed_cart(coupon.amount * 100)
    return sharing.taken


class _Sharing:
    """A coupon being shared out over an order's lines: `taken` is what each line gave so far, in cents."""

    def __init__(self, lines: list[_Line]) -> None:
        self.lines = lines
        self.taken = [ZERO for _ in lines]
        # sort_by_price: line price x quantity, dearest first (a stable sort, as PHP 8's).
        self.order = sorted(range(len(lines)), key=lambda i: -(lines[i].cents * lines[i].quantity))

    def left(self, i: int) -> Decimal:
        return self.lines[i].cents - self.taken[i]

    def percent(self, percent: Decimal) -> None:
        """floor(P x %) of each line, then what the cart's rounded total still wants, a cent per unit."""
        given = ZERO
        for i in self.order:
            share = min(self.left(i), (self.lines[i].cents * percent / 100).quantize(Decimal(1), ROUND_FLOOR))
            self.taken[i] += share
            given += share
        cart = sum((self.lines[i].cents for i in self.order), ZERO)
        wanted = (cart * percent / 100).quantize(Decimal(1), ROUND_HALF_DOWN)
        if given < wanted:
            self.remainder(self.order, wanted - given)

    def fixed_cart(self, amount: Decimal) -> Decimal:
        """`amount` cents equally per unit (floored) over the lines with something left, then again with the rest;
        what is given."""
        eligible = [i for i in self.order if self.left(i) > 0]
        units = sum(self.lines[i].quantity for i in eligible)
        if not units:
            return ZERO
        per_unit = (amount / units).quantize(Decimal(1), ROUND_FLOOR)
        if per_unit <= 0:
            return self.remainder(eligible, amount)
        given = ZERO
        for i in eligible:
            share = min(self.left(i), per_unit * self.lines[i].quantity)
            self.taken[i] += share
            given += share
        if 0 < given < amount:
            given += self.fixed_cart(amount - given)
        return given

    def remainder(self, indexes: list[int], amount: Decimal) -> Decimal:
        """One cent per unit, from the first line on, until `amount` is given; what is given."""
        given = ZERO
        for i in indexes:
            for _ in range(self.lines[i].quantity):
                cent = min(self.left(i), Decimal(1))
                self.taken[i] += cent
                given += cent
                if given >= amount:
                    return given
        return given


# The store --------------------------------------------------------------------------------------------------------


class WooCommerceState:
    """The store's catalogue, orders and refunds, and the webhooks it has yet to send (`events`). Not locked by
    itself: the server holds its lock around every use. `clock` gives the time (aware); tests may set it."""

    def __init__(self, seed: int | None = None) -> None:
        self.rng = random.Random(seed)
        self.clock: Callable[[], datetime] = lambda: datetime.now(UTC)
        self.products: dict[int, dict[str, Any]] = {}  # products and variations by id, as /products shows them
        self.orders: dict[int, dict[str, Any]] = {}
        self.refunds: dict[int, list[dict[str, Any]]] = {}  # by order id, newest first
        self.trashed_from: dict[int, str] = {}  # a trashed order's status before
        self.events: list[Event] = []
        self.webhooks_sent = 0
        self.webhooks_failed = 0
        self._next_post_id = FIRST_ORDER_ID
        self._item_ids = itertools.count(101)  # order items (lines, fees, shipping, taxes, coupons)
        self._meta_ids = itertools.count(1001)
        for item in CATALOGUE:
            self._add_record(item.id, item.name, item.sku, item.price, item.stock, item.tax_class, CATALOGUE_SINCE)
        parent = self._add_record(
            TSHIRT.id, TSHIRT.name, TSHIRT.sku, TSHIRT.price, None, "", CATALOGUE_SINCE, kind="variable"
        )
        for variation_id, size, stock in SIZES:
            self._add_variation(parent, variation_id, f"{TSHIRT.sku}-{size}", size, TSHIRT.price, stock)

    def summary(self) -> dict[str, Any]:
        return {
            "orders": len(self.orders),
            "refunds": sum(len(each) for each in self.refunds.values()),
            "products": sum(1 for item in self.products.values() if item["type"] != "variation"),
            "variations": sum(1 for item in self.products.values() if item["type"] == "variation"),
            "webhooks_sent": self.webhooks_sent,
            "webhooks_failed": self.webhooks_failed,
        }

    def take_events(self) -> list[Event]:
        events, self.events = self.events, []
        return events

    def now(self) -> datetime:
        return self.clock().astimezone(UTC).replace(microsecond=0)

    def _later(self, record: dict[str, Any]) -> datetime:
        """Now, or a second after the record's date_modified (dates have whole seconds): a change is always seen."""
        previous = _gmt_of(record, "date_modified")
        return max(self.now(), previous + timedelta(seconds=1)) if previous else self.now()

    def _post_id(self) -> int:
        post_id = self._next_post_id
        self._next_post_id += 1
        return post_id

    def _meta(self, key: str, value: Any, display: tuple[str, Any] | None = None) -> dict[str, Any]:
        meta = {"id": next(self._meta_ids), "key": key, "value": value}
        if display:
            meta.update(display_key=display[0], display_value=display[1])
        return meta

    # Products ---------------------------------------------------------------------------------------------------

    def _add_record(
        self,
        post_id: int,
        name: str,
        sku: str,
        price: str,
        stock: int | None,
        tax_class: str,
        at: datetime,
        kind: str = "simple",
    ) -> dict[str, Any]:
        """A product as /products shows it (without _links; the permalink is a path until rendered)."""
        record: dict[str, Any] = {
            "id": post_id,
            "name": name,
            "slug": _slug(name),
            "permalink": f"/produkt/{_slug(name)}/",
        }
        _stamp(record, "date_created", at)
        _stamp(record, "date_modified", at)
        record.update(_selling(kind, sku, price))
        record.update(_stocking(tax_class, stock))
        record.update(copy.deepcopy(PRODUCT_EXTRAS))
        self.products[post_id] = record
        return record

    def _add_variation(
        self, parent: dict[str, Any], post_id: int, sku: str, option: str, price: str, stock: int | None
    ) -> dict[str, Any]:
        at = _gmt_of(parent, "date_created") or self.now()
        record = self._add_record(
            post_id, f"{parent['name']} - {option}", sku, price, stock, parent["tax_class"], at, kind="variation"
        )
        record.update(
            slug=f"{parent['slug']}-{option.lower()}",
            permalink=f"{parent['permalink']}?attribute_{SIZE_TAXONOMY}={option.lower()}",
            parent_id=parent["id"],
            attributes=[{"id": SIZE_ID, "name": SIZE_NAME, "option": option}],
            categories=[],
        )
        parent["variations"].append(post_id)
        options = [a["option"] for v in parent["variations"] for a in self.products[v]["attributes"]]
        parent["attributes"] = [
            {
                "id": SIZE_ID,
                "name": SIZE_NAME,
                "slug": SIZE_TAXONOMY,
                "position": 0,
                "visible": True,
                "variation": True,
                "options": options,
            }
        ]
        _sync_parent(self, parent)
        return record

    def add_product(self, overrides: dict[str, Any]) -> list[dict[str, Any]]:
        """A new product (and its variations, if `variations` [{"sku", "option", "regular_price"?,
        "stock_quantity"?}] makes it variable), announced by product.created each; ValueError if invalid.
        Defaults: "Sandbox-produkt n", SKU SANDBOX-n at 100.00 incl. VAT, stock managed, 0 in stock."""
        unknown = set(overrides) - PRODUCT_OVERRIDES
        if unknown:
            raise ValueError(f"unknown product fields: {', '.join(sorted(unknown))}")
        n = sum(1 for item in self.products.values() if item["type"] != "variation") + 1
        name = _string(overrides, "name", f"Sandbox-produkt {n}")
        sku = _string(overrides, "sku", f"SANDBOX-{n}")
        price = _price(overrides.get("regular_price", "100.00"))
        tax_class = _string(overrides, "tax_class", "")
        if tax_class not in RATE_OF_CLASS:
            raise ValueError(f"tax_class must be one of {', '.join(map(repr, RATE_OF_CLASS))}")
        variations = overrides.get("variations")
        specs = entries(variations, "variations", "sku", "option") if variations is not None else []
        self._check_skus([sku, *(str(spec["sku"]) for spec in specs)])
        stock = _stock_of(overrides) if not specs else None
        kind = "variable" if specs else "simple"
        made = [self._add_record(self._post_id(), name, sku, price, stock, tax_class, self.now(), kind)]
        for spec in specs:
            stock = _stock_of(spec)
            option, each_price = str(spec["option"]), _price(spec.get("regular_price", price))
            made.append(self._add_variation(made[0], self._post_id(), str(spec["sku"]), option, each_price, stock))
        self.events += [Event("product.created", item) for item in made]
        return made

    def _check_skus(self, skus: list[str], keep: dict[str, Any] | None = None) -> None:
        taken = {item["sku"] for item in self.products.values() if item is not keep and item["sku"]}
        for sku in skus:
            if sku in taken:
                raise WooError(400, "product_invalid_sku", "Invalid or duplicated SKU.", resource_id=0)
            taken.add(sku)

    def update_product(self, item: dict[str, Any], changes: dict[str, Any]) -> None:
        """Apply a PUT's checked changes as WooCommerce does: the stock quantity only where the stock is managed
        (after `manage_stock` of the same body); an unmanaged item's quantity is cleared. Every save bumps
        date_modified and fires product.updated; a variation's parent is saved (and announced) too."""
        if "sku" in changes:
            self._check_skus([changes["sku"]], keep=item)
            item["sku"] = changes["sku"]
        if "manage_stock" in changes:
            item["manage_stock"] = changes["manage_stock"]
        if "backorders" in changes:
            item["backorders"] = changes["backorders"]
        if item["manage_stock"]:
            if "stock_quantity" in changes:
                item["stock_quantity"] = changes["stock_quantity"]
            elif "inventory_delta" in changes:
                item["stock_quantity"] = (item["stock_quantity"] or 0) + changes["inventory_delta"]
            item["stock_status"] = _stock_status(item["stock_quantity"] or 0, item["backorders"])
        else:
            item["stock_quantity"] = None
            item["stock_status"] = changes.get("stock_status", item["stock_status"])
        item["backorders_allowed"] = item["backorders"] != "no"
        for key in ("name", "regular_price"):
            if key in changes:
                item[key] = changes[key]
        if "regular_price" in changes:
            item.update(price=changes["regular_price"], price_html=_price_html(changes["regular_price"]))
        if item["type"] == "variable":
            _sync_parent(self, item)
        self._saved(item)
        parent = self.products.get(item["parent_id"])
        if parent is not None:
            _sync_parent(self, parent)
            self._saved(parent)

    def _saved(self, item: dict[str, Any]) -> None:
        _stamp(item, "date_modified", self._later(item))
        self.events.append(Event("product.updated", item))

    def by_sku(self, sku: Any) -> dict[str, Any]:
        """The product or variation an order line may sell (not a variable product itself); ValueError if none."""
        for item in self.products.values():
            if item["sku"] == sku and item["type"] != "variable":
                return item
        if any(item["sku"] == sku for item in self.products.values()):
            raise ValueError(f"{sku} is a variable product: order one of its variations")
        raise ValueError(f"no product or variation has SKU {sku!r}")

    # Orders -----------------------------------------------------------------------------------------------------

    def create_order(self, overrides: dict[str, Any], legacy_tax_lines: bool = False) -> dict[str, Any]:
        """A new order, random where not overridden, announced by order.created; ValueError for bad overrides.

        Overrides: `status`; `prices_include_tax` (default true, the store's setting); `line_items` [{"sku",
        "quantity"}] (then no random coupon or fee); `coupon` {"code", "discount_type": percent|fixed_cart,
        "amount"} or null; `fees` [{"name", "total" (as charged: gross when prices include tax), "taxable"?}];
        `shipping` true/false or {"total" (ex-tax), "method_title"?}; `meta_data` [{"key", "value"}] added.
        With `legacy_tax_lines` the order is one a store older than WooCommerce 3.7 made (see `_as_legacy`).
        """
        unknown = set(overrides) - ORDER_OVERRIDES
        if unknown:
            raise ValueError(f"unknown order overrides: {', '.join(sorted(unknown))}")
        draw = self._draw()
        status = overrides.get("status", draw["status"])
        if status not in STATUSES:
            raise ValueError(f"status must be one of {', '.join(STATUSES)}, not {status!r}")
        sale = self._sale(overrides, draw)
        extra = [
            self._meta(str(m["key"]), m["value"])
            for m in entries(overrides.get("meta_data", []), "meta_data", "key", "value")
        ]
        order = self._new_order(draw, status, sale)
        order["meta_data"] += extra
        if legacy_tax_lines:
            _as_legacy(order)
        self.orders[order["id"]] = order
        self.events.append(Event("order.created", order))
        return order

    def _sale(self, overrides: dict[str, Any], draw: dict[str, Any]) -> _Sale:
        """What the new order sells and on what terms: as overridden, else as drawn; ValueError if invalid."""
        included = overrides.get("prices_include_tax", True)
        if not isinstance(included, bool):
            raise ValueError("prices_include_tax must be true or false")
        given = "line_items" in overrides
        basket = _basket(self, overrides["line_items"]) if given else draw["basket"]
        lines = [_Line(item, quantity, _unit(item, included)) for item, quantity in basket]
        coupon = _coupon_of(overrides["coupon"]) if "coupon" in overrides else (None if given else draw["coupon"])
        fees = _fees_of(overrides["fees"]) if "fees" in overrides else ([] if given else draw["fees"])
        shipping = _shipping_of(overrides.get("shipping", draw["shipping"]))
        return _Sale(lines, coupon, fees, shipping, included)

    def _draw(self) -> dict[str, Any]:
        """Every random choice of a new order, drawn in one fixed sequence whatever is overridden."""
        rng = self.rng
        sellable = [item for item in self.products.values() if item["type"] != "variable"]
        picks = rng.sample(sellable, rng.randint(1, 3))
        basket = [(item, rng.randint(1, 3)) for item in picks]
        code, kind, amount = rng.choice(COUPONS)
        gross = sum(Decimal(item["price"]) * quantity for item, quantity in basket)
        return {
            "status": rng.choices(STATUSES[:4], weights=[10, 45, 10, 35])[0],
            "basket": basket,
            "coupon": _Coupon(code, kind, amount) if rng.random() < 0.2 and gross > 2 * amount else None,
            "fees": [(FEE[0], FEE[1], True)] if rng.random() < 0.1 else [],
            "shipping": rng.random() < 0.85,
            "person": rng.choice(DANES),
            "registered": rng.random() < 0.7,
            "card": rng.random() < 0.75,
            "pickup": rng.random() < 0.4,
            "note": rng.random() < 0.1,
            "key": "".join(rng.choices("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", k=13)),
            "hash": f"{rng.getrandbits(128):032x}",
            "charge": f"pi_{rng.getrandbits(96):024x}",
        }

    def _new_order(self, draw: dict[str, Any], status: str, sale: _Sale) -> dict[str, Any]:
        order_id, now = self._post_id(), self.now()
        method = "bacs" if status == "on-hold" else "stripe" if status == "pending" or draw["card"] else "bacs"
        priced = self._priced(sale)
        order: dict[str, Any] = {
            "id": order_id,
            "parent_id": 0,
            "number": str(order_id),
            "order_key": f"wc_order_{draw['key']}",
            "created_via": "checkout",
            "version": WC_VERSION,
            "status": status,
            "currency": CURRENCY,
        }
        _stamp(order, "date_created", now)
        _stamp(order, "date_modified", now)
        order.update({key: priced.pop(key) for key in ORDER_TOTALS})
        order.update({"prices_include_tax": sale.included, **_customer_fields(draw, status, method)})
        _stamp(order, "date_paid", now if status in ("processing", "completed") else None)
        _stamp(order, "date_completed", now if status == "completed" else None)
        meta = self._order_meta(draw, sale.shipping)
        order.update({"cart_hash": draw["hash"], "meta_data": meta, **priced, "refunds": []})
        _set_flags(order, new=True)
        return order

    def _order_meta(self, draw: dict[str, Any], shipping: tuple[str, Decimal] | None) -> list[dict[str, Any]]:
        meta = [self._meta("is_vat_exempt", "no"), self._meta("_wc_order_attribution_source_type", "typein")]
        if shipping and draw["pickup"]:
            # Plugins keep objects in order meta; the REST API shows them as JSON objects.
            point = {"id": "95558", "name": "Netto Nørregade", "address": "Nørregade 20", "zip": "8000"}
            meta.append(self._meta("_pickup_point", point))
        return meta

    def _priced(self, sale: _Sale) -> dict[str, Any]:
        """The money of an order (see the module docstring), its items numbered as WooCommerce's checkout makes
        them: line items, fees, shipping, taxes, coupons."""
        if not sale.lines:
            raise ValueError("an order needs at least one line item")
        discounts = _discounts(sale.lines, sale.coupon)
        taxes: dict[int, list[Decimal]] = {}  # rate id: [items and fees tax, shipping tax], rounded per line
        # Each line with what it adds to the order's total (its shown total + total_tax), in cents.
        items = [
            self._line_item(line, discount, sale.included, taxes)
            for line, discount in zip(sale.lines, discounts, strict=True)
        ]
        fees = [
            self._fee_line(name, charged, taxable, sale.included, taxes) for name, charged, taxable in sale.fees
        ]
        line_items = [item for item, _ in items]
        shipped = (
            [] if sale.shipping is None else [self._shipping_line(sale.shipping, sale.included, taxes, line_items)]
        )
        total = sum((shown for _, shown in [*items, *fees, *shipped]), ZERO)
        discount_ex, discount_tax = _discount_parts(sale, discounts)
        shipping_lines = [line for line, _ in shipped]
        return {
            **_order_totals(discount_ex, discount_tax, taxes, shipping_lines, total),
            "line_items": line_items,
            "tax_lines": [self._tax_line(rate_id, amounts) for rate_id, amounts in taxes.items()],
            "shipping_lines": shipping_lines,
            "fee_lines": [fee for fee, _ in fees],
            "coupon_lines": [self._coupon_line(sale.coupon, discount_ex, discount_tax)] if sale.coupon else [],
        }

    def _line_item(
        self, line: _Line, discount: Decimal, included: bool, taxes: dict[int, list[Decimal]]
    ) -> tuple[dict[str, Any], Decimal]:
        """A line item, and what it adds to the order's total (its shown total + total_tax), in cents."""
        rate, gross, item = line.rate, line.cents, line.item
        subtotal_raw, total_raw = _tax(gross, rate, included), _tax(gross - discount, rate, included)
        subtotal = gross - subtotal_raw if included else gross
        net = gross - discount - total_raw if included else gross - discount
        tax = _round_tax(total_raw, included)
        taxes.setdefault(rate.id, [ZERO, ZERO])[0] += tax
        parent = self.products.get(item["parent_id"])
        meta = []
        for attribute in item["attributes"] if parent else []:
            option = attribute["option"]
            taxonomy = SIZE_TAXONOMY
            meta.append(self._meta(taxonomy, option.lower(), (attribute["name"], option)))
        line_item = {
            "id": next(self._item_ids),
            "name": item["name"],
            "product_id": parent["id"] if parent else item["id"],
            "variation_id": item["id"] if parent else 0,
            "quantity": line.quantity,
            "tax_class": item["tax_class"],
            "subtotal": _money(subtotal),
            "subtotal_tax": _money(_round_tax(subtotal_raw, included)),
            "total": _money(net),
            "total_tax": _money(tax),
            "taxes": [{"id": rate.id, "total": _raw(total_raw), "subtotal": _raw(subtotal_raw)}],
            "meta_data": meta,
            "sku": item["sku"],
            "price": float(net / 100 / line.quantity),
            "parent_name": parent["name"] if parent else None,
        }
        return line_item, _whole(net) + tax

    def _fee_line(
        self, name: str, charged: Decimal, taxable: bool, included: bool, taxes: dict[int, list[Decimal]]
    ) -> tuple[dict[str, Any], Decimal]:
        """A fee charged `charged` (gross when prices include tax), entered in WooCommerce ex-tax, as fees are."""
        rate = RATES[0]
        cents = charged * 100
        net = cents / (1 + rate.percent / 100) if taxable and included else cents
        tax_raw = _tax(net, rate, False) if taxable else ZERO
        tax = _round_tax(tax_raw, included)
        if taxable:
            taxes.setdefault(rate.id, [ZERO, ZERO])[0] += tax
        fee = {
            "id": next(self._item_ids),
            "name": name,
            "tax_class": "",
            "tax_status": "taxable" if taxable else "none",
            "total": _money(net),
            "total_tax": _money(tax),
            "taxes": [{"id": rate.id, "total": _raw(tax_raw), "subtotal": ""}] if taxable else [],
            "meta_data": [],
        }
        return fee, _whole(net) + tax

    def _shipping_line(
        self,
        shipping: tuple[str, Decimal],
        included: bool,
        taxes: dict[int, list[Decimal]],
        line_items: list[dict[str, Any]],
    ) -> tuple[dict[str, Any], Decimal]:
        """The flat-rate shipping line: its cost is entered ex-tax, whatever the prices."""
        title, cost = shipping
        rate, cents = RATES[0], cost * 100
        tax_raw = _tax(cents, rate, False)
        tax = _round_tax(tax_raw, included)
        taxes.setdefault(rate.id, [ZERO, ZERO])[1] += tax
        items = ", ".join(f"{line['name']} &times; {line['quantity']}" for line in line_items)
        line = {
            "id": next(self._item_ids),
            "method_title": title,
            "method_id": "flat_rate",
            "instance_id": "1",
            "total": _money(cents),
            "total_tax": _money(tax),
            "taxes": [{"id": rate.id, "total": _raw(tax_raw), "subtotal": ""}],
            "meta_data": [self._meta("Varer", items, ("Varer", items))],
        }
        return line, _whole(cents) + tax

    def _tax_line(self, rate_id: int, amounts: list[Decimal]) -> dict[str, Any]:
        rate = next(rate for rate in RATES if rate.id == rate_id)
        return {
            "id": next(self._item_ids),
            "rate_code": rate.code,
            "rate_id": rate.id,
            "label": rate.name,
            "compound": False,
            "tax_total": _money(amounts[0]),
            "shipping_tax_total": _money(amounts[1]),
            "rate_percent": float(rate.percent),
            "meta_data": [],
        }

    def _coupon_line(self, coupon: _Coupon, discount: Decimal, tax: Decimal) -> dict[str, Any]:
        # WC_Cart::get_coupon_discount_amount rounds to cents (wc_round_discount: half down); the item keeps the
        # float, which the REST API shows unformatted ("50", "21.83"): padding is UNCONFIRMED, raw is the source.
        return {
            "id": next(self._item_ids),
            "code": coupon.code,
            "discount": raw((discount / 100).quantize(CENT, ROUND_HALF_DOWN)),
            "discount_tax": raw((tax / 100).quantize(CENT, ROUND_HALF_DOWN)),
            "discount_type": coupon.kind,
            "nominal_amount": float(coupon.amount),
            "free_shipping": False,
            "meta_data": [],
        }

    def update_order(self, order: dict[str, Any], changes: dict[str, Any]) -> None:
        """Simple changes (no repricing), announced by order.updated; ValueError if they cannot apply.

        `status` (paid statuses set date_paid, completed date_completed; trash has its own route),
        `customer_note`, `billing` / `shipping` (addresses, merged), payment fields, `meta_data` [{"key", "value"}]
        (a key kept is replaced)."""
        unknown = set(changes) - ORDER_CHANGES
        if unknown:
            raise ValueError(f"cannot change {', '.join(sorted(unknown))} (no repricing)")
        status = changes.get("status", order["status"])
        if status not in STATUSES:
            raise ValueError(f"status must be one of {', '.join(STATUSES)}, not {status!r}")
        for key in ("billing", "shipping"):
            if key in changes and (not isinstance(changes[key], dict) or set(changes[key]) - set(order[key])):
                raise ValueError(f"{key} must be an object of the address's fields")
        metas = entries(changes.get("meta_data", []), "meta_data", "key", "value")
        for key in ("customer_note", "payment_method", "payment_method_title", "transaction_id"):
            if key in changes:
                order[key] = str(changes[key])
        for key in ("billing", "shipping"):
            order[key].update(changes.get(key, {}))
        for meta in metas:
            kept = next((m for m in order["meta_data"] if m.get("key") == meta["key"]), None)
            if kept is not None:
                kept["value"] = meta["value"]
            else:
                order["meta_data"].append(self._meta(str(meta["key"]), meta["value"]))
        self._set_status(order, status)
        self.events.append(Event("order.updated", order))

    def _set_status(self, order: dict[str, Any], status: str) -> None:
        """The new status, with the dates it sets, and date_modified bumped."""
        moment = self._later(order)
        if status in ("processing", "completed") and not order.get("date_paid"):
            _stamp(order, "date_paid", moment)
        if status == "completed" and order["status"] != "completed":
            _stamp(order, "date_completed", moment)
        order["status"] = status
        _stamp(order, "date_modified", moment)
        _set_flags(order)

    def trash_order(self, order: dict[str, Any]) -> None:
        """Move the order to the trash: status trash, announced by order.deleted with only its id."""
        if order["status"] == "trash":
            raise WooError(410, "woocommerce_rest_already_trashed", "The order has already been deleted.")
        self.trashed_from[order["id"]] = order["status"]
        self._set_status(order, "trash")
        self.events.append(Event("order.deleted", order))

    def restore_order(self, order: dict[str, Any]) -> None:
        """Take the order out of the trash, back to its status before: order.restored."""
        if order["status"] != "trash":
            raise WooError(400, "woocommerce_rest_not_trashed", "The order is not in the trash.")
        self._set_status(order, self.trashed_from.pop(order["id"], "pending"))
        self.events.append(Event("order.restored", order))

    def keep_posted(self, topic: str, payload: dict[str, Any]) -> None:
        """A webhook payload posted whole: an order is kept as given (so GET /orders/<id> answers it), then sent."""
        resource, _, event = topic.partition(".")
        if resource == "order" and event != "deleted" and _is_id(payload.get("id")) and "line_items" in payload:
            self.orders[payload["id"]] = copy.deepcopy(payload)
            self._next_post_id = max(self._next_post_id, payload["id"] + 1)
        self.events.append(Event(topic, copy.deepcopy(payload), whole=True))

    # Refunds ----------------------------------------------------------------------------------------------------

    def refund_order(self, order: dict[str, Any], body: Any) -> dict[str, Any]:
        """Refund lines, shipping or an amount of the order (see the module docstring), as the shop's admin does:
        the refund, kept newest first; the order gets its summary, status refunded once nothing is left, a new
        date_modified and order.updated (WooCommerce has no refund topic). Raises WooError for what WooCommerce
        refuses and ValueError for a body the control API cannot read."""
        reason = _refund_reason(order, body)
        lines = [self._refund_line(line, units, before) for line, units, before in self._refund_items(order, body)]
        shipping = self._refund_shipping(order) if body.get("shipping") is True else []
        amount, left = self._refund_amount(order, body, [*lines, *shipping])
        refund: dict[str, Any] = {"id": self._post_id()}
        _stamp(refund, "date_created", self.now())
        refund.update(
            {
                "amount": padded(amount),
                "reason": reason,
                "refunded_by": ADMIN_USER_ID,
                # Card payments go back through the gateway; a bank transfer is paid back by hand.
                "refunded_payment": order.get("payment_method") == "stripe" and bool(order.get("date_paid")),
                "meta_data": [],
                "line_items": lines,
                "shipping_lines": shipping,
                "tax_lines": self._refund_tax_lines(order, lines, shipping),
                "fee_lines": [],
            }
        )
        self._keep_refund(order, refund, fully=amount >= left)
        return refund

    def _refund_amount(
        self, order: dict[str, Any], body: dict[str, Any], lines: list[dict[str, Any]]
    ) -> tuple[Decimal, Decimal]:
        """The refund's amount (the body's, else what its lines and shipping come to) and what was left of the
        order to refund before it; WooError if WooCommerce refuses the amount."""
        added = sum((Decimal(line["total"]) + Decimal(line["total_tax"]) for line in lines), ZERO)
        amount = -added if "amount" not in body else to_decimal(body["amount"])
        if amount < 0:
            raise WooError(
                400, "woocommerce_rest_invalid_order_refund", "Refund amount must be greater than zero."
            )
        refunded = sum((Decimal(r["amount"]) for r in self.refunds.get(order["id"], [])), ZERO)
        left = Decimal(order["total"]) - refunded
        if amount > left:
            # WooCommerce's REST API answers this 500 (wc_create_refund throws); the control API says 422.
            raise WooError(422, CANNOT_REFUND, "Invalid refund amount.")
        if not amount and not lines:
            raise ValueError("a refund needs line_items, shipping or an amount")
        return amount, left

    def _keep_refund(self, order: dict[str, Any], refund: dict[str, Any], fully: bool) -> None:
        """Keep the refund, newest first, in the order's summary too; the order refunded if nothing is left."""
        self.refunds.setdefault(order["id"], []).insert(0, refund)
        summary = {"id": refund["id"], "reason": refund["reason"], "total": padded(-Decimal(refund["amount"]))}
        order.setdefault("refunds", []).insert(0, summary)
        self._set_status(order, "refunded" if fully else order["status"])
        self.events.append(Event("order.updated", order))

    def _refund_items(self, order: dict[str, Any], body: dict[str, Any]) -> list[tuple[dict[str, Any], int, int]]:
        """(order line, units, units refunded before) of the body's line_items [{"id" or "sku", "quantity"}],
        checked against what is left."""
        found = []
        refunded = self.refunded_units(order["id"])
        for entry in entries(body.get("line_items", []), "line_items", "quantity"):
            key, value = ("id", entry["id"]) if "id" in entry else ("sku", entry.get("sku"))
            line = next((line for line in order["line_items"] if line.get(key) == value), None)
            if line is None:
                raise ValueError(f"the order has no line item with {key} {value!r}")
            units = entry["quantity"]
            if not _is_id(units):
                raise ValueError(f"quantity must be a positive integer, not {units!r}")
            left = line["quantity"] - refunded.get(line["id"], 0)
            if units > left:
                # UNCONFIRMED wording: WooCommerce's refund form does not offer more units than are left.
                raise WooError(422, CANNOT_REFUND, f"Invalid refund quantity: {left} of {line['name']} left.")
            found.append((line, units, refunded.get(line["id"], 0)))
            refunded[line["id"]] = refunded.get(line["id"], 0) + units
        return found

    def refunded_units(self, order_id: int) -> dict[int, int]:
        """Units refunded so far, by order line id."""
        units: dict[int, int] = {}
        for refund in self.refunds.get(order_id, []):
            for line in refund["line_items"]:
                original = int(_refunded_item_id(line))
                units[original] = units.get(original, 0) - line["quantity"]
        return units

    def _refund_line(self, line: dict[str, Any], units: int, before: int) -> dict[str, Any]:
        """The negative refund line for `units` more of `line` after `before`: the growth of the cumulative parts."""
        quantity = line["quantity"]

        def part(amount: str, count: int) -> Decimal:
            return (Decimal(amount) * count / quantity).quantize(CENT, ROUND_HALF_UP)

        net = part(line["total"], before + units) - part(line["total"], before)
        taxes = [
            {"id": tax["id"], "amount": part(_rate_tax(tax), before + units) - part(_rate_tax(tax), before)}
            for tax in line.get("taxes", [])
        ]
        tax = sum((each["amount"] for each in taxes), ZERO)
        meta = [
            self._meta(
                m["key"], m["value"], (m["display_key"], m["display_value"]) if "display_key" in m else None
            )
            for m in line.get("meta_data", [])
        ]
        original = str(line["id"])
        meta.append(self._meta("_refunded_item_id", original, ("_refunded_item_id", original)))
        refunded = {
            "id": next(self._item_ids),
            "name": line["name"],
            "product_id": line["product_id"],
            "variation_id": line["variation_id"],
            "quantity": -units,
            "tax_class": line.get("tax_class", ""),
            "subtotal": padded(-net),
            "subtotal_tax": padded(-tax),
            "total": padded(-net),
            "total_tax": padded(-tax),
            "taxes": [{"id": t["id"], "total": raw(-t["amount"]), "subtotal": raw(-t["amount"])} for t in taxes],
            "meta_data": meta,
            "sku": line.get("sku"),
            "price": float(-net / units),
        }
        if "parent_name" in line:
            refunded["parent_name"] = line["parent_name"]
        return refunded

    def _refund_shipping(self, order: dict[str, Any]) -> list[dict[str, Any]]:
        """All the shipping, if none was refunded before."""
        done = {
            _refunded_item_id(line)
            for refund in self.refunds.get(order["id"], [])
            for line in refund["shipping_lines"]
        }
        if not order["shipping_lines"] or any(str(line["id"]) in done for line in order["shipping_lines"]):
            raise WooError(422, CANNOT_REFUND, "Invalid refund amount: no shipping is left to refund.")
        return [
            {
                "id": next(self._item_ids),
                "method_title": line["method_title"],
                "method_id": line["method_id"],
                "instance_id": line.get("instance_id", "0"),
                "total": padded(-Decimal(line["total"])),
                "total_tax": padded(-Decimal(line["total_tax"])),
                "taxes": [
                    {"id": t["id"], "total": raw(-Decimal(t["total"])), "subtotal": ""} for t in line["taxes"]
                ],
                "meta_data": [
                    self._meta("_refunded_item_id", str(line["id"]), ("_refunded_item_id", str(line["id"])))
                ],
            }
            for line in order["shipping_lines"]
        ]

    def _refund_tax_lines(
        self, order: dict[str, Any], lines: list[dict[str, Any]], shipping: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """The refund's tax lines: its taxes per rate of the order's tax lines, negative."""
        result = []
        for tax_line in order.get("tax_lines", []):
            rate_id = tax_line["rate_id"]
            items = sum((Decimal(t["total"]) for line in lines for t in line["taxes"] if t["id"] == rate_id), ZERO)
            ships = sum(
                (Decimal(t["total"]) for line in shipping for t in line["taxes"] if t["id"] == rate_id), ZERO
            )
            if items or ships:
                result.append(
                    {
                        **{
                            k: v for k, v in tax_line.items() if k not in ("id", "tax_total", "shipping_tax_total")
                        },
                        "id": next(self._item_ids),
                        "tax_total": padded(items),
                        "shipping_tax_total": padded(ships),
                        "meta_data": [],
                    }
                )
        return result


def _refund_reason(order: dict[str, Any], body: Any) -> str:
    """The reason of a refund body that can be read, of an order that can be refunded."""
    if not isinstance(body, dict):
        raise ValueError("the refund must be an object")
    reason = body.get("reason", "")
    if not isinstance(reason, str):
        raise ValueError("reason must be a string")
    if order["status"] == "trash":
        raise WooError(422, CANNOT_REFUND, "A trashed order cannot be refunded.")
    return reason


def _rate_tax(tax: dict[str, Any]) -> str:
    """A line's tax for one rate, rounded to cents as the line's total_tax is."""
    return padded(Decimal(str(tax.get("total") or 0)))


def _refunded_item_id(line: dict[str, Any]) -> str:
    return next(str(m["value"]) for m in line["meta_data"] if m["key"] == "_refunded_item_id")


def _is_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _set_flags(order: dict[str, Any], new: bool = False) -> None:
    """The newer fields that follow from the status (WC_Order::is_editable, needs_payment, needs_processing); an
    order posted whole without them stays so."""
    if not new and "is_editable" not in order:
        return
    status = order["status"]
    order["is_editable"] = status in ("pending", "on-hold", "auto-draft")
    order["needs_payment"] = status in ("pending", "failed") and Decimal(order["total"]) > 0
    order["needs_processing"] = True


def _discount_parts(sale: _Sale, discounts: list[Decimal]) -> tuple[Decimal, Decimal]:
    """The order's discount ex-tax and its tax, in cents, unrounded: of the lines' discounts, the sum of their raw
    taxes, and the rest."""
    tax = sum(
        (_tax(discount, line.rate, sale.included) for line, discount in zip(sale.lines, discounts, strict=True)),
        ZERO,
    )
    discount = sum(discounts, ZERO)
    return (discount - tax if sale.included else discount), tax


def _order_totals(
    discount: Decimal,
    discount_tax: Decimal,
    taxes: dict[int, list[Decimal]],
    shipping: list[dict[str, Any]],
    total: Decimal,
) -> dict[str, str]:
    """An order's money fields from discount_total to total_tax, of amounts in cents (`discount` ex-tax, `taxes` by
    rate id: [items and fees tax, shipping tax])."""
    cart_tax = sum((amounts[0] for amounts in taxes.values()), ZERO)
    shipping_tax = sum((amounts[1] for amounts in taxes.values()), ZERO)
    return {
        "discount_total": _money(discount),
        "discount_tax": _money(discount_tax),
        "shipping_total": _money(sum((Decimal(line["total"]) * 100 for line in shipping), ZERO)),
        "shipping_tax": _money(shipping_tax),
        "cart_tax": _money(cart_tax),
        "total": _money(total),
        "total_tax": _money(cart_tax + shipping_tax),
    }


def _customer_fields(draw: dict[str, Any], status: str, method: str) -> dict[str, Any]:
    """An order's fields from customer_id to transaction_id: who bought, where to, and how they paid."""
    person = draw["person"]
    email = f"{person.first_name}.{person.last_name}@example.dk".lower()
    address = {
        "first_name": person.first_name,
        "last_name": person.last_name,
        "company": person.company or "",
        "address_1": person.address1,
        "address_2": "",
        "city": person.city,
        "state": "",
        "postcode": person.zip,
        "country": "DK",
    }
    paid = status in ("processing", "completed")
    return {
        "customer_id": DANES.index(person) + 2 if draw["registered"] else 0,
        "customer_ip_address": f"203.0.113.{DANES.index(person) + 10}",
        "customer_user_agent": CUSTOMER_AGENT,
        "customer_note": "Stil pakken ved døren, tak." if draw["note"] else "",
        "billing": {**address, "email": email, "phone": person.phone},
        "shipping": address,
        "payment_method": method,
        "payment_method_title": PAYMENTS[method],
        "transaction_id": draw["charge"] if method == "stripe" and paid else "",
    }


def _as_legacy(order: dict[str, Any]) -> None:
    """The order as a store older than WooCommerce 3.7 made it (and keeps it after an upgrade): its `version` that
    one, and its tax lines' rate_percent null (WC_Order_Item_Tax's default; the digest believes 3.7 began storing
    it, UNCONFIRMED), so the rate is only to be had from the amounts."""
    order["version"] = LEGACY_VERSION
    for tax_line in order["tax_lines"]:
        tax_line["rate_percent"] = None


def _stock_status(stock: int | None, backorders: str = "no") -> str:
    if stock is None or stock > 0:
        return "instock"
    return "outofstock" if backorders == "no" else "onbackorder"


def _selling(kind: str, sku: str, price: str) -> dict[str, Any]:
    """A new product's fields from `type` to `button_text`: what it is and what it costs."""
    return {
        "type": kind,
        "status": "publish",
        "featured": False,
        "catalog_visibility": "visible",
        "description": "",
        "short_description": "",
        "sku": sku,
        "price": price,
        "regular_price": "" if kind == "variable" else price,
        "sale_price": "",
        **dict.fromkeys(("date_on_sale_from", "date_on_sale_from_gmt", "date_on_sale_to")),
        "date_on_sale_to_gmt": None,
        "price_html": _price_html(price),
        "on_sale": False,
        "purchasable": True,
        "total_sales": 0,
        "virtual": False,
        "downloadable": False,
        "downloads": [],
        "download_limit": -1,
        "download_expiry": -1,
        "external_url": "",
        "button_text": "",
    }


def _stocking(tax_class: str, stock: int | None) -> dict[str, Any]:
    """A new product's fields from `tax_status` to `backordered`: its tax and its stock."""
    return {
        "tax_status": "taxable",
        "tax_class": tax_class,
        "manage_stock": stock is not None,
        "stock_quantity": stock,
        "stock_status": _stock_status(stock),
        "backorders": "no",
        "backorders_allowed": False,
        "backordered": False,
    }


def _sync_parent(shop: WooCommerceState, parent: dict[str, Any]) -> None:
    """A variable product's stock status and price follow its variations (WC_Product_Variable::sync)."""
    children = [shop.products[v] for v in parent["variations"]]
    if not parent["manage_stock"] and children:
        statuses = {child["stock_status"] for child in children}
        parent["stock_status"] = next((s for s in ("instock", "onbackorder") if s in statuses), "outofstock")
    if children:
        cheapest = min((child["price"] for child in children), key=Decimal)
        parent.update(price=cheapest, price_html=_price_html(cheapest))


def _unit(item: dict[str, Any], included: bool) -> Decimal:
    """One unit's price in the order's terms: the catalogue's (with VAT), or without the VAT, rounded to cents."""
    price = Decimal(item["price"])
    rate = RATE_OF_CLASS.get(item["tax_class"], RATES[0])
    return price if included else (price / (1 + rate.percent / 100)).quantize(CENT, ROUND_HALF_UP)


def _basket(shop: WooCommerceState, value: Any) -> list[tuple[dict[str, Any], int]]:
    basket = []
    for spec in entries(value, "line_items", "sku"):
        quantity = spec.get("quantity", 1)
        if not _is_id(quantity):
            raise ValueError(f"quantity must be a positive integer, not {quantity!r}")
        basket.append((shop.by_sku(spec["sku"]), quantity))
    return basket


def _coupon_of(value: Any) -> _Coupon | None:
    if value is None:
        return None
    if not isinstance(value, dict) or "code" not in value or "amount" not in value:
        raise ValueError('coupon must be {"code", "discount_type", "amount"}')
    kind = value.get("discount_type", "percent")
    if kind not in ("percent", "fixed_cart"):
        raise ValueError(f"discount_type must be percent or fixed_cart, not {kind!r}")
    amount = to_decimal(value["amount"])
    if amount <= 0 or (kind == "percent" and amount > 100):
        raise ValueError("a coupon's amount must be above 0 (and at most 100 percent)")
    return _Coupon(str(value["code"]), kind, amount)


def _fees_of(value: Any) -> list[tuple[str, Decimal, bool]]:
    fees = []
    for fee in entries(value, "fees", "name", "total"):
        taxable = fee.get("taxable", True)
        if not isinstance(taxable, bool):
            raise ValueError("a fee's taxable must be true or false")
        total = to_decimal(fee["total"])
        if total != total.quantize(CENT) or total < 0:
            raise ValueError("a fee's total must be a positive amount in whole cents")
        fees.append((str(fee["name"]), total, taxable))
    return fees


def _shipping_of(value: Any) -> tuple[str, Decimal] | None:
    if isinstance(value, bool):
        return SHIPPING if value else None
    if not isinstance(value, dict) or "total" not in value:
        raise ValueError('shipping must be true, false or {"total" (ex-tax), "method_title"?}')
    cost = to_decimal(value["total"])
    if cost != cost.quantize(CENT) or cost < 0:
        raise ValueError("the shipping total must be a positive amount in whole cents")
    return str(value.get("method_title", SHIPPING[0])), cost


def _string(values: dict[str, Any], key: str, default: str) -> str:
    value = values.get(key, default)
    if not isinstance(value, str):
        raise ValueError(f"{key} must be a string")
    return value


def _price(value: Any) -> str:
    amount = to_decimal(value)
    if amount < 0:
        raise ValueError("a price must not be negative")
    return str(value)


def _stock_of(values: dict[str, Any]) -> int | None:
    """The stock quantity of a new product: None when manage_stock is false."""
    manage = values.get("manage_stock", True)
    stock = values.get("stock_quantity", 0)
    if not isinstance(manage, bool):
        raise ValueError("manage_stock must be true or false")
    if isinstance(stock, bool) or not isinstance(stock, int):
        raise ValueError("stock_quantity must be an integer")
    return stock if manage else None


# Rendering --------------------------------------------------------------------------------------------------------


def _links(links: Links, **paths: str) -> dict[str, list[dict[str, str]]]:
    return {name: [{"href": links.rest(path)}] for name, path in paths.items()}


def render_order(order: dict[str, Any], links: Links) -> dict[str, Any]:
    """The order as GET /orders/<id> shows it: with _links (an order posted whole keeps its own)."""
    rendered = copy.deepcopy(order)
    if "_links" not in rendered:
        rendered["_links"] = _links(links, self=f"/wc/v3/orders/{order['id']}", collection="/wc/v3/orders")
        if order.get("customer_id"):
            rendered["_links"].update(_links(links, customer=f"/wc/v3/customers/{order['customer_id']}"))
    return rendered


def render_refund(refund: dict[str, Any], order_id: int, links: Links) -> dict[str, Any]:
    base = f"/wc/v3/orders/{order_id}/refunds"
    return {
        **copy.deepcopy(refund),
        "_links": _links(links, self=f"{base}/{refund['id']}", collection=base, up=f"/wc/v3/orders/{order_id}"),
    }


def render_product(item: dict[str, Any], links: Links) -> dict[str, Any]:
    """A product (or a variation) as /products shows it."""
    rendered = {**copy.deepcopy(item), "permalink": f"{links.site}{item['permalink']}"}
    rendered["_links"] = _links(links, self=f"/wc/v3/products/{item['id']}", collection="/wc/v3/products")
    if item["parent_id"]:
        rendered["_links"].update(_links(links, up=f"/wc/v3/products/{item['parent_id']}"))
    return rendered


def render_variation(item: dict[str, Any], links: Links) -> dict[str, Any]:
    """A variation as /products/<id>/variations shows it: fewer fields, one `image`."""
    shown = {key: copy.deepcopy(item.get(key)) for key in VARIATION_KEYS}
    shown["permalink"] = f"{links.site}{item['permalink']}"
    base = f"/wc/v3/products/{item['parent_id']}"
    shown["_links"] = _links(
        links, self=f"{base}/variations/{item['id']}", collection=f"{base}/variations", up=base
    )
    return shown


def payload_of(event: Event, links: Links) -> dict[str, Any]:
    """A webhook's body: the REST representation, {"id"} for a deletion, or the payload posted whole."""
    if event.whole:
        return event.item
    if event.topic.endswith(".deleted"):
        return {"id": event.item["id"]}
    if event.topic.startswith("order."):
        return render_order(event.item, links)
    return render_product(event.item, links)


def webhook_request(
    url: str, secret: str, topic: str, payload: dict[str, Any], source: str
) -> urllib.request.Request:
    """The POST WooCommerce's WC_Webhook::deliver sends for `topic`, signed with `secret`; a new delivery id each."""
    body = wp_json(payload)
    resource, _, event = topic.partition(".")
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-WC-Webhook-Source": source,
        "X-WC-Webhook-Topic": topic,
        "X-WC-Webhook-Resource": resource,
        "X-WC-Webhook-Event": event,
        "X-WC-Webhook-Signature": base64.b64encode(
            hmac.new(secret.encode(), body, hashlib.sha256).digest()
        ).decode(),
        "X-WC-Webhook-ID": str(WEBHOOK_IDS.get(topic, len(WEBHOOK_IDS) + 1)),
        "X-WC-Webhook-Delivery-ID": uuid.uuid4().hex,  # wp_hash(id . time): 32 hex digits
    }
    # The caller checked the URL's scheme to be http(s).
    return urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310


def ping_request(url: str, webhook_id: int) -> urllib.request.Request:
    """The ping WooCommerce posts when a webhook is made: a form body, no X-WC-Webhook-* headers, no signature."""
    # The caller checked the URL's scheme to be http(s). urllib adds the form Content-Type, as WordPress's does.
    return urllib.request.Request(  # noqa: S310
        url, data=f"webhook_id={webhook_id}".encode(), headers={"User-Agent": USER_AGENT}, method="POST"
    )


# The REST API -----------------------------------------------------------------------------------------------------


@dataclass
class _Call:
    shop: WooCommerceState
    links: Links
    route: str  # the REST route asked for, e.g. /wc/v3/orders
    user: str | None = None  # the key's permissions: "read_write", "read"; None: a guest


def handle(shop: WooCommerceState, request: Request, settings: Settings) -> Response:
    """Answer a request under /woocommerce: the REST API, or the store's web pages (its home, HTML 404s)."""
    links = Links(f"{request.origin}{PREFIX}", settings.plain_permalinks)
    rest_route = _rest_route(request, settings)
    if rest_route is None:
        return _home(links) if request.path in (PREFIX, f"{PREFIX}/") else _page_not_found()
    call = _Call(shop, links, rest_route)
    try:
        if rest_route.startswith("/wc/"):
            _authenticate(call, request, settings)
        return (
            dispatch(ROUTES, replace(request, path=rest_route), call)
            or WooError(404, "rest_no_route", NO_ROUTE).response()
        )
    except WooError as refused:
        return refused.response()


def _rest_route(request: Request, settings: Settings) -> str | None:
    """The REST route asked for: from ?rest_route= on the home page, or the path under /wp-json/ (not with plain
    permalinks, where the web server knows no /wp-json/)."""
    if request.path in (PREFIX, f"{PREFIX}/") and "rest_route" in request.query:
        return request.query["rest_route"].rstrip("/") or "/"
    base = f"{PREFIX}/wp-json"
    if (request.path == base or request.path.startswith(f"{base}/")) and not settings.plain_permalinks:
        return unquote(request.path[len(base) :]).rstrip("/") or "/"
    return None


def _home(links: Links) -> Response:
    api = links.rest("/")
    page = (
        '<!DOCTYPE html>\n<html lang="da-DK"><head><meta charset="UTF-8"><title>Sandbox Kaffe</title>'
        f'<link rel="https://api.w.org/" href="{api}" /></head>'
        "<body><h1>Sandbox Kaffe</h1><p>Kaffe, kopper og avisen.</p></body></html>\n"
    )
    return Response(200, page.encode(), {"Content-Type": HTML_TYPE, "Link": f'<{api}>; rel="https://api.w.org/"'})


def _page_not_found() -> Response:
    page = (
        '<!DOCTYPE html>\n<html lang="da-DK"><head><meta charset="UTF-8"><title>Siden blev ikke fundet &ndash; Sandbox Kaffe'
        '</title></head><body class="error404"><h1>Hovsa! Siden kunne ikke findes.</h1></body></html>\n'
    )
    return Response(404, page.encode(), {"Content-Type": HTML_TYPE})


def _credentials(request: Request, settings: Settings) -> tuple[str, str] | None:
    """The consumer key and secret: the query string's first, else HTTP Basic's (if the header arrives)."""
    key, secret = request.query.get("consumer_key"), request.query.get("consumer_secret")
    if key and secret:
        return key, secret
    header = "" if settings.strips_authorization else request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, _, password = base64.b64decode(token.strip(), validate=True).decode().partition(":")
    except ValueError:
        return None
    return (user, password) if user and password else None


def _authenticate(call: _Call, request: Request, settings: Settings) -> None:
    """WC_REST_Authentication: a wrong secret and a read-only key writing are refused before routing; no key or an
    unknown one leaves a guest, whom the routes refuse."""
    given = _credentials(request, settings)
    if given is None:
        return
    key, secret = given
    for (known, known_secret), permissions in ((settings.read_write, "read_write"), (settings.read, "read")):
        if key == known:
            if not hmac.compare_digest(secret.encode(), known_secret.encode()):
                raise WooError(
                    401, "woocommerce_rest_authentication_error", BAD_SECRET, {"WWW-Authenticate": REALM}
                )
            if permissions == "read" and request.method in WRITE_METHODS:
                raise WooError(401, "woocommerce_rest_authentication_error", NO_WRITE, {"WWW-Authenticate": REALM})
            call.user = permissions
            return


def _require(call: _Call, action: str) -> None:
    """The route's permission check: guests are refused (401, as WordPress answers a user not logged in)."""
    if call.user is None:
        code, message = REFUSED_GUEST[action]
        raise WooError(401, code, message)


# Parameters, as WordPress checks them against a route's schema.

Check = Callable[[str, list[str]], Any]


def _integer(minimum: int | None = None, maximum: int | None = None) -> Check:
    def check(name: str, values: list[str]) -> int:
        if not re.fullmatch(r"[+-]?\d+(\.0*)?", values[-1].strip()):
            raise ValueError(f"{name} is not of type integer.")
        value = int(float(values[-1]))
        if minimum is not None and maximum is not None and not minimum <= value <= maximum:
            raise ValueError(f"{name} must be between {minimum} (inclusive) and {maximum} (inclusive)")
        if minimum is not None and value < minimum:
            raise ValueError(f"{name} must be greater than or equal to {minimum}")
        return value

    return check


def _boolean(name: str, values: list[str]) -> bool:
    value = values[-1].lower()
    if value not in ("true", "false", "1", "0"):
        raise ValueError(f"{name} is not of type boolean.")
    return value in ("true", "1")


def _date(name: str, values: list[str]) -> datetime:
    """rest_parse_date's RFC 3339 date-time (an offset is optional)."""
    value = values[-1]
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}(:\d{2})?)?", value):
        raise ValueError("Invalid date.")
    try:
        return datetime.fromisoformat(value.upper().replace(" ", "T"))
    except ValueError:
        raise ValueError("Invalid date.") from None


def _enum(*choices: str) -> Check:
    def check(name: str, values: list[str]) -> str:
        if values[-1] not in choices:
            raise ValueError(f"{name} is not one of {', '.join(choices)}.")
        return values[-1]

    return check


def _enum_list(*choices: str) -> Check:
    """An array parameter (a=x,y or a[]=x&a[]=y), each item one of `choices`."""

    def check(name: str, values: list[str]) -> list[str]:
        items = [part for value in values for part in re.split(r"[\s,]+", value) if part]
        for i, item in enumerate(items):
            if item not in choices:
                raise ValueError(f"{name}[{i}] is not one of {', '.join(choices)}.")
        return items

    return check


def _ids(name: str, values: list[str]) -> list[int]:
    items = [part for value in values for part in re.split(r"[\s,]+", value) if part]
    for i, item in enumerate(items):
        if not item.isdigit():
            raise ValueError(f"{name}[{i}] is not of type integer.")
    return [int(item) for item in items]


def _text_param(name: str, values: list[str]) -> str:
    return values[-1]


PAGING: dict[str, Check] = {"page": _integer(1), "per_page": _integer(1, MAX_PER_PAGE)}
DATES: dict[str, Check] = {
    **dict.fromkeys(("after", "before", "modified_after", "modified_before"), _date),
    "dates_are_gmt": _boolean,
    "order": _enum("asc", "desc"),
    "include": _ids,
    "exclude": _ids,
}
ORDER_PARAMS = {
    **PAGING,
    **DATES,
    "orderby": _enum("date", "id", "include", "title", "slug", "modified"),
    "status": _enum_list(*LISTED_STATUSES),
    "customer": _integer(),
    "product": _integer(),
}
REFUND_PARAMS = {**PAGING, **DATES, "orderby": _enum("date", "id", "include", "title", "slug", "modified")}
PRODUCT_ORDERBY = (
    "date",
    "id",
    "include",
    "title",
    "slug",
    "price",
    "popularity",
    "rating",
    "menu_order",
    "modified",
)
PRODUCT_PARAMS = {
    **PAGING,
    **DATES,
    "orderby": _enum(*PRODUCT_ORDERBY),
    "sku": _text_param,
    "type": _enum("simple", "grouped", "external", "variable"),
    "status": _enum("any", "future", "trash", "draft", "pending", "private", "publish"),
}
TAX_PARAMS = {**PAGING, "order": _enum("asc", "desc"), "orderby": _enum("id", "order", "priority")}


def _params(request: Request, spec: dict[str, Check]) -> dict[str, Any]:
    """The known query parameters, checked all at once: 400 rest_invalid_param naming every bad one."""
    given: dict[str, list[str]] = {}
    for name, value in parse_qsl(request.query_string, keep_blank_values=True):
        given.setdefault(name.removesuffix("[]"), []).append(value)
    values, invalid = {}, {}
    for name, check in spec.items():
        if name in given:
            try:
                values[name] = check(name, given[name])
            except ValueError as exc:
                invalid[name] = str(exc)
    if invalid:
        raise WooError(400, "rest_invalid_param", f"Invalid parameter(s): {', '.join(invalid)}", params=invalid)
    return values


def _date_bounds(params: dict[str, Any]) -> list[tuple[str, bool, datetime]]:
    """(field, after?, bound) of the date filters, the bound on the clock compared: GMT or the site's. A bound
    without an offset is taken on that clock as it is."""
    gmt = params.get("dates_are_gmt", False)
    bounds = []
    for name, field in (
        ("after", "date_created"),
        ("before", "date_created"),
        ("modified_after", "date_modified"),
        ("modified_before", "date_modified"),
    ):
        if name in params:
            bound: datetime = params[name]
            if bound.tzinfo is not None:
                bound = bound.astimezone(UTC).replace(tzinfo=None) if gmt else site_time(bound)
            bounds.append((f"{field}_gmt" if gmt else field, name.endswith("after"), bound))
    return bounds


def _within(item: dict[str, Any], bounds: list[tuple[str, bool, datetime]]) -> bool:
    """After a bound or before it, strictly (WP_Date_Query's after / before)."""
    for field, after, bound in bounds:
        value = item.get(field)
        if not isinstance(value, str) or not value:
            return False
        moment = datetime.fromisoformat(value)
        if (moment <= bound) if after else (moment >= bound):
            return False
    return True


def _sort_key(orderby: str) -> Callable[[dict[str, Any]], tuple[Any, ...]]:
    """The sort key of `orderby`, ties broken by id (WooCommerce appends ID to date orderings)."""
    field = {"date": "date_created_gmt", "modified": "date_modified_gmt", "title": "name"}.get(orderby)

    def key(item: dict[str, Any]) -> tuple[Any, ...]:
        if field:
            return (item.get(field) or "", item["id"])
        if orderby == "price":
            return (Decimal(item.get("price") or 0), item["id"])
        return (item["id"],)

    return key


def _selected(items: list[dict[str, Any]], params: dict[str, Any]) -> list[dict[str, Any]]:
    """`items` within the date bounds and the include / exclude lists, sorted as asked."""
    bounds = _date_bounds(params)
    include, exclude = params.get("include"), params.get("exclude", [])
    found = [
        item
        for item in items
        if (not include or item["id"] in include) and item["id"] not in exclude and _within(item, bounds)
    ]
    return sorted(
        found, key=_sort_key(params.get("orderby", "date")), reverse=params.get("order", "desc") == "desc"
    )


def _page(
    call: _Call,
    request: Request,
    params: dict[str, Any],
    items: list[dict[str, Any]],
    render: Callable[[dict[str, Any]], dict[str, Any]],
) -> Response:
    """One page of `items`, with X-WP-Total, X-WP-TotalPages and Link (rel prev / next, as WC_REST_CRUD_Controller
    builds them from the request's own query)."""
    page, per_page = params.get("page", 1), params.get("per_page", DEFAULT_PER_PAGE)
    total = len(items)
    pages = math.ceil(total / per_page)
    chunk = items[(page - 1) * per_page : page * per_page]
    query = dict(parse_qsl(request.query_string, keep_blank_values=True))
    links = []
    if page > 1:
        links.append(f'<{call.links.rest(call.route, {**query, "page": str(min(page - 1, pages))})}>; rel="prev"')
    if pages > page:
        links.append(f'<{call.links.rest(call.route, {**query, "page": str(page + 1)})}>; rel="next"')
    headers = {"X-WP-Total": str(total), "X-WP-TotalPages": str(pages)}
    if links:
        headers["Link"] = ", ".join(links)
    return wp_response(200, [render(item) for item in chunk], headers)


def _body(request: Request) -> dict[str, Any]:
    """A write's JSON body (WordPress reads JSON when it is sent; an empty body is no parameters)."""
    if not request.body.strip():
        return {}
    try:
        body = json.loads(request.body)
    except ValueError:
        raise WooError(
            400,
            "rest_invalid_json",
            "Invalid JSON body passed.",
            json_error_code=4,
            json_error_message="Syntax error",
        ) from None
    if not isinstance(body, dict):
        raise WooError(400, "rest_invalid_json", "Invalid JSON body passed.")
    return body


# Routes.


def _root(call: _Call, request: Request) -> Response:
    return wp_response(
        200,
        {
            "name": "Sandbox Kaffe",
            "description": "Kaffe, kopper og avisen",
            "url": call.links.site,
            "home": call.links.site,
            "gmt_offset": _gmt_offset(call.shop.now()),
            "timezone_string": "Europe/Copenhagen",
            "namespaces": ["oembed/1.0", "wc/v3", "wp/v2"],
            "authentication": [],
            "routes": {},
        },
    )


def _gmt_offset(moment: datetime) -> str:
    return str(int((site_time(moment) - moment.replace(tzinfo=None)).total_seconds()) // 3600)


def _index(call: _Call, request: Request) -> Response:
    """The namespace's routes, patterns written as WordPress registers them."""
    methods: dict[str, set[str]] = {}
    for method, pattern, _ in ROUTES:
        if pattern.pattern.startswith("/wc/v3"):
            methods.setdefault(pattern.pattern.replace(r"(\d+)", r"(?P<id>[\d]+)"), set()).add(method)
    routes = {path: {"namespace": "wc/v3", "methods": sorted(each)} for path, each in methods.items()}
    return wp_response(200, {"namespace": "wc/v3", "routes": routes})


def _orders(call: _Call, request: Request) -> Response:
    params = _params(request, ORDER_PARAMS)
    _require(call, "list")
    statuses = params.get("status", ["any"])
    customer, product = params.get("customer"), params.get("product")
    wanted = [
        order
        for order in call.shop.orders.values()
        if (order["status"] in statuses or ("any" in statuses and order["status"] != "trash"))
        and (customer is None or order.get("customer_id") == customer)
        and (product is None or any(line.get("product_id") == product for line in order.get("line_items", [])))
    ]
    return _page(call, request, params, _selected(wanted, params), lambda o: render_order(o, call.links))


def _order(call: _Call, request: Request, order_id: str) -> Response:
    _require(call, "view")  # for an order, before looking it up (WC_REST_Orders_V2_Controller)
    order = call.shop.orders.get(int(order_id))
    if order is None:
        raise WooError(404, "woocommerce_rest_shop_order_invalid_id", "Invalid ID.")
    return wp_response(200, render_order(order, call.links))


def _refunds(call: _Call, request: Request, order_id: str) -> Response:
    params = _params(request, REFUND_PARAMS)
    _require(call, "list")
    # The refunds of an order WooCommerce does not know: none (a query by parent).
    refunds = call.shop.refunds.get(int(order_id), [])
    return _page(
        call,
        request,
        params,
        _selected(refunds, params),
        lambda refund: render_refund(refund, int(order_id), call.links),
    )


def _refund(call: _Call, request: Request, order_id: str, refund_id: str) -> Response:
    _require(call, "view")
    every = {refund["id"]: (oid, refund) for oid, refunds in call.shop.refunds.items() for refund in refunds}
    if int(refund_id) not in every:
        raise WooError(404, "woocommerce_rest_shop_order_refund_invalid_id", "Invalid ID.")
    if int(order_id) not in call.shop.orders:
        raise WooError(404, "woocommerce_rest_invalid_order_id", "Invalid order ID.")
    parent, refund = every[int(refund_id)]
    if parent != int(order_id):
        raise WooError(404, "woocommerce_rest_invalid_order_refund_id", "Invalid order refund ID.")
    return wp_response(200, render_refund(refund, parent, call.links))


def _products(call: _Call, request: Request) -> Response:
    """Products; with `sku` (exact, a comma list too) variations are searched as well, as WooCommerce's v3
    controller queries product and product_variation posts then, and shown in product form (type variation)."""
    params = _params(request, PRODUCT_PARAMS)
    _require(call, "list")
    skus = [s for s in params.get("sku", "").split(",") if s]
    if len(skus) > 1:
        skus.append(params["sku"])
    status, kind = params.get("status", "any"), params.get("type")
    wanted = [
        item
        for item in call.shop.products.values()
        if (item["type"] != "variation" or skus)
        and (not skus or item["sku"] in skus)
        and (kind is None or item["type"] == kind)
        and (item["status"] == status or (status == "any" and item["status"] != "trash"))
    ]
    return _page(call, request, params, _selected(wanted, params), lambda p: render_product(p, call.links))


def _product_of(call: _Call, product_id: str, status: int) -> dict[str, Any]:
    item = call.shop.products.get(int(product_id))
    if item is None:
        raise WooError(status, "woocommerce_rest_product_invalid_id", "Invalid ID.")
    return item


def _variation_of(call: _Call, product_id: str, variation_id: str, status: int) -> dict[str, Any]:
    item = call.shop.products.get(int(variation_id))
    if item is None or item["parent_id"] != int(product_id):
        # post type product_variation: the code is UNCONFIRMED beyond the pattern.
        raise WooError(status, "woocommerce_rest_product_variation_invalid_id", "Invalid ID.")
    return item


def _product(call: _Call, request: Request, product_id: str) -> Response:
    # WC_REST_CRUD_Controller checks a guest's permission only on an item that exists.
    item = _product_of(call, product_id, 404)
    _require(call, "view")
    return wp_response(200, render_product(item, call.links))


def _variations(call: _Call, request: Request, product_id: str) -> Response:
    params = _params(request, PRODUCT_PARAMS)
    _require(call, "list")
    children = [item for item in call.shop.products.values() if item["parent_id"] == int(product_id)]
    return _page(call, request, params, _selected(children, params), lambda v: render_variation(v, call.links))


def _variation(call: _Call, request: Request, product_id: str, variation_id: str) -> Response:
    item = _variation_of(call, product_id, variation_id, 404)
    _require(call, "view")
    return wp_response(200, render_variation(item, call.links))


def _update_product(call: _Call, request: Request, product_id: str) -> Response:
    body = _body(request)
    changes = _product_changes(body)
    item = call.shop.products.get(int(product_id))
    if item is not None:
        _require(call, "edit")
    item = _product_of(call, product_id, 400)  # an update of an unknown id is a bad request (400)
    call.shop.update_product(item, changes)
    return wp_response(200, render_product(item, call.links))


def _update_variation(call: _Call, request: Request, product_id: str, variation_id: str) -> Response:
    changes = _product_changes(_body(request))
    if call.shop.products.get(int(variation_id)) is not None:
        _require(call, "edit")
    item = _variation_of(call, product_id, variation_id, 400)
    call.shop.update_product(item, changes)
    return wp_response(200, render_variation(item, call.links))


def _product_changes(body: dict[str, Any]) -> dict[str, Any]:
    """The writable fields the sandbox knows, checked as the schema does (400 rest_invalid_param); others are
    ignored, as WordPress ignores unknown parameters."""
    checks: dict[str, Callable[[Any], Any]] = {
        "manage_stock": _as_boolean,
        "stock_quantity": _as_integer,
        "inventory_delta": _as_integer,
        "sku": _as_string,
        "name": _as_string,
        "regular_price": _as_price,
        "stock_status": _as_choice("instock", "outofstock", "onbackorder"),
        "backorders": _as_choice("no", "notify", "yes"),
    }
    changes, invalid = {}, {}
    for name, check in checks.items():
        if name in body:
            try:
                changes[name] = check(body[name])
            except ValueError as exc:
                invalid[name] = f"{name} {exc}"
    if invalid:
        raise WooError(400, "rest_invalid_param", f"Invalid parameter(s): {', '.join(invalid)}", params=invalid)
    return changes


def _as_boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | str) and str(value).lower() in ("true", "false", "1", "0"):
        return str(value).lower() in ("true", "1")
    raise ValueError("is not of type boolean.")


def _as_integer(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"[+-]?\d+", value.strip()):
        return int(value)
    raise ValueError("is not of type integer.")


def _as_string(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("is not of type string.")
    return value


def _as_price(value: Any) -> str:
    text = _as_string(value)
    if text and not re.fullmatch(r"\d+(\.\d+)?", text):
        raise ValueError("is not a price.")
    return text or "0"


def _as_choice(*choices: str) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if value not in choices:
            raise ValueError(f"is not one of {', '.join(choices)}.")
        return str(value)

    return check


def _products_batch(call: _Call, request: Request) -> Response:
    return _batch(call, request, None)


def _variations_batch(call: _Call, request: Request, product_id: str) -> Response:
    return _batch(call, request, int(product_id))


def _batch(call: _Call, request: Request, parent_id: int | None) -> Response:
    """WC_REST_Controller::batch_items: up to 100 items; each item's error is answered in its place, with 200.
    Only the non-empty lists asked for are answered (so an empty batch answers []). The sandbox updates
    products and variations and creates simple products; other items get an error in place."""
    body = _body(request)
    invalid = {
        k: f"{k} is not of type array."
        for k in ("create", "update", "delete")
        if k in body and not isinstance(body[k], list)
    }
    if invalid:
        raise WooError(400, "rest_invalid_param", f"Invalid parameter(s): {', '.join(invalid)}", params=invalid)
    _require(call, "batch")
    asked = {key: body[key] for key in ("create", "update", "delete") if body.get(key)}
    if sum(len(items) for items in asked.values()) > BATCH_LIMIT:
        raise WooError(
            413,
            "woocommerce_rest_request_entity_too_large",
            f"Unable to accept more than {BATCH_LIMIT} items for this request.",
        )
    answer: dict[str, list[dict[str, Any]]] = {}
    for key, items in asked.items():
        answer[key] = [_batch_item(call, key, item, parent_id) for item in items]
    return wp_response(200, answer or [])


def _batch_item(call: _Call, action: str, item: Any, parent_id: int | None) -> dict[str, Any]:
    item_id = item.get("id", 0) if isinstance(item, dict) else item
    if isinstance(item_id, str) and item_id.isdigit():
        item_id = int(item_id)  # absint
    try:
        if action == "update" and isinstance(item, dict):
            found = call.shop.products.get(item_id) if isinstance(item_id, int) else None
            if found is None or (parent_id is not None and found["parent_id"] != parent_id):
                post_type = "product" if parent_id is None else "product_variation"
                raise WooError(400, f"woocommerce_rest_{post_type}_invalid_id", "Invalid ID.")
            call.shop.update_product(found, _product_changes(item))
            return render_product(found, call.links) if parent_id is None else render_variation(found, call.links)
        if action == "create" and parent_id is None and isinstance(item, dict):
            fields = {k: v for k, v in item.items() if k in PRODUCT_OVERRIDES - {"variations"}}
            try:
                made = call.shop.add_product(fields)
            except ValueError as exc:
                raise WooError(400, "woocommerce_rest_invalid_product", str(exc)) from None
            return render_product(made[0], call.links)
        raise WooError(
            501, "woocommerce_rest_sandbox_unsupported", f"The sandbox does not {action} here in a batch."
        )
    except WooError as failed:
        return {"id": item_id if isinstance(item_id, int) else 0, "error": failed.body}


def _taxes(call: _Call, request: Request) -> Response:
    params = _params(request, TAX_PARAMS)
    _require(call, "list")
    rates = sorted((_tax_rate(rate, call.links) for rate in RATES), key=lambda r: r["id"])
    if params.get("order", "asc") == "desc":
        rates.reverse()
    return _page(call, request, params, rates, lambda rate: rate)


def _tax_rate_by_id(call: _Call, request: Request, rate_id: str) -> Response:
    _require(call, "view")
    rate = next((rate for rate in RATES if rate.id == int(rate_id)), None)
    if rate is None:
        raise WooError(404, "woocommerce_rest_invalid_id", "Invalid resource ID.")
    return wp_response(200, _tax_rate(rate, call.links))


def _tax_rate(rate: TaxRate, links: Links) -> dict[str, Any]:
    return {
        "id": rate.id,
        "country": "DK",
        "state": "",
        "postcode": "",
        "city": "",
        "postcodes": [],
        "cities": [],
        "rate": f"{rate.percent:.4f}",
        "name": rate.name,
        "priority": 1,
        "compound": False,
        "shipping": rate.shipping,
        "order": rate.id,
        "class": rate.tax_class or "standard",
        "_links": _links(links, self=f"/wc/v3/taxes/{rate.id}", collection="/wc/v3/taxes"),
    }


_V3 = "/wc/v3/"
ROUTES = [
    route("GET", r"/", _root),
    route("GET", r"/wc/v3", _index),
    route("GET", _V3 + r"orders", _orders),
    route("GET", _V3 + r"orders/(\d+)", _order),
    route("GET", _V3 + r"orders/(\d+)/refunds", _refunds),
    route("GET", _V3 + r"orders/(\d+)/refunds/(\d+)", _refund),
    route("GET", _V3 + r"products", _products),
    route("POST", _V3 + r"products/batch", _products_batch),
    route("GET", _V3 + r"products/(\d+)", _product),
    *(route(method, _V3 + r"products/(\d+)", _update_product) for method in EDITABLE),
    route("GET", _V3 + r"products/(\d+)/variations", _variations),
    route("POST", _V3 + r"products/(\d+)/variations/batch", _variations_batch),
    route("GET", _V3 + r"products/(\d+)/variations/(\d+)", _variation),
    *(route(method, _V3 + r"products/(\d+)/variations/(\d+)", _update_variation) for method in EDITABLE),
    route("GET", _V3 + r"taxes", _taxes),
    route("GET", _V3 + r"taxes/(\d+)", _tax_rate_by_id),
]
