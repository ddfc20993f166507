"""Deleting many rows without holding the database: bounded batches, short transactions, a rest after each.

Retention (transfers, webhook deliveries) deletes millions of rows a day beside webhook intake and the pipeline,
whose statements must not queue behind it.
"""

from __future__ import annotations

import time
from typing import Any

from django.db import connection, models, transaction

# A purge takes at most this share of the time it runs: after a batch that took t seconds it rests
# t * (1 - SHARE) / SHARE, so webhook intake and the pipeline keep the database whatever the batch cost. Measured
# by bench/log.py on two cores: at 0.25 intake p95 rose 1.28x while the purge ran, at 0.15 1.12x.
PURGE_SHARE = 0.15


def delete_in_batches(
    candidates: models.QuerySet[Any],
    *,
    by: str,
    cascade: tuple[tuple[str, str], ...] = (),
    batch: int = 1000,
    pause: float = 0.05,
    share: float = PURGE_SHARE,
) -> int:
    """Delete the candidates oldest `by` first, `batch` rows a transaction, resting after each batch so that it takes
    `share` of the time. `cascade`: (table, column) of the rows referring to them, deleted first. Returns how many."""
    model = candidates.model
    deleted = 0
    remaining = candidates
    while True:
        started = time.perf_counter()
        rows = list(remaining.order_by(by, "pk").values_list("pk", by)[:batch])
        if not rows:
            return deleted
        ids = [pk for pk, _ in rows]
        # The next batch starts where this one ended, not at the index entries of the rows deleted so far.
        remaining = candidates.filter(**{f"{by}__gte": rows[-1][1]})
        with transaction.atomic(), connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                # A batch lost in a crash is deleted the next day: its commit need not wait for the disk, and
                # intake's commits, which must, do not queue behind it.
                cursor.execute("SET LOCAL synchronous_commit TO OFF")
            # Plain statements: the ORM's delete would load every row (and its data) to cascade.
            placeholders = ", ".join(["%s"] * len(ids))
            for table, column in (*cascade, (model._meta.db_table, "id")):
                cursor.execute(f"DELETE FROM {table} WHERE {column} IN ({placeholders})", ids)  # noqa: S608
            deleted += cursor.rowcount
        # The rest counts the batch's whole cost, finding its rows included.
        time.sleep(max(pause, (time.perf_counter() - started) * (1 - share) / share))
