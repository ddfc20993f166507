import os

from celery import Celery
from celery.signals import setup_logging

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "iex.settings")

app = Celery("iex")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


def _django_logging(**kwargs) -> None:
    from logging.config import dictConfig

    from django.conf import settings

    dictConfig(settings.LOGGING)


if os.environ.get("LOG_FORMAT", "").strip().lower() == "json":
    # Workers and beat log JSON lines through settings.LOGGING, as web does: Celery leaves logging alone when a
    # receiver handles this signal (otherwise it replaces the root logger's handlers with its own format).
    setup_logging.connect(_django_logging, weak=False)
