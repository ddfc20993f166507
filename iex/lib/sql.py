"""UPDATE statements written once, for the hottest path: a transfer's state changes.

QuerySet.update() and save(update_fields=...) build their statement anew on every call (clone the query, resolve
the fields, compile it): about 0.3 ms of CPU each, and a transfer makes seven, around a tenth of all the CPU IEX
spends on it (measured with bench/transfers.py). `update` writes the same statement from the model's own table and
column names, its values prepared by their fields as the ORM prepares them, and sent as parameters.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.db import connection, models


@dataclass(frozen=True)
class Add:
    """A value computed by the database: the column plus n (a counter that concurrent updates add to)."""

    n: int


def update(model: type[models.Model], where: str, params: Sequence[Any], **values: Any) -> int:
    """UPDATE the model's table SET each field to its value WHERE `where` (column names and %s placeholders, filled
    from `params`); the number of rows changed."""
    quote = connection.ops.quote_name
    assignments, prepared = [], []
    for name, value in values.items():
        field = model._meta.get_field(name)
        assert isinstance(field, models.Field) and field.column
        column = quote(field.column)
        if isinstance(value, Add):
            assignments.append(f"{column} = {column} + %s")
            prepared.append(value.n)
        else:
            assignments.append(f"{column} = %s")
            prepared.append(field.get_db_prep_save(value, connection))
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {quote(model._meta.db_table)} SET {', '.join(assignments)} WHERE {where}",  # noqa: S608
            [*prepared, *params],
        )
        return cursor.rowcount
