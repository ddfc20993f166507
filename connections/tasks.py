from celery import shared_task

from connections import pipeline


@shared_task(acks_late=True)
def process_transfer(transfer_id: int) -> None:
    pipeline.process(transfer_id)
