from django.apps import AppConfig


class TransferlogConfig(AppConfig):
    name = "transferlog"
    verbose_name = "Transfer log"
