from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from connections.models import Connection, Trigger
from iex.access import AuthedRequest, get_member, get_member_rw
from iex.lib.queueing import publish_on_commit
from iex.models import Member
from scheduling.models import INTERVALS, Job
from scheduling.tasks import RUN_JOB
from transferlog.models import Transfer


def _job(member: Member, code: str) -> Job:
    return get_object_or_404(
        member.integration.jobs.select_related("connection__source", "connection__target"), code=code
    )


def _connection(member: Member, code: str) -> Connection:
    return get_object_or_404(member.integration.connections.select_related("source", "target"), code=code)


def _row(job: Job) -> dict:
    counts = {}
    if job.last_started_at:
        # What the transfers of the last run became (they are processed after the run ends).
        rows = Transfer.objects.filter(connection=job.connection_id, created__gte=job.last_started_at)
        for status in ("created", "updated", "failed"):
            counts[status] = rows.filter(status=status).count()
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
    return {
        "job": job,
        "late": job.is_late() and not paused,
        "counts": counts,
        "last_delivery": last_delivery,
        "paused": paused,
    }


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
    if not reason:
        publish_on_commit(RUN_JOB, job.pk)
    if request.htmx:  # type: ignore[attr-defined]
        # The row polls itself until the run has finished; a refusal shows in the row.
        job.refresh_from_db()
        row = {**_row(job), "refusal": reason}
        return render(
            request, "scheduling/job_row.html", {"row": row, "intervals": INTERVALS, "polling": not reason}
        )
    if reason:
        messages.error(request, f"{job.connection.label} cannot run: {reason}.")
    else:
        messages.success(request, f"{job.connection.label} runs now.")
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
    rows = member.integration.connections.select_related("source", "target", "integration").order_by(
        "flow", "created"
    )
    context = {
        "connections": rows,
        "triggers": Trigger.choices,
        "not_offered": Connection.not_offered(member.integration),
    }
    return render(request, "scheduling/connections.html", context)


@login_required
@require_POST
def update_connection(request: AuthedRequest, number: str, code: str) -> HttpResponse:
    member = get_member_rw(request, number)
    conn = _connection(member, code)
    if "trigger" in request.POST:
        if request.POST["trigger"] not in Trigger.values:
            messages.error(request, "Choose schedule or webhook.")
            return redirect("connections", number)
        conn.trigger = request.POST["trigger"]
    if "active" in request.POST:
        active = request.POST["active"] == "on"
        missing = [m.system.label for m in (conn.source, conn.target) if not m.connected]
        if active and missing:
            messages.error(request, f"Connect {' and '.join(missing)} before activating {conn.label}.")
            return redirect("connections", number)
        if active and not conn.active:
            Job.ensure_for(conn).start_now()  # from now: a connection transfers from the moment it is activated
        conn.active = active
    conn.save(update_fields=["trigger", "active"])
    messages.success(
        request,
        f"{conn.label}: {'active' if conn.active else 'inactive'}, {conn.get_trigger_display().lower()}-driven.",
    )
    return redirect("connections", number)
