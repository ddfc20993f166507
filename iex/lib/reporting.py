"""What an error report (the DEBUG page, an error email) may show of a request that carries credentials: its view
marks its POST sensitive (`sensitive_post_parameters`), and then neither its POST nor any frame's variables are
shown, as the secrets pass through many frames below the view (forms, the module, the encryption). Also with DEBUG
on, where Django's own filter shows everything."""

from __future__ import annotations

from types import FrameType
from typing import Any

from django.http import HttpRequest
from django.views.debug import SafeExceptionReporterFilter


class SecretsFilter(SafeExceptionReporterFilter):
    def is_active(self, request: HttpRequest | None) -> bool:
        return (
            True  # with DEBUG on too (Django's own filter steps aside then): a developer's page shows no secrets
        )

    def get_traceback_frame_variables(self, request: HttpRequest | None, tb_frame: FrameType) -> Any:
        if request is not None and getattr(request, "sensitive_post_parameters", None):
            return [(name, self.cleansed_substitute) for name in tb_frame.f_locals]
        return super().get_traceback_frame_variables(request, tb_frame)
