"""The Log: every transfer newest first, searchable, each folding out to its data in every state."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from datetime import date, datetime, time
from urllib.parse import urlsplit
from uuid import UUID

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Q, QuerySet
from django.http import HttpResponse, HttpResponseBadRequest, QueryDict, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_date
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from iex.access import AuthedRequest, get_member, get_member_rw
from iex.lib.ids import is_uuid
from iex.lib.queueing import publish_on_commit
from iex.models import Integration, Member
from transferlog import fold_out
from transferlog.models import COUNTED, ENTITIES, UNFINISHED, WAITING, Status, Transfer, search_text

PAGE = 50
FILTERS = ("q", "status", "connection", "entity", "from", "to")
# The status filter in Home's words and order: the outcomes, then what is not done yet (all of it, as Home's "Not done
# yet" counts it, or one kind).
STATUS_FILTER = [
    ("Done", [(status, Status(status).label) for status in COUNTED if status != Status.HELD]),
    (
        "Not done yet",
        [(WAITING, "Not done yet (all)"), *((status, Status(status).label) for status in UNFINISHED)],
    ),
]
# A line whose transfer is not settled asks for itself again this often (seconds), until it settles (transfer_row).
POLL: dict[str, int] = {Status.PENDING: 2, Status.RUNNING: 2, Status.RETRYING: 10}
POLL_MAX = 60  # seconds: each ask of a line doubles its wait up to this


def _transfer(member: Member, code: str) -> Transfer:
    return get_object_or_404(member.integration.transfers, code=code)


class BadFilter(ValueError):
    """A filter in the URL that cannot be applied (a day that does not exist): said, never guessed."""


def _day(params: QueryDict, name: str) -> date | None:
    value = params.get(name, "") or ""
    try:
        day = parse_date(value)
    except ValueError:  # well formed, but no such day (2024-02-30)
        day = None
    if value and day is None:
        raise BadFilter(f"“{value[:20]}” is not a day (write it as 2024-02-29)")
    return day


def _search(q: str) -> Q:
    """What a merchant types to find a transfer: an order number with or without its "#", or the start of it ("1042"
    and "#1042" find #1042, "104" finds #1040-#1049 and #10400...), the shop's own id of the record, the number of
    the document made of it (an invoice), its customer's email or the start of it, or words of its customer's names
    (the person's, the company's) in any order.

    Each is read off an index that starts with the integration (PostgreSQL: the names off a trigram index). Numbers
    never search the customer, and one word with an "@" or a "." in it is an email (or its start), never a name: the
    trigrams of "thomas.mads" would read half the names of a shop to find none."""
    number = q.removeprefix("#").strip()
    if not number:  # "#" alone: the start of every order number
        return Q(pk__in=[])
    found = (
        Q(reference__startswith=number)
        | Q(reference__startswith=f"#{number}")
        | Q(source_ref=number)
        | Q(target_ref=number)
    )
    if number.isdigit():
        return found
    words = search_text(q)
    found |= Q(search_email__startswith=words)
    if " " in words or not {"@", "."} & set(words):
        found |= Q(*(Q(search_terms__contains=word) for word in words.split()))
    return found


def _filtered(integration: Integration, params: QueryDict) -> QuerySet[Transfer]:
    """The integration's transfers narrowed by the filters in the URL (a shared link shows the same view); raises
    BadFilter for a filter that cannot be applied."""
    rows = integration.transfers.all()
    if q := params.get("q", "").strip():
        rows = rows.filter(_search(q))
    if (status := params.get("status")) == WAITING:
        rows = rows.filter(status__in=UNFINISHED)
    elif status in Status.values:
        rows = rows.filter(status=status)
    if connection := params.get("connection"):
        rows = rows.filter(connection__code=connection) if is_uuid(connection) else rows.none()
    if entity := params.get("entity"):
        rows = rows.filter(entity=entity)
    if day := _day(params, "from"):
        rows = rows.filter(created__gte=timezone.make_aware(datetime.combine(day, time.min)))
    if day := _day(params, "to"):
        rows = rows.filter(created__lte=timezone.make_aware(datetime.combine(day, time.max)))
    return rows


def _cursor(integration: Integration, value: str) -> tuple[datetime, int] | None:
    """(created, id) of the transfer a pager's link names by its time and code: the URL shows no row id, which
    would tell the platform's volume (DESIGN.md: public ids are codes)."""
    stamp, _, code = value.rpartition("_")
    if not is_uuid(code):
        return None
    try:
        created = datetime.fromisoformat(stamp)
    except ValueError:
        return None
    pk = integration.transfers.filter(code=code).values_list("pk", flat=True).first()
    return (created, pk) if pk is not None else None


def _key(transfer: Transfer) -> str:
    return f"{transfer.created.isoformat()}_{transfer.code}"


# /i/<number>/log/


@login_required
@require_GET
def log(request: AuthedRequest, number: str) -> HttpResponse:
    """Keyset pages on (created, id), read straight off the (integration, -created, -id) index at any depth."""
    member = get_member(request, number)
    try:
        rows = _filtered(member.integration, request.GET)
    except BadFilter as exc:
        messages.error(request, f"{exc}: the Log is shown without the dates.")
        rows = _filtered(member.integration, _without(request.GET, "from", "to"))
    # A line needs only these: the data of each state waits for its fold-out.
    rows = rows.only(
        "integration",
        "code",
        "created",
        "connection_label",
        "reference",
        "source_ref",
        "status",
        "reason",
        "attempts",
    )
    before = _cursor(member.integration, request.GET.get("before", ""))
    after = _cursor(member.integration, request.GET.get("after", ""))
    if after:
        created, pk = after
        # (created, id) > (c, i), written so the planner can start an index range scan at created >= c.
        newer = rows.filter(created__gte=created).filter(Q(created__gt=created) | Q(pk__gt=pk))
        page = list(newer.order_by("created", "id")[: PAGE + 1])
        has_newer = len(page) > PAGE
        page = page[:PAGE][::-1]
        has_older = True
    else:
        if before:
            created, pk = before
            # (created, id) < (c, i): the range condition created <= c lets the scan start right there.
            rows = rows.filter(created__lte=created).filter(Q(created__lt=created) | Q(pk__lt=pk))
        page = list(rows.order_by("-created", "-id")[: PAGE + 1])
        has_older = len(page) > PAGE
        page = page[:PAGE]
        has_newer = before is not None
    kept = QueryDict(mutable=True)
    for name in FILTERS:
        if request.GET.get(name):
            kept[name] = request.GET[name]
    # Each line's addresses, made by substitution rather than a reverse() per line.
    detail = reverse("transfer_detail", args=[number, UUID(int=0)])
    row = reverse("transfer_row", args=[number, UUID(int=0)])
    opened = request.GET.get("open", "")
    for t in page:
        code = str(t.code)
        t.detail_url, t.opened = detail.replace(str(UUID(int=0)), code), code == opened  # type: ignore[attr-defined]
        _line(t, row.replace(str(UUID(int=0)), code))
    retention = member.integration.retention_days()
    ctx = {
        "transfers": page,
        "filters": {name: request.GET.get(name, "") for name in FILTERS},
        "filtered": bool(kept),
        "query": kept.urlencode(),
        "older": _key(page[-1]) if page and has_older else "",
        "newer": _key(page[0]) if page and has_newer else "",
        "statuses": STATUS_FILTER,
        "connections": member.integration.connections.select_related("source", "target"),
        "entities": ENTITIES.items(),
        "retention": retention,
        "retention_failed": 2 * retention,
    }
    return render(request, "transferlog/log.html", ctx)


LABELS = dict(Status.choices)


def _line(t: Transfer, row_url: str, asked: int = 0) -> None:
    """What a line shows, formatted here: the template's date filter and choice display cost more than the rest of
    a line. A transfer not settled yet polls its line's address (`transfer_row`) until it is, less often each time
    it asked (a page of lines waiting out an outage must not ask many times a second)."""
    t.when = f"{t.created.day} {t.created:%b %Y, %H:%M:%S}"  # type: ignore[attr-defined]  # UTC, like the page
    t.status_label = LABELS.get(t.status, t.status)  # type: ignore[attr-defined]
    poll = POLL.get(t.status)
    t.poll = poll and min(POLL_MAX, poll * 2**asked)  # type: ignore[attr-defined]
    t.row_url = f"{row_url}?asked={asked + 1}"  # type: ignore[attr-defined]


@login_required
@require_GET
def transfer_row(request: AuthedRequest, number: str, code: str) -> HttpResponse:
    """A Log line as it is now, polled by the line while its transfer is pending, running or retrying: a retried
    transfer's line follows it to its outcome without a reload, and stops asking once it is settled."""
    member = get_member(request, number)
    transfer = get_object_or_404(member.integration.transfers.defer("source_data"), code=code)
    try:
        asked = min(int(request.GET.get("asked", "0")), 10)
    except ValueError:
        asked = 0
    _line(transfer, request.path, max(asked, 0))
    return render(request, "transferlog/row.html", {"t": transfer})


def _cell(value: object) -> object:
    """A value a spreadsheet shows as text, never runs as a formula: a shop's order name or product title that
    begins with =, +, -, @, a tab or a carriage return gets a leading apostrophe (OWASP's CSV injection advice)."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def _without(params: QueryDict, *names: str) -> QueryDict:
    kept = params.copy()
    for name in names:
        kept.pop(name, None)
    return kept


class _Echo:
    def write(self, value: str) -> str:
        return value


@login_required
@require_GET
def export_log(request: AuthedRequest, number: str) -> HttpResponse | StreamingHttpResponse:
    """The current filter as CSV, streamed row by row: a year of transfers downloads without filling memory."""
    member = get_member(request, number)
    try:
        rows = _filtered(member.integration, request.GET).order_by("-created", "-id")
    except BadFilter as exc:
        return HttpResponseBadRequest(f"{exc}: nothing was exported.\n", content_type="text/plain; charset=utf-8")
    writer = csv.writer(_Echo())
    header = [
        "time_utc",
        "connection",
        "entity",
        "reference",
        "source_id",
        "status",
        "reason",
        "action",
        "receiving_id",
        "attempts",
    ]

    def lines() -> Iterator[str]:
        yield writer.writerow(header)
        for t in rows.values_list(
            "created",
            "connection_label",
            "entity",
            "reference",
            "source_ref",
            "status",
            "reason",
            "action",
            "target_ref",
            "attempts",
        ).iterator(chunk_size=2000):
            yield writer.writerow([t[0].isoformat(), *map(_cell, t[1:])])

    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    stamp = timezone.now().strftime("%Y%m%d-%H%M")
    response["Content-Disposition"] = f'attachment; filename="iex-{member.integration.number}-log-{stamp}.csv"'
    return response


@login_required
@require_GET
def transfer_detail(request: AuthedRequest, number: str, code: str) -> HttpResponse:
    """What the shop sent beside the document made of it, then every state with its data; the fold-out fetches it
    with htmx, a plain link (the Log without JavaScript) gets the transfer's page."""
    member = get_member(request, number)
    transfer = _transfer(member, code)
    ctx = {"transfer": transfer, "summary": fold_out.summary(transfer, list(transfer.states.all()))}
    template = "transferlog/detail.html" if request.htmx else "transferlog/transfer.html"  # type: ignore[attr-defined]
    return render(request, template, ctx)


@login_required
@require_POST
def retry_transfer(request: AuthedRequest, number: str, code: str) -> HttpResponse:
    # Viewers may retry (DESIGN.md): it changes no setting, it runs what was meant to run.
    member = get_member(request, number)
    transfer = _transfer(member, code)
    if transfer.retry(by=request.user.email):
        messages.success(request, f"{transfer.reference or transfer.source_ref} is queued again.")
    else:
        messages.error(request, "Only failed or held transfers can be retried.")
    return _back(request, number)


def _back(request: AuthedRequest, number: str) -> HttpResponse:
    """Back where the form was (the Log with its filters, the transfer's page): a page of IEX only, never an address
    someone else chose."""
    back = request.POST.get("back", "")
    if url_has_allowed_host_and_scheme(back, {request.get_host()}, request.is_secure()):
        # htmx gives the page's whole address: its path and query are where to go back to.
        path, query = urlsplit(back)[2:4]
        if path.startswith("/"):
            return redirect(f"{path}?{query}" if query else path)
    return redirect(reverse("log", args=[number]))


@login_required
@require_POST
def mark_handled(request: AuthedRequest, number: str, code: str) -> HttpResponse:
    """A failure or warning someone has dealt with (the draft checked in e-conomic): off Home's list, with who and
    when kept on the transfer."""
    member = get_member_rw(request, number)
    transfer = _transfer(member, code)
    name = transfer.reference or transfer.source_ref
    if transfer.mark_handled(by=request.user.email):
        messages.success(request, f"{name} is marked handled: it is no longer listed on Home.")
    else:
        messages.error(request, f"{name} is no failure or warning now: there is nothing to mark handled.")
    return _back(request, number)


@login_required
@require_POST
def unmark_handled(request: AuthedRequest, number: str, code: str) -> HttpResponse:
    member = get_member_rw(request, number)
    transfer = _transfer(member, code)
    transfer.unmark_handled()
    messages.success(request, f"{transfer.reference or transfer.source_ref} is no longer marked handled.")
    return _back(request, number)


@login_required
@require_POST
def retry_failed_transfers(request: AuthedRequest, number: str) -> HttpResponse:
    """Retry every failed transfer in the current filter, in the background."""
    member = get_member(request, number)
    try:
        rows = _filtered(member.integration, request.POST)
    except BadFilter as exc:
        messages.error(request, f"{exc}: nothing was retried.")
        return redirect("log", number)
    ids = list(rows.filter(status=Status.FAILED).values_list("pk", flat=True)[:10_000])
    if ids:
        publish_on_commit("transferlog.tasks.retry_transfers", ids, request.user.email)
    messages.success(request, f"{len(ids)} failed transfer{'s' if len(ids) != 1 else ''} queued for retry.")
    query = QueryDict(mutable=True)
    for name in FILTERS:
        if request.POST.get(name):
            query[name] = request.POST[name]
    return redirect(reverse("log", args=[number]) + (f"?{query.urlencode()}" if query else ""))
