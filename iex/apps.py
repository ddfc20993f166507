from django.apps import AppConfig


class IexConfig(AppConfig):
    name = "iex"
    verbose_name = "IEX"
