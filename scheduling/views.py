from datetime import datetime, timedelta

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Count
from django.http import HttpResponse, QueryDict
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from billing.models import Usage, month_of
from connections import subscriptions
from connections.models import Connection, Module, Trigger
from iex.access import AuthedRequest, get_member, get_member_rw
from iex.lib.queueing import publish_on_commit
from iex.models import Integration, Member
from scheduling.forms import StartForm
from scheduling.models import INTERVALS, Job, RunOutcome
from scheduling.tasks import RUN_JOB
from transferlog.models import Status

# What a run's new records became, in the words of its summary; the rest are still waiting to be sent.
BECAME = [
    (Status.CREATED, "created"),
    (Status.UPDATED, "updated"),
    (Status.SKIPPED, "skipped"),
    (Status.WARNING, "with a warning"),
    (Status.HELD, "held"),
    (Status.FAILED, "failed"),
]
WAITING = (Status.PENDING, Status.RUNNING, Status.RETRYING)
# A run's transfers are sent within seconds of it, unless they wait for a retry (minutes to an hour): a row stops
# polling for them after this, saying how many still wait.
SETTLING = timedelta(minutes=2)


def _job(member: Member, code: str) -> Job:
    return get_object_or_404(
        member.integration.jobs.select_related("connection__source", "connection__target"), code=code
    )


def _connection(member: Member, code: str) -> Connection:
    return get_object_or_404(member.integration.connections.select_related("source", "target"), code=code)


def _row(job: Job) -> dict:
    last_delivery = None
    if job.connection.trigger == "webhook":
        last_delivery = (
            job.connection.source.deliveries.order_by("-received_at").values_list("received_at", flat=True).first()
        )
    # A connection that is on but cannot run (a system deactivated or not connected, the integration off) is
    # paused: said in its row, with no next run promised.
    connection = job.connection
    paused = connection.skip_reason() if connection.active else ""
    refused = connection.refused() if connection.active and not paused else None
    if refused is not None:
        paused = f"{refused.system.label} refused IEX: test it on its page"
    summary, waiting = _summary(job)
    return {
        "job": job,
        "late": job.is_late() and not paused,
        "summary": summary,
        "polling": _polling(job, waiting),
        "last_delivery": last_delivery,
        "paused": paused,
    }


def _summary(job: Job) -> tuple[str, int]:
    """What the last successful run found and what became of it, adding up: fetched = new + already known, and new =
    what the new transfers became + those still waiting. Also how many still wait."""
    if job.last_outcome != RunOutcome.OK:
        return "", 0
    fetched, new = job.last_fetched, job.last_received
    if not fetched:
        return "0 fetched: nothing had changed.", 0
    said = f"{fetched} fetched: {new} new, {fetched - new} already known."
    became = dict(job.run_transfers().order_by().values_list("status").annotate(n=Count("id")))
    waiting = sum(became.get(status, 0) for status in WAITING)
    parts = [f"{became[status]} {words}" for status, words in BECAME if became.get(status)]
    if waiting:
        parts.append(f"{waiting} still waiting")
    return f"{said} Of the new: {', '.join(parts)}." if parts else said, waiting


def _polling(job: Job, waiting: int) -> bool:
    """Whether the row polls itself: while a run is queued or going, and while its transfers settle."""
    if job.queued_at or job.running_since:
        return True
    return bool(waiting and job.last_finished_at and timezone.now() - job.last_finished_at < SETTLING)


# /i/<number>/schedule/


@login_required
@require_GET
def schedule(request: AuthedRequest, number: str) -> HttpResponse:
    member = get_member(request, number)
    Job.ensure_all(member.integration)  # connections of systems added since: each gets its job
    jobs = member.integration.jobs.select_related(
        "connection__source", "connection__target", "connection__integration"
    ).order_by("connection__created")
    ctx = {"rows": [_row(job) for job in jobs], "intervals": INTERVALS}
    return render(request, "scheduling/schedule.html", ctx)


@login_required
@require_GET
def job_row(request: AuthedRequest, number: str, code: str) -> HttpResponse:
    """One job's row, polled by htmx while a run is going."""
    member = get_member(request, number)
    return render(request, "scheduling/job_row.html", {"row": _row(_job(member, code)), "intervals": INTERVALS})


@login_required
@require_POST
def run_job_now(request: AuthedRequest, number: str, code: str) -> HttpResponse:
    member = get_member_rw(request, number)
    job = _job(member, code)
    reason = job.connection.skip_reason()
    queued = not reason and job.queue(timezone.now())
    if queued:
        publish_on_commit(RUN_JOB, job.pk)
    if request.htmx:  # type: ignore[attr-defined]
        # Queued at once; the row polls itself until the run and its transfers have settled. A refusal shows in it.
        job.refresh_from_db()
        row = {**_row(job), "refusal": reason}
        return render(request, "scheduling/job_row.html", {"row": row, "intervals": INTERVALS})
    if reason:
        messages.error(request, f"{job.connection.label} cannot run: {reason}.")
    elif queued:
        messages.success(request, f"{job.connection.label} is queued: it runs in a moment.")
    else:
        messages.success(
            request, f"{job.connection.label} is running already: its result shows here when it ends."
        )
    return redirect("schedule", number)


@login_required
@require_POST
def set_job_interval(request: AuthedRequest, number: str, code: str) -> HttpResponse:
    member = get_member_rw(request, number)
    job = _job(member, code)
    try:
        interval = int(request.POST.get("interval", ""))
    except ValueError:
        interval = 0
    if interval not in dict(INTERVALS):
        messages.error(request, "Choose one of the listed intervals.")
        return redirect("schedule", number)
    shorter = interval < job.interval
    job.interval = interval
    now = timezone.now()
    # Run at the new pace from now on rather than at the end of the old interval (at once, if it is due already:
    # never a next run in the past), and be late only by the new pace counted from now.
    job.next_run_at = max(now, min(job.next_run_at, (job.last_started_at or job.created) + job.period))
    if shorter:
        job.on_time_at = max(job.on_time_at, now)
    job.save(update_fields=["interval", "next_run_at", "on_time_at"])
    messages.success(request, f"{job.connection.label} now runs every {job.get_interval_display()}.")
    return redirect("schedule", number)


# /i/<number>/connections/


@login_required
@require_GET
def connections(request: AuthedRequest, number: str) -> HttpResponse:
    """The flows between the integration's systems: whether each runs, and what starts it (its job, or webhooks)."""
    member = get_member(request, number)
    Connection.ensure_for(member.integration)  # flows added since the systems were (credit notes)
    return _connections_page(request, member.integration)


def _connections_page(
    request: AuthedRequest,
    integration: Integration,
    *,
    status: int = 200,
    start: tuple[Connection, StartForm] | None = None,
) -> HttpResponse:
    """The Connections page; answering a refused change (400), with the start form that was refused, if one was."""
    Job.ensure_all(integration)  # an orders connection's start date is kept on its job
    rows = integration.connections.select_related("source", "target", "integration", "job").order_by(
        "flow", "created"
    )
    refused, refused_form = start or (None, None)
    starts = [
        {"c": c, "job": c.job, "form": refused_form if c == refused else _start_form(c)}
        for c in rows
        if c.flow == "orders"
    ]
    webhooks = _webhook_setups(list(rows))
    context = {
        "rows": [{"c": c, "triggers": _triggers(c)} for c in rows],
        "starts": starts,
        "usage": Usage.peek(integration, month_of(timezone.now())),
        "webhooks": webhooks,
        "webhooks_by_hand": any(registered is None for _, _, registered in webhooks),
        "not_offered": Connection.not_offered(integration),
    }
    return render(request, "scheduling/connections.html", context, status=status)


def _start_form(connection: Connection, data: QueryDict | None = None) -> StartForm:
    """The start date form of an orders connection (its fields named apart from the other orders connections')."""
    initial = StartForm.initial_for(connection.job.import_from)
    return StartForm(data, initial=initial, auto_id=f"start-{connection.code}-%s")


def _triggers(connection: Connection) -> list[tuple[str, str]]:
    """The triggers offered: webhooks only where the source system posts them for the flow (and one chosen before
    it was refused, so the page says what it is)."""
    offered = [
        (value, label)
        for value, label in Trigger.choices
        if value != Trigger.WEBHOOK or connection.flow_def.posted_by(connection.source.system)
    ]
    if connection.trigger not in dict(offered):
        offered.append((connection.trigger, f"Webhook: {connection.source.system.label} posts none"))
    return offered


def _webhook_setups(rows: list[Connection]) -> list[tuple[Module, list[Connection], list[str] | None]]:
    """Each source system that webhooks drive connections from, with them: where to register its address, or the
    topics IEX registered there itself (None when the merchant registers them)."""
    setups: dict[int, tuple[Module, list[Connection]]] = {}
    for c in rows:
        if c.trigger == Trigger.WEBHOOK and c.flow_def.posted_by(c.source.system):
            setups.setdefault(c.source_id, (c.source, []))[1].append(c)
    return [(module, driven, subscriptions.registered(module, driven)) for module, driven in setups.values()]


@login_required
@require_POST
def update_connection(request: AuthedRequest, number: str, code: str) -> HttpResponse:
    member = get_member_rw(request, number)
    conn = _connection(member, code)
    if {"start", "date"} & request.POST.keys():
        return _choose_start(request, member.integration, conn)
    was = (conn.trigger, conn.active)
    if "trigger" in request.POST:
        trigger = request.POST["trigger"]
        if trigger not in Trigger.values:
            return _refuse(request, member.integration, "Choose schedule or webhook.")
        if trigger == Trigger.WEBHOOK and not conn.flow_def.posted_by(conn.source.system):
            system = conn.source.system.label
            said = f"{system} posts no {conn.flow_def.label} webhooks: {conn.label} runs on a schedule."
            return _refuse(request, member.integration, said)
        conn.trigger = trigger
    if "active" in request.POST:
        active = request.POST["active"] == "on"
        missing = [m.system.label for m in (conn.source, conn.target) if not m.connected]
        if active and missing:
            messages.error(request, f"Connect {' and '.join(missing)} before activating {conn.label}.")
            return redirect("connections", number)
        if active and not conn.active:
            # From the start date, or now: a connection transfers from the moment it is activated.
            Job.ensure_for(conn).start_now()
        conn.active = active
    conn.save(update_fields=["trigger", "active"])
    # Switched to or from webhooks, or switched on with them (Shopify drops a subscription that keeps failing)
    if conn.trigger != was[0] or (conn.trigger == Trigger.WEBHOOK and conn.active and not was[1]):
        _subscribe(request, conn)
    messages.success(
        request,
        f"{conn.label}: {'active' if conn.active else 'inactive'}, {conn.get_trigger_display().lower()}-driven.",
    )
    return redirect("connections", number)


def _subscribe(request: AuthedRequest, conn: Connection) -> None:
    """A shop where IEX's app is installed gets the webhooks its webhook-driven connections need, subscribed by IEX
    (nothing happens for a shop whose webhooks the merchant registers). Refused, the connection stays on its schedule:
    its job goes on fetching, so nothing is missed."""
    failure = subscriptions.subscribe(conn.source)
    if not failure:
        return
    shop = conn.source.system.label
    if conn.trigger != Trigger.WEBHOOK:
        messages.error(
            request,
            f"IEX could not take the webhooks of {conn.label} out of {shop}: {failure}. What {shop} posts for it is "
            "ignored: it runs on its schedule.",
        )
        return
    conn.trigger = Trigger.SCHEDULE
    conn.save(update_fields=["trigger"])
    # What was made for it before the refusal is taken away, if the shop lets IEX.
    subscriptions.subscribe(conn.source)
    messages.error(
        request,
        f"IEX could not register the webhooks of {conn.label} in {shop}: {failure}. It stays on a schedule.",
    )


def _refuse(request: AuthedRequest, integration: Integration, said: str) -> HttpResponse:
    messages.error(request, said)
    return _connections_page(request, integration, status=400)


def _choose_start(request: AuthedRequest, integration: Integration, conn: Connection) -> HttpResponse:
    """Save from which date the orders connection imports: the first run starts there; after runs, an earlier date
    imports again from then."""
    if conn.flow != "orders":
        return _refuse(request, integration, f"{conn.label} has no start date: it goes on from its last run.")
    job = Job.ensure_for(conn)
    form = _start_form(conn, request.POST)
    if not form.is_valid():
        return _connections_page(request, integration, status=400, start=(conn, form))
    start = form.since()
    again = job.choose_start(start)
    books = conn.target.system.label
    if again:
        said = (
            f"{conn.label} imports again the orders placed or changed since {_when(start)}. Those already "
            f"transferred are not made twice in {books}; each order new to {books} counts against this month's "
            "allowance."
        )
    elif job.last_ok_at is not None:
        said = f"{conn.label} goes on from its last run; the orders it imported stay as they are."
    elif start is None:
        said = f"{conn.label} imports orders placed or changed from now on."
    else:
        said = (
            f"{conn.label} imports orders placed or changed since {_when(start)} at its first run; each counts "
            "against the month's allowance."
        )
    messages.success(request, said)
    return redirect("connections", integration.number)


def _when(at: datetime | None) -> str:
    return f"{at:%-d %b %Y, %H:%M} UTC" if at else "now"
