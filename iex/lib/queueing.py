"""The one way to queue work: a task is published by its registered name, after commit, in a lane.

Tasks are named as settings' task routes and beat schedule name them (`connections.tasks.process_transfer`), so any
floor can start work in another without importing it: the Transfer below billing queues the pipeline above it, and
nothing imports a tasks module to reach a task object.

Work is stored before it is queued (a transfer, a delivery, a job's next run), and a sweeper finds what waits too
long: publishing never fails the request or job that stored the work. If the broker is down it logs and returns
False, and the sweeper queues the work again later.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from iex.celery import app

logger = logging.getLogger(__name__)


def publish(name: str, *args: Any, countdown: float = 0, priority: int = 0) -> bool:
    """Send the task `name` with `args` now; False (logged) when the broker cannot take it."""
    try:
        _task(name).apply_async(args, countdown=countdown or None, priority=priority, retry=False)
    except Exception as exc:
        logger.warning("broker unavailable (%s); %s%s is left to the sweeper", exc, name, args)
        return False
    return True


def publish_on_commit(name: str, *args: Any, countdown: float = 0, integration_id: int | None = None) -> None:
    """`publish` once the current transaction commits (at once outside one); nothing if it rolls back.
    `integration_id`: whose fair share of the workers this counts against, in the lane decided at commit (`lane`:
    no cache round trip while the transaction holds its row locks)."""

    def send() -> None:
        priority = lane(integration_id) if integration_id is not None else 0
        publish(name, *args, countdown=countdown, priority=priority)

    transaction.on_commit(send)


def _task(name: str) -> Any:
    """The registered task. A process that has not imported every app's tasks module yet (a web process) imports
    them as a worker does at start: Celery's autodiscovery of the installed apps."""
    try:
        return app.tasks[name]
    except KeyError:
        app.loader.import_default_modules()
        return app.tasks[name]


# Fair shares of the workers: the more transfers an integration queued this minute, the lower the lane its next
# ones wait in, and workers take the highest lane first (Redis priorities: 0 first). So one merchant's Black Friday
# waits behind everyone else's ordinary orders instead of in front of them, and still has every worker nobody
# else needs. (transfers this minute, up to, -> lane); above the last: LOWEST_LANE.
LANES = ((20, 0), (200, 3), (2000, 6))
LOWEST_LANE = 9


def lane_of(count: int) -> int:
    """The lane of an integration's count-th transfer in a minute."""
    return next((priority for most, priority in LANES if count <= most), LOWEST_LANE)


def lane(integration_id: int) -> int:
    """Count one more transfer queued by the integration this minute, and say which lane it goes in. Only Redis
    has lanes (the filesystem broker of the embedded defaults takes messages in order)."""
    if not settings.CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
        return 0
    key = f"transfers-queued:{integration_id}:{int(timezone.now().timestamp() // 60)}"
    try:
        cache.add(key, 0, timeout=120)
        count = cache.incr(key)
    except Exception as exc:  # the cache is Redis: when it is down, so is the broker, and the sweeper takes over
        logger.warning("cannot count queued transfers (%s)", exc)
        return 0
    return lane_of(count)
