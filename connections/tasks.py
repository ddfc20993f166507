from celery import shared_task

from connections import intake, pipeline


@shared_task(acks_late=True, reject_on_worker_lost=True, bind=True)
def process_transfer(self, transfer_id: int) -> None:
    # Acknowledged after it ran, and put back if its worker process dies: a killed worker's transfer runs again
    # (the same task id may take over its own claim; see Transfer.claim).
    pipeline.process(transfer_id, task_id=self.request.id)


@shared_task(acks_late=True, reject_on_worker_lost=True)
def drain_inbox(module_id: int) -> int:
    return intake.drain(module_id)


@shared_task
def sweep_inbox() -> int:
    return intake.sweep() + pipeline.sweep()
