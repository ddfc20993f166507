"""The clock: beat dispatches the due jobs every 30 s (also `manage.py run_due_jobs`), and each job runs as a task
of its own: fetch what changed in the source since the cursor and hand each record to the pipeline."""

from __future__ import annotations

import logging

from celery import shared_task
from django.utils import timezone

from connections import pipeline
from iex.lib import http, queueing
from iex.lib.logs import log_context
from iex.lib.secrets import DecryptionError
from scheduling.models import Job, RunOutcome

logger = logging.getLogger(__name__)

RUN_JOB = "scheduling.tasks.run_job"


@shared_task
def dispatch_due_jobs() -> int:
    return dispatch()


def dispatch() -> int:
    """Queue every due job; returns how many."""
    ids = Job.claim_due(timezone.now())
    for job_id in ids:
        queueing.publish(RUN_JOB, job_id)
    return len(ids)


@shared_task
def run_job(job_id: int) -> None:
    job = (
        Job.objects.select_related("connection__integration", "connection__source", "connection__target")
        .filter(pk=job_id)
        .first()
    )
    if job is None:
        return
    # Every line logged while it runs (the pipeline's too) says which integration it is about.
    with log_context(integration=job.connection.integration.number):
        run(job)


def run(job: Job) -> None:
    started = timezone.now()
    if not job.claim_run(started):
        return
    connection = job.connection
    if reason := connection.skip_reason():
        job.finish_run(RunOutcome.SKIPPED, reason)
        return
    if refused := connection.refused():  # asked nothing until it lets IEX in: the next run fetches what it missed
        job.finish_run(RunOutcome.SKIPPED, f"{refused.system.label} refused IEX: {refused.credentials_error}")
        return
    try:
        fetched, received = pipeline.sync(connection, job.since(started))
    except (http.HTTPError, DecryptionError) as exc:
        # The cursor stays: the next run fetches the same window again.
        message = exc.message if isinstance(exc, http.HTTPError) else "Stored credentials cannot be decrypted"
        if isinstance(exc, http.PermanentError) and exc.status in (401, 403):
            connection.source.credentials_refused(message)
        job.finish_run(RunOutcome.FAILED, message)
        return
    except Exception:
        logger.exception("job %s failed", job.pk)
        job.finish_run(RunOutcome.FAILED, "Internal error in IEX; our team has been notified")
        return
    # The cursor moves only after a successful run, to when this run started.
    job.finish_run(RunOutcome.OK, fetched=fetched, transfers=received, cursor=started)
