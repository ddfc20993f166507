"""What Home shows: transfers handled this month and all time, the last 30 days as a chart, the latest failures.

Everything is read from the per-day counters (transferlog.DailyCount) and one index-backed query for failures, so
Home costs the same with ten transfers or ten million.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from django.db.models import Sum
from django.utils import timezone

from iex.models import Integration
from transferlog.models import COUNTED, DailyCount, Status, Transfer

ENTITIES = ["orders", "products", "stock"]
CHART_DAYS = 30
# The chart's drawing area, in SVG user units; the SVG scales to its container.
WIDTH, HEIGHT, LEFT, BOTTOM = 640, 180, 36, 22


def totals(integration: Integration, today: date) -> list[dict[str, Any]]:
    """Per entity: transfers handled (ended) this month and all time."""
    handled = sum((Sum(status) for status in COUNTED[1:]), Sum(COUNTED[0]))
    rows = DailyCount.objects.filter(integration=integration)
    all_time = dict(rows.values("entity").annotate(n=handled).values_list("entity", "n"))
    month = dict(
        rows.filter(day__gte=today.replace(day=1)).values("entity").annotate(n=handled).values_list("entity", "n")
    )
    return [{"entity": e, "month": month.get(e) or 0, "all_time": all_time.get(e) or 0} for e in ENTITIES]


@dataclass
class Day:
    day: date
    created: int = 0
    updated: int = 0
    errors: int = 0  # failed and warnings

    @property
    def total(self) -> int:
        return self.created + self.updated + self.errors


def history(integration: Integration, today: date, days: int = CHART_DAYS) -> list[Day]:
    """The last `days` days, oldest first, every day present (a quiet day is a zero)."""
    first = today - timedelta(days=days - 1)
    found = {
        row["day"]: row
        for row in DailyCount.objects.filter(integration=integration, day__gte=first, day__lte=today)
        .values("day")
        .annotate(c=Sum("created"), u=Sum("updated"), f=Sum("failed"), w=Sum("warning"))
    }
    result = []
    for n in range(days):
        day = first + timedelta(days=n)
        row = found.get(day)
        result.append(Day(day, row["c"], row["u"], row["f"] + row["w"]) if row else Day(day))
    return result


def chart(days: list[Day]) -> dict[str, Any]:
    """Stacked bars (created, updated, errors) in SVG coordinates, with a rounded scale and its grid lines."""
    top = max((d.total for d in days), default=0)
    scale = _nice(top)
    plot_h = HEIGHT - BOTTOM - 8
    step = (WIDTH - LEFT) / len(days)
    bars = []
    for i, d in enumerate(days):
        x = LEFT + i * step + step * 0.15
        y = float(HEIGHT - BOTTOM)
        segments = []
        for kind, value in (("created", d.created), ("updated", d.updated), ("errors", d.errors)):
            h = plot_h * value / scale if scale else 0.0
            if value:
                y -= h
                segments.append({"kind": kind, "y": round(y, 1), "h": round(h, 1)})
        bars.append(
            {
                "x": round(x, 1),
                "w": round(step * 0.7, 1),
                "segments": segments,
                "day": d,
                "label": i in (0, len(days) // 2, len(days) - 1),
                "label_x": round(x + step * 0.35, 1),
            }
        )
    grid = [{"value": round(scale * f), "y": round(HEIGHT - BOTTOM - plot_h * f, 1)} for f in (0, 0.5, 1) if scale]
    return {"bars": bars, "grid": grid, "width": WIDTH, "height": HEIGHT, "left": LEFT, "base": HEIGHT - BOTTOM}


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
    return list(
        Transfer.objects.filter(integration=integration, status=Status.FAILED)
        .order_by("-updated")
        .only("code", "reference", "source_ref", "connection_label", "reason", "updated")[:limit]
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
