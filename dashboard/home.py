"""What Home shows: transfers done this month and all time by outcome, the last 30 days as a chart, what is not done
yet, the latest failures and warnings.

The outcomes are read from the per-day counters (transferlog.DailyCount), and what waits from index-backed queries
of the few transfers not done and webhooks not read, so Home costs the same with ten transfers or ten million. Every
count says the Log's words for its status (created, updated, skipped, warning, held, failed), and links to them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from django.db import connection
from django.db.models import Count, Min, Value
from django.utils import timezone
from django.utils.safestring import mark_safe

from connections.models import Delivery
from iex.lib.numbers import count as number
from iex.models import Integration
from transferlog.models import COUNTED, ENTITIES, PROBLEMS, UNFINISHED, DailyCount, Status, Transfer

CHART_DAYS = 30
# The chart's drawing area, in SVG user units; the SVG scales to its container.
WIDTH, HEIGHT, LEFT, BOTTOM = 640, 180, 36, 22
# The kinds of wait Home names, of the most that are told apart; the rest are summed up as "other reasons".
WAITS_SHOWN = 5
RECEIVED = Delivery.Status.RECEIVED


def said(status: str, count: int) -> str:
    """A count's outcome in the Log's word for it ("3 warnings", "1 held")."""
    word = Status(status).label.lower()
    return f"{number(count)} {word}{'s' if status == Status.WARNING and count != 1 else ''}"


# What a card counts as done: every outcome but held (a held transfer is not done: "Not done yet" counts it).
DONE = [status for status in COUNTED if status != Status.HELD]


def totals(integration: Integration, today: date) -> list[dict[str, Any]]:
    """Per entity: transfers done (ended) this month, by outcome, and all time, in one small aggregate."""
    month = ", ".join(f"SUM(CASE WHEN day >= %s THEN {status} ELSE 0 END)" for status in DONE)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT entity, SUM({' + '.join(DONE)}), {month} "  # noqa: S608 (column names from our own list)
            f"FROM {DailyCount._meta.db_table} WHERE integration_id = %s GROUP BY entity",
            [*[today.replace(day=1)] * len(DONE), integration.pk],
        )
        found = {entity: (all_time, counts) for entity, all_time, *counts in cursor.fetchall()}
    result = []
    for entity, label in ENTITIES.items():
        all_time, counts = found.get(entity, (0, [0] * len(DONE)))
        result.append(
            {
                "entity": entity,
                "label": label,
                "month": sum(counts),
                "all_time": all_time,
                "outcomes": [
                    {"status": status, "said": said(status, n)}
                    for status, n in zip(DONE, counts, strict=True)
                    if n
                ],
            }
        )
    return result


@dataclass
class Day:
    day: date
    counts: tuple[int, ...]  # one per outcome of COUNTED, in its order: the Log's statuses

    @property
    def total(self) -> int:
        return sum(self.counts)

    @property
    def label(self) -> str:
        return f"{self.day:%a} {self.day.day} {self.day:%b}"

    @property
    def said(self) -> str:
        return ", ".join(said(status, n) for status, n in zip(COUNTED, self.counts, strict=True))


def history(integration: Integration, today: date, days: int = CHART_DAYS) -> list[Day]:
    """The last `days` days, oldest first, every day present (a quiet day is zeros)."""
    first = today - timedelta(days=days - 1)
    sums = ", ".join(f"SUM({status})" for status in COUNTED)  # column names from our own list
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT day, {sums} "  # noqa: S608 (our table and column names)
            f"FROM {DailyCount._meta.db_table} WHERE integration_id = %s AND day BETWEEN %s AND %s GROUP BY day",
            [integration.pk, first, today],
        )
        found = {row[0]: tuple(row[1:]) for row in cursor.fetchall()}
    quiet = (0,) * len(COUNTED)
    return [Day(day, found.get(day, quiet)) for day in (first + timedelta(days=n) for n in range(days))]


def series() -> list[tuple[str, str]]:
    """The chart's series, bottom up, and its legend: the Log's statuses (the bar-<status> colours in app.css)."""
    return [(status, Status(status).label) for status in COUNTED]


def chart(days: list[Day]) -> str:
    """The days as stacked bars, one colour per outcome, in an SVG, with a rounded scale and its grid lines.
    Built here rather than in a template loop: it is most of Home's markup, and this keeps Home fast."""
    top = max((d.total for d in days), default=0)
    scale = _nice(top)
    base = HEIGHT - BOTTOM
    plot_h = base - 8
    step = (WIDTH - LEFT) / len(days)
    parts = [
        f'<svg viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-labelledby="chart-title">'
        '<title id="chart-title">Transfers per day for the last 30 days by outcome: created, updated, skipped, '
        "warning, held and failed. The table below has the numbers.</title>"
    ]
    halves = (0, 0.5, 1) if scale % 2 == 0 else (0, 1)  # grid lines only where the value is whole
    for f in halves if scale else ():
        y = base - plot_h * f
        parts.append(
            f'<line class="grid" x1="{LEFT}" x2="{WIDTH}" y1="{y:.1f}" y2="{y:.1f}"/>'
            f'<text class="axis" x="{LEFT - 6}" y="{y:.1f}" text-anchor="end" dominant-baseline="middle">'
            f"{number(round(scale * f))}</text>"
        )
    for i, d in enumerate(days):
        x = LEFT + i * step + step * 0.15
        label = f"{d.day.day} {d.day:%b}"
        parts.append(f"<g><title>{label}: {d.said}</title>")
        y = float(base)
        for status, value in zip(COUNTED, d.counts, strict=True):
            if value:
                h = plot_h * value / scale
                y -= h
                parts.append(
                    f'<rect class="bar-{status}" x="{x:.1f}" y="{y:.1f}" width="{step * 0.7:.1f}" height="{h:.1f}"/>'
                )
        anchor = {0: "start", len(days) // 2: "middle", len(days) - 1: "end"}.get(i)
        if anchor:
            tx = {"start": x, "middle": x + step * 0.35, "end": x + step * 0.7}[anchor]
            parts.append(f'<text class="axis" x="{tx:.1f}" y="{HEIGHT - 6}" text-anchor="{anchor}">{label}</text>')
        parts.append("</g>")
    parts.append(f'<line class="base" x1="{LEFT}" x2="{WIDTH}" y1="{base}" y2="{base}"/></svg>')
    # Only numbers, our status words and month names go in: nothing to escape.
    return mark_safe("".join(parts))  # noqa: S308


def _nice(top: int) -> int:
    """The smallest of 1, 2, 5 x 10^n at or above `top` (0 stays 0)."""
    if top <= 0:
        return 0
    magnitude = 1
    while True:
        for m in (1, 2, 5):
            if m * magnitude >= top:
                return m * magnitude
        magnitude *= 10


@dataclass
class Wait:
    """Transfers (or webhooks not read yet) waiting for the same thing."""

    status: str  # their status in the Log (RECEIVED for webhooks not read: they are no transfers yet)
    said: str  # what they wait for
    count: int
    oldest: datetime


# What a transfer not done waits for, when its status says it all (a retrying or held one says why in its reason).
WAITS_FOR: dict[str, str] = {
    Status.PENDING: "waiting for a worker to send them",
    Status.RUNNING: "being sent now",
    RECEIVED: "webhooks from the shop stored, not read yet (they become transfers when read)",
}


def waiting(integration: Integration) -> dict[str, Any]:
    """What is received and not done yet: the webhooks stored and not read (a Redis outage leaves them waiting, and
    they are no transfers until read) and the transfers pending, running, retrying or held, grouped by what they
    wait for, oldest first; how many in all, and since when the oldest waits. One query, off partial indexes of what
    waits (delivery_waiting, transfer_unfinished: a handful of rows among millions done); two more only when there
    are more kinds of wait than Home names."""
    unread = Delivery.objects.filter(status=RECEIVED, module__in=integration.modules.all())
    unfinished = Transfer.objects.filter(integration=integration, status__in=UNFINISHED)
    groups = (
        unfinished.values("status", "reason")
        .annotate(n=Count("id"), oldest=Min("created"))
        .union(
            unread.values("status").annotate(reason=Value(""), n=Count("id"), oldest=Min("received_at")), all=True
        )
        .order_by("oldest")
    )
    waits = [
        Wait(g["status"], WAITS_FOR.get(g["status"]) or g["reason"] or g["status"], g["n"], g["oldest"])
        for g in groups[: WAITS_SHOWN + 1]
    ]
    count = sum(w.count for w in waits)
    if len(waits) > WAITS_SHOWN:
        waits = waits[:WAITS_SHOWN]
        count = unfinished.count() + unread.count()
    oldest = waits[0].oldest if waits else None
    received = sum(w.count for w in waits if w.status == RECEIVED)  # not in the Log until read
    return {
        "waits": waits,
        "count": count,
        "others": count - sum(w.count for w in waits),
        "oldest": oldest,
        "received": received,
    }


def latest_failures(integration: Integration, limit: int = 5) -> list[Transfer]:
    """The latest failed transfers and warnings (sent, but to check: a draft left for the bookkeeper), the two
    outcomes the chart counts as errors; those marked handled are dealt with. (Read off the problems' index: the
    handled ones it steps over are the few a merchant marked by hand.)"""
    return list(
        Transfer.objects.filter(integration=integration, status__in=PROBLEMS, handled_at=None)
        .order_by("-updated")
        .only("code", "reference", "source_ref", "connection_label", "status", "reason", "updated")[:limit]
    )


def context(integration: Integration) -> dict[str, Any]:
    today = timezone.now().date()
    days = history(integration, today)
    return {
        "totals": totals(integration, today),
        "days": days,
        "chart": chart(days),
        "series": series(),
        "waiting": waiting(integration),
        "failures": latest_failures(integration),
    }
