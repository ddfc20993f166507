"""Running one job: fetch what changed since the cursor and hand each record to the pipeline."""

from __future__ import annotations

import logging

from django.utils import timezone

from connections import pipeline
from iex.lib import http
from iex.lib.logs import log_context
from iex.lib.secrets import DecryptionError
from scheduling.models import OVERLAP, Job, Outcome

logger = logging.getLogger(__name__)


def run(job_id: int) -> None:
    job = (
        Job.objects.select_related("connection__integration", "connection__source", "connection__target")
        .filter(pk=job_id)
        .first()
    )
    if job is None:
        return
    # Every line logged while it runs (the pipeline's too) says which integration it is about.
    with log_context(integration=job.connection.integration.number):
        _run(job)


def _run(job: Job) -> None:
    started = timezone.now()
    if not job.claim_run(started):
        return
    connection = job.connection
    if reason := connection.skip_reason():
        job.finish_run(Outcome.SKIPPED, reason)
        return
    since = (job.cursor or started) - OVERLAP
    try:
        counts = pipeline.sync(connection, since)
    except (http.HTTPError, DecryptionError) as exc:
        # The cursor stays: the next run fetches the same window again.
        message = exc.message if isinstance(exc, http.HTTPError) else "Stored credentials cannot be decrypted"
        if isinstance(exc, http.PermanentError) and exc.status in (401, 403):
            connection.source.credentials_refused(message)
        job.finish_run(Outcome.FAILED, message)
        return
    except Exception:
        logger.exception("job %s failed", job.pk)
        job.finish_run(Outcome.FAILED, "Internal error in IEX; our team has been notified")
        return
    # The cursor moves only after a successful run, to when this run started.
    job.finish_run(Outcome.OK, fetched=counts["fetched"], received=counts["received"], cursor=started)


def dispatch() -> int:
    """Enqueue every due job; returns how many."""
    from scheduling.tasks import run_job

    ids = Job.claim_due(timezone.now())
    for job_id in ids:
        run_job.delay(job_id)
    return len(ids)
