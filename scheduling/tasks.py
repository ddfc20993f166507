from celery import shared_task

from scheduling import runner


@shared_task
def dispatch_due_jobs() -> int:
    return runner.dispatch()


@shared_task
def run_job(job_id: int) -> None:
    runner.run(job_id)
