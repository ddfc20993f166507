"""GET /metrics: IEX's state in the Prometheus text format, read from the database at each scrape.

Gunicorn runs several web processes and the work happens in Celery workers, so counters kept in one process would
each see a part: every value here is a query (or, for what is never stored, a counter in the shared cache), made
when Prometheus asks, and each query is one index range scan (checked
with EXPLAIN on PostgreSQL with millions of transfers and deliveries), so a scrape costs the same whatever the
size of the log.

Staff (signed in) and addresses in METRICS_ALLOWED_NETWORKS may read it; anyone else gets 404, as if it did not
exist. Only REMOTE_ADDR counts, never X-Forwarded-For (anyone can send that): behind the load balancer REMOTE_ADDR
is the balancer, so its address must not be allowed, or the balancer must refuse /metrics from outside.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Count
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from connections import intake
from connections.models import Delivery
from iex.lib import outage
from scheduling.models import Job
from transferlog.models import OPEN, Status, Transfer

HOUR = timedelta(hours=1)
DAY = timedelta(hours=24)


def deliveries_last_hour(now: datetime) -> dict[str, int]:
    """Webhook deliveries received in the last hour, by status.

    Read as a range of the primary key: a delivery's received_at is set as it is stored and never changes, so ids
    grow with it, and the newest delivery older than an hour (found walking the key backwards) marks where the hour
    begins. received_at itself has an index only for waiting deliveries: filtering on it would read the whole table.
    """
    start = (
        Delivery.objects.filter(received_at__lt=now - HOUR).order_by("-pk").values_list("pk", flat=True).first()
    )
    rows = Delivery.objects.filter(pk__gt=start or 0, received_at__gte=now - HOUR)
    return dict(rows.order_by().values_list("status").annotate(n=Count("pk")))


def transfers_last_day(now: datetime) -> dict[str, int]:
    """Transfers received in the last 24 hours by their status now, read off the `created` index: a COUNT over the
    whole table would read millions of rows. transferlog's per-day counters can replace this window."""
    rows = Transfer.objects.filter(created__gte=now - DAY).order_by().values_list("status").annotate(n=Count("pk"))
    return dict(rows)


def open_transfers() -> dict[str, int]:
    """Pending and retrying transfers, however old: the small set the partial index `transfer_overdue` holds."""
    rows = Transfer.objects.filter(status__in=OPEN).order_by().values_list("status").annotate(n=Count("pk"))
    return dict(rows)


def seconds_since(now: datetime, then: datetime | None) -> float:
    return max(0.0, (now - then).total_seconds()) if then else 0.0


class DatabaseCollector(Collector):
    def collect(self) -> Iterator[Metric]:
        now = timezone.now()

        received = GaugeMetricFamily(
            "iex_webhook_deliveries_last_hour",
            "Webhook deliveries received in the last hour, by their status now",
            labels=["status"],
        )
        counts = deliveries_last_hour(now)
        for status in Delivery.Status.values:
            received.add_metric([status], counts.get(status, 0))
        yield received

        refusals = CounterMetricFamily(
            "iex_webhooks_refused",
            "Webhook posts refused before anything was stored (wrong address, over 1 MB, bad signature), by reason",
            labels=["reason"],
        )
        for reason, count in intake.refusal_counts().items():
            refusals.add_metric([reason], count)
        yield refusals
        if (away := outage.answered()) is not None:
            yield CounterMetricFamily(
                "iex_database_away_answers",
                "Requests answered 503 with Retry-After because the database was away (webhooks the shops send again)",
                away,
            )

        waiting = Delivery.objects.filter(status=Delivery.Status.RECEIVED)
        yield GaugeMetricFamily(
            "iex_webhook_deliveries_waiting", "Webhook deliveries stored but not processed yet", waiting.count()
        )
        oldest = waiting.order_by("received_at").values_list("received_at", flat=True).first()
        yield GaugeMetricFamily(
            "iex_webhook_oldest_waiting_seconds",
            "Seconds the oldest unprocessed webhook delivery has waited (0 when none waits)",
            seconds_since(now, oldest),
        )

        counts = transfers_last_day(now)
        recent = GaugeMetricFamily(
            "iex_transfers_last_24h",
            "Transfers received in the last 24 hours, by their status now",
            labels=["status"],
        )
        for status in Status.values:
            recent.add_metric([status], counts.get(status, 0))
        yield recent

        counts = open_transfers()
        queued = GaugeMetricFamily(
            "iex_transfers_open",
            "Transfers waiting to run (pending) or to run again (retrying)",
            labels=["status"],
        )
        for status in OPEN:
            queued.add_metric([status], counts.get(status, 0))
        yield queued

        due = (
            Transfer.objects.filter(status__in=OPEN, due_at__lte=now)
            .order_by("due_at")
            .values_list("due_at", flat=True)
            .first()
        )
        yield GaugeMetricFamily(
            "iex_transfers_oldest_due_seconds",
            "Seconds since the longest-waiting pending or retrying transfer was due (0 when none is due)",
            seconds_since(now, due),
        )

        yield GaugeMetricFamily(
            "iex_jobs_late", "Active jobs without a successful run within two of their periods", Job.count_late()
        )


registry = CollectorRegistry(auto_describe=False)  # nothing is read until a scrape
registry.register(DatabaseCollector())


def allowed(request: HttpRequest) -> bool:
    """Staff, or a request whose REMOTE_ADDR is in METRICS_ALLOWED_NETWORKS."""
    if request.user.is_authenticated and request.user.is_staff:
        return True
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped  # ::ffff:10.0.0.5 when gunicorn listens on an IPv6 socket
    return any(address in ipaddress.ip_network(network) for network in settings.METRICS_ALLOWED_NETWORKS)


# /metrics


@csrf_exempt  # it changes nothing; exempt, a POST from a stranger gets the same 404 as any other request
@never_cache
def metrics(request: HttpRequest) -> HttpResponse:
    if not allowed(request):
        raise Http404  # before anything else: a stranger learns nothing, not even the allowed methods
    if request.method not in ("GET", "HEAD"):
        return HttpResponseNotAllowed(["GET", "HEAD"])
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
