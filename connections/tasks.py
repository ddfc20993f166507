"""The connections' background work. Other floors publish these by name (iex/lib/queueing.py); beat's jobs here are
also management commands (connections/management/commands/)."""

from celery import shared_task
from django.db import InterfaceError, OperationalError
from django.utils import timezone

from connections import intake, pipeline
from transferlog.models import Transfer

# Acknowledged after they ran, and put back if their worker process dies. When the database goes away (a restart,
# a failover) they run again shortly under the same task id (a transfer's claim lets its own task id back in),
# rather than leave a transfer running until the sweeper's lease runs out, or deliveries waiting for a sweep.
RELIABLE = {
    "acks_late": True,
    "reject_on_worker_lost": True,
    "autoretry_for": (InterfaceError, OperationalError),
    "retry_backoff": 2,
    "retry_backoff_max": 60,
    "max_retries": 20,
}


@shared_task(bind=True, **RELIABLE)
def process_transfer(self, transfer_id: int) -> None:
    pipeline.process(transfer_id, task_id=self.request.id)


@shared_task(**RELIABLE)
def drain_inbox(module_id: int) -> int:
    return intake.drain(module_id)


@shared_task
def sweep_inbox() -> int:
    return intake.sweep() + Transfer.sweep()


@shared_task
def purge_deliveries() -> int:
    return intake.purge_deliveries(timezone.now())


@shared_task
def release_let_in() -> int:
    return pipeline.release_let_in()
