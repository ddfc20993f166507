"""The Log's background work; beat's purge is also `manage.py purge_transfers`."""

from celery import shared_task
from django.utils import timezone

from transferlog.models import Transfer, purge


@shared_task
def retry_transfers(transfer_ids: list[int], by: str) -> int:
    """Queue failed transfers again (the Log's "retry all failed"); returns how many were still failed."""
    return sum(transfer.retry(by=by) for transfer in Transfer.objects.filter(pk__in=transfer_ids))


@shared_task
def purge_transfers() -> int:
    return purge(timezone.now())
