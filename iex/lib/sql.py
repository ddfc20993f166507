"""UPDATE and INSERT statements written once, for the hottest path: a transfer's state changes and its states.

QuerySet.update() and save(update_fields=...) build their statement anew on every call (clone the query, resolve
the fields, compile it): about 0.3 ms of CPU each, and a transfer makes seven, around a tenth of all the CPU IEX
spends on it (measured with bench/transfers.py). `update` writes the same statement from the model's own table and
column names, its values prepared by their fields as the ORM prepares them, and sent as parameters. `insert` does
the same for rows: on PostgreSQL bulk_create sends each column as one array, which psycopg quotes value by value
with a regular expression, a cost that grows with the JSON a state holds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any, TypeVar

from django.db import connection, models

M = TypeVar("M", bound=models.Model)


@dataclass(frozen=True)
class Add:
    """A value computed by the database: the column plus n (a counter that concurrent updates add to)."""

    n: int


def insert(model: type[models.Model], objects: Sequence[models.Model], *names: str) -> None:
    """INSERT the objects' fields `names` in one statement, a VALUES row each (their primary keys are not read
    back)."""
    if not objects:
        return
    quote = connection.ops.quote_name
    fields = [field for name in names if isinstance(field := model._meta.get_field(name), models.Field)]
    assert len(fields) == len(names)
    columns = ", ".join(quote(str(field.column)) for field in fields)
    row = f"({', '.join(['%s'] * len(fields))})"
    params = [
        field.get_db_prep_save(getattr(obj, field.attname), connection) for obj in objects for field in fields
    ]
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {quote(model._meta.db_table)} ({columns}) VALUES {', '.join([row] * len(objects))}",  # noqa: S608
            params,
        )


def update(model: type[models.Model], where: str, params: Sequence[Any], **values: Any) -> int:
    """UPDATE the model's table SET each field to its value WHERE `where` (column names and %s placeholders, filled
    from `params`); the number of rows changed."""
    statement, prepared = _update(model, where, params, values)
    with connection.cursor() as cursor:
        cursor.execute(statement, prepared)
        return cursor.rowcount


def update_returning(model: type[M], where: str, params: Sequence[Any], **values: Any) -> M | None:
    """`update` of one row, read back as the model instance it became (None when no row matched)."""
    statement, prepared = _update(model, where, params, values)
    with connection.cursor() as cursor:
        cursor.execute(f"{statement} RETURNING {columns(model, model._meta.db_table)}", prepared)
        row = cursor.fetchone()
    return None if row is None else instances(row, model)[0]


def columns(model: type[models.Model], alias: str) -> str:
    """The model's columns, as `instances` reads them: "alias"."column", ..."""
    quote = connection.ops.quote_name
    return ", ".join(f"{quote(alias)}.{quote(str(field.column))}" for field in model._meta.concrete_fields)


def instances(row: Sequence[Any], *kinds: type[models.Model]) -> list[Any]:
    """Model instances from a row of `columns(...)` of each model in turn, each value converted as the ORM converts
    it (JSON, times), or None for a model whose columns are all NULL (an outer join that found nothing)."""
    made: list[Any] = []
    start = 0
    for model in kinds:
        fields = model._meta.concrete_fields
        values = list(row[start : start + len(fields)])
        start += len(fields)
        if all(value is None for value in values):
            made.append(None)
            continue
        for i, field in enumerate(fields):
            for convert in _converters(field):
                values[i] = convert(values[i], field.cached_col, connection)
        made.append(model.from_db(connection.alias, [field.attname for field in fields], values))
    return made


@cache
def _converters(field: models.Field) -> list[Any]:
    col = field.cached_col
    return [*connection.ops.get_db_converters(col), *col.get_db_converters(connection)]


def _update(
    model: type[models.Model], where: str, params: Sequence[Any], values: dict[str, Any]
) -> tuple[str, list[Any]]:
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
    statement = f"UPDATE {quote(model._meta.db_table)} SET {', '.join(assignments)} WHERE {where}"  # noqa: S608
    return statement, [*prepared, *params]
