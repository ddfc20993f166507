"""What the benchmarks share: production-like settings on a database of their own, made afresh."""

from __future__ import annotations

import os


def fresh_database(env: dict[str, str]) -> None:
    """Apply `env`, drop and create the database DATABASE_URL names, set Django up and migrate."""
    os.environ.update(env)
    import django
    import psycopg

    from iex.settings import DATABASES

    db = DATABASES["default"]
    with psycopg.connect(
        host=db["HOST"], port=db["PORT"] or 5432, user=db["USER"], dbname="postgres", autocommit=True
    ) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{db["NAME"]}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{db["NAME"]}"')
    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
