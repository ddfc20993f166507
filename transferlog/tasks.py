from celery import shared_task
from django.utils import timezone

from connections.intake import purge_deliveries
from connections.pipeline import enqueue
from transferlog.models import Transfer, purge


@shared_task
def retry_transfers(transfer_ids: list[int], by: str) -> int:
    """Queue failed transfers again (the Log's "retry all failed"); returns how many were still failed."""
    queued = 0
    for transfer in Transfer.objects.filter(pk__in=transfer_ids):
        if transfer.retry(by=by):
            enqueue(transfer)
            queued += 1
    return queued


@shared_task
def purge_transfers() -> int:
    now = timezone.now()
    return purge(now) + purge_deliveries(now)
