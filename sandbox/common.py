"""What both fake APIs and the control API share: request and response values, routing, money and time."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any
from urllib.parse import unquote

CENT = Decimal("0.01")


class BadRequest(Exception):
    """The request cannot be understood (e.g. its body is not JSON); each API words the answer its own way."""


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


class Refusal(Exception):
    """Stops handling a request early; `response` is the answer."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status)
        self.response = response


@dataclass
class Request:
    method: str
    path: str  # without the query string, still percent-encoded
    query_string: str
    query: dict[str, str]  # decoded; the last value wins
    headers: dict[str, str]  # names in lower case
    body: bytes = b""

    @property
    def origin(self) -> str:
        """scheme://host:port as the client addressed the sandbox (from the Host header)."""
        return f"http://{self.headers.get('host', 'localhost')}"

    def json(self) -> Any:
        """The decoded body; an empty body reads as {}."""
        if not self.body.strip():
            return {}
        try:
            return json.loads(self.body)
        except ValueError as exc:
            raise BadRequest(f"The body is not valid JSON: {exc}") from None


def json_response(status: int, payload: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(status, json.dumps(payload).encode(), {"Content-Type": "application/json", **(headers or {})})


Route = tuple[str, re.Pattern[str], Callable[..., Response]]


def html_page(status: int, title: str, body: str, lang: str = "en") -> Response:
    """A page of a system's own site (its login, its install or request-access page): `body` is the sandbox's own
    markup, the title escaped."""
    document = f"""<!doctype html>
<html lang="{lang}">
<head><meta charset="utf-8"><title>{html.escape(title)}</title></head>
<body>
{body}
</body>
</html>
"""
    return Response(status, document.encode(), {"Content-Type": "text/html; charset=utf-8"})


def route(method: str, pattern: str, view: Callable[..., Response]) -> Route:
    return method, re.compile(pattern), view


def dispatch(routes: list[Route], request: Request, *context: Any) -> Response | None:
    """Answer with the first route matching the request's method and whole path, or None when none does.

    The view is called as view(*context, request, *path groups), the groups percent-decoded; a `Refusal` it
    raises becomes the answer.
    """
    for method, pattern, view in routes:
        match = pattern.fullmatch(request.path)
        if match and method == request.method:
            try:
                return view(*context, request, *(unquote(group) for group in match.groups()))
            except Refusal as refusal:
                return refusal.response
    return None


def entries(value: Any, name: str, *required: str) -> list[dict[str, Any]]:
    """`value` checked to be a list of objects that each have the `required` keys; ValueError otherwise."""
    if not isinstance(value, list) or not all(isinstance(entry, dict) for entry in value):
        raise ValueError(f"{name} must be a list of objects")
    for entry in value:
        missing = [key for key in required if key not in entry]
        if missing:
            raise ValueError(f"{name} entries need {', '.join(missing)}")
    return value


def to_decimal(value: Any) -> Decimal:
    """A JSON number or numeric string as a Decimal; ValueError for anything else."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"{value!r} is not a number")
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"{value!r} is not a number") from None
    if not number.is_finite():
        raise ValueError(f"{value!r} is not a number")
    return number


def money(value: Decimal) -> Decimal:
    """Rounded half up to whole cents."""
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def now_iso() -> str:
    """The current time in UTC, to the second: 2025-01-31T12:00:00+00:00."""
    return datetime.now(UTC).replace(microsecond=0).isoformat()


def parse_time(text: str) -> datetime:
    """An ISO 8601 timestamp; one without an offset is taken as UTC. ValueError when it is not one."""
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def later_than(previous: str) -> str:
    """Now, or one second after `previous` if now is not strictly later (timestamps have whole seconds)."""
    earliest = parse_time(previous) + timedelta(seconds=1)
    return max(datetime.now(UTC).replace(microsecond=0), earliest).isoformat()
