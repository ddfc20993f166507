from celery import shared_task

from dashboard import notifications


@shared_task
def send_error_digests() -> int:
    return notifications.send_error_digests()


@shared_task
def send_status_reports() -> int:
    return notifications.send_status_reports()
