"""What Home shows: transfers handled this month and all time, the last 30 days as a chart, the latest failures and
warnings.

Everything is read from the per-day counters (transferlog.DailyCount) and one index-backed query for failures and
warnings, so Home costs the same with ten transfers or ten million.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from django.db import connection
from django.utils import timezone
from django.utils.safestring import mark_safe

from iex.models import Integration
from transferlog.models import COUNTED, ENTITIES, PROBLEMS, DailyCount, Transfer

CHART_DAYS = 30
# The chart's drawing area, in SVG user units; the SVG scales to its container.
WIDTH, HEIGHT, LEFT, BOTTOM = 640, 180, 36, 22


def totals(integration: Integration, today: date) -> list[dict[str, Any]]:
    """Per entity: transfers handled (ended) this month and all time, in one small aggregate."""
    handled = " + ".join(COUNTED)  # column names from our own list
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT entity, SUM({handled}), SUM(CASE WHEN day >= %s THEN {handled} ELSE 0 END) "  # noqa: S608
            f"FROM {DailyCount._meta.db_table} WHERE integration_id = %s GROUP BY entity",
            [today.replace(day=1), integration.pk],
        )
        found = {entity: (all_time, month) for entity, all_time, month in cursor.fetchall()}
    return [
        {"entity": label, "month": found.get(e, (0, 0))[1], "all_time": found.get(e, (0, 0))[0]}
        for e, label in ENTITIES.items()
    ]


@dataclass
class Day:
    day: date
    created: int = 0
    updated: int = 0
    errors: int = 0  # failed and warnings (PROBLEMS), as in the list of the latest ones

    @property
    def total(self) -> int:
        return self.created + self.updated + self.errors

    @property
    def label(self) -> str:
        return f"{self.day:%a} {self.day.day} {self.day:%b}"


def history(integration: Integration, today: date, days: int = CHART_DAYS) -> list[Day]:
    """The last `days` days, oldest first, every day present (a quiet day is a zero)."""
    first = today - timedelta(days=days - 1)
    errors = " + ".join(PROBLEMS)  # column names from our own list
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT day, SUM(created), SUM(updated), SUM({errors}) "  # noqa: S608 (our table and column names)
            f"FROM {DailyCount._meta.db_table} WHERE integration_id = %s AND day BETWEEN %s AND %s GROUP BY day",
            [integration.pk, first, today],
        )
        found = {row[0]: row[1:] for row in cursor.fetchall()}
    result = []
    for n in range(days):
        day = first + timedelta(days=n)
        result.append(Day(day, *found.get(day, (0, 0, 0))))
    return result


def chart(days: list[Day]) -> str:
    """The days as stacked bars (created, updated, errors) in an SVG, with a rounded scale and its grid lines.
    Built here rather than in a template loop: it is most of Home's markup, and this keeps Home fast."""
    top = max((d.total for d in days), default=0)
    scale = _nice(top)
    base = HEIGHT - BOTTOM
    plot_h = base - 8
    step = (WIDTH - LEFT) / len(days)
    parts = [
        f'<svg viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-labelledby="chart-title">'
        '<title id="chart-title">Transfers per day for the last 30 days: created, updated and errors. '
        "The table below has the numbers.</title>"
    ]
    halves = (0, 0.5, 1) if scale % 2 == 0 else (0, 1)  # grid lines only where the value is whole
    for f in halves if scale else ():
        y = base - plot_h * f
        parts.append(
            f'<line class="grid" x1="{LEFT}" x2="{WIDTH}" y1="{y:.1f}" y2="{y:.1f}"/>'
            f'<text class="axis" x="{LEFT - 6}" y="{y:.1f}" text-anchor="end" dominant-baseline="middle">'
            f"{round(scale * f)}</text>"
        )
    for i, d in enumerate(days):
        x = LEFT + i * step + step * 0.15
        label = f"{d.day.day} {d.day:%b}"
        parts.append(f"<g><title>{label}: {d.created} created, {d.updated} updated, {d.errors} errors</title>")
        y = float(base)
        for kind, value in (("created", d.created), ("updated", d.updated), ("errors", d.errors)):
            if value:
                h = plot_h * value / scale
                y -= h
                parts.append(
                    f'<rect class="bar-{kind}" x="{x:.1f}" y="{y:.1f}" width="{step * 0.7:.1f}" height="{h:.1f}"/>'
                )
        anchor = {0: "start", len(days) // 2: "middle", len(days) - 1: "end"}.get(i)
        if anchor:
            tx = {"start": x, "middle": x + step * 0.35, "end": x + step * 0.7}[anchor]
            parts.append(f'<text class="axis" x="{tx:.1f}" y="{HEIGHT - 6}" text-anchor="{anchor}">{label}</text>')
        parts.append("</g>")
    parts.append(f'<line class="base" x1="{LEFT}" x2="{WIDTH}" y1="{base}" y2="{base}"/></svg>')
    # Only numbers and month names go in: nothing to escape.
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


def latest_failures(integration: Integration, limit: int = 5) -> list[Transfer]:
    """The latest failed transfers and warnings (sent, but to check: a draft left for the bookkeeper), the two
    outcomes the chart counts as errors."""
    return list(
        Transfer.objects.filter(integration=integration, status__in=PROBLEMS)
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
        "failures": latest_failures(integration),
    }
