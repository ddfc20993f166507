"""While the database is away a request is answered 503 with Retry-After, not a 500: senders (shops posting
webhooks, Stripe, browsers) know to come back. Logged as one line a second at most, not a traceback per request,
and counted in the shared cache for /metrics."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from django.core.cache import cache
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse

logger = logging.getLogger(__name__)

COUNTER = "iex:http:database_away"
RETRY_AFTER = "5"
_lock = threading.Lock()
_told = {"at": 0.0, "since": 0}  # when this process last logged it, and how many answers since


class DatabaseAway:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exc: Exception) -> HttpResponse | None:
        if not isinstance(exc, (OperationalError, InterfaceError)):
            return None
        try:
            if not cache.add(COUNTER, 1, timeout=None):
                cache.incr(COUNTER)
        except Exception:  # noqa: S110 - the cache may be away too: the answer matters more than the count
            pass
        with _lock:
            _told["since"] += 1
            now = time.monotonic()
            if now - _told["at"] >= 1.0:
                logger.error("the database is away (%s): %d requests answered 503", exc, _told["since"])
                _told["at"], _told["since"] = now, 0
        return HttpResponse(
            "The database is away for a moment: try again shortly\n",
            status=503,
            content_type="text/plain",
            headers={"Retry-After": RETRY_AFTER},
        )


def answered() -> int | None:
    """Requests answered 503 because the database was away, since the cache began (None: the cache is away)."""
    try:
        return int(cache.get(COUNTER) or 0)
    except Exception:
        return None
