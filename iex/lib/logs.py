"""Log lines that say which integration and transfer they are about, and JSON lines for production.

Code that knows its integration or transfer binds it once (`log_context(...)` around a unit of work, or
`bind_log_context(...)` inside a request), and every line logged meanwhile carries it: `ContextFilter` copies the
values onto each record and `JsonFormatter` writes them as fields. The values live in a context variable, so two
threads never see each other's, and `log_context_middleware` puts back what was bound before each request, so
nothing a request bound is left over for the next request its thread serves.

settings.LOGGING uses the formatter when LOG_FORMAT=json; plain text (the default) is unchanged.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from django.http import HttpRequest, HttpResponse

# What may be bound: the integration's number and the transfer's id.
FIELDS = ("integration", "transfer")

# Never mutated: binding sets a new mapping, so a context copied earlier (another request) keeps its own.
_context: ContextVar[Mapping[str, Any]] = ContextVar("iex_log_context", default=MappingProxyType({}))


def current() -> dict[str, Any]:
    """What is bound now."""
    return dict(_context.get())


def _with(values: dict[str, Any]) -> dict[str, Any]:
    if unknown := set(values) - set(FIELDS):
        raise ValueError(f"cannot bind {sorted(unknown)}; the fields are {FIELDS}")
    return {**_context.get(), **values}


def bind_log_context(**values: Any) -> None:
    """Bind values until the enclosing `log_context` block, or the request, ends."""
    _context.set(_with(values))


@contextmanager
def log_context(**values: Any) -> Iterator[None]:
    """Bind values for the block; whatever is bound inside it (bind_log_context too) ends with it."""
    token = _context.set(_with(values))
    try:
        yield
    finally:
        _context.reset(token)


class ContextFilter(logging.Filter):
    """Copies the bound values onto each record (a value passed in `extra=` wins). Put it on the handler, so records
    propagated from every logger get it."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in _context.get().items():
            if not hasattr(record, name):
                setattr(record, name, value)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, exception, integration, transfer."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in FIELDS:
            if (value := getattr(record, name, None)) is not None:
                line[name] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, default=str)


def log_context_middleware(get_response: Callable[[HttpRequest], HttpResponse]) -> Callable:
    """What a request's view binds (get_member binds the integration) is gone when it returns, though gunicorn
    serves the next request on the same thread. (Not by running the request in a copy of the context: what Django
    keeps in context variables, such as its cache connections, would then be made afresh for every request.)"""

    def middleware(request: HttpRequest) -> HttpResponse:
        with log_context():
            return get_response(request)

    return middleware
