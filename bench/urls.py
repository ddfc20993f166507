from django.db import connection
from django.http import HttpRequest, HttpResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from dashboard.urls import urlpatterns as iex_urlpatterns


@csrf_exempt
def bare(request: HttpRequest) -> HttpResponse:
    """The floor: Django's request cycle and nothing else."""
    request.body  # noqa: B018 - read the body like the intake does
    return HttpResponse("OK\n", content_type="text/plain")


def one_statement(sql: str) -> HttpResponse:
    # Without Django's health check (a SELECT 1 before a request's first query), as the intake does: one round trip.
    connection.health_check_done = True  # type: ignore[attr-defined]
    with connection.cursor() as cursor:
        cursor.execute(sql)
    return HttpResponse("OK\n", content_type="text/plain")


@csrf_exempt
def round_trip(request: HttpRequest) -> HttpResponse:
    """The bare view and one round trip to PostgreSQL (SELECT 1): what any view that asks the database pays."""
    request.body  # noqa: B018
    return one_statement("SELECT 1")


@csrf_exempt
def commit(request: HttpRequest) -> HttpResponse:
    """The bare view and one committed INSERT of an empty row: what any view that stores before it answers pays."""
    request.body  # noqa: B018
    return one_statement("INSERT INTO bench_floor DEFAULT VALUES")


FLOOR_TABLE = "CREATE TABLE IF NOT EXISTS bench_floor (id bigserial PRIMARY KEY)"

urlpatterns = [
    path("bench/bare/", bare),
    path("bench/round-trip/", round_trip),
    path("bench/commit/", commit),
    *iex_urlpatterns,
]
