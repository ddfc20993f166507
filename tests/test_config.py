"""settings.py: development needs nothing set; production values pass `check --deploy`;
bad values stop start-up naming the variable."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parent.parent

PRODUCTION = {
    "DEBUG": "0",
    "SECRET_KEY": "p" * 10 + "roduction-secret-key-with-enough-length-and-variety-0123456789",
    "ALLOWED_HOSTS": "app.iex.example",
    "SITE_URL": "https://app.iex.example",
    "DATABASE_URL": "postgres://iex:secret@db:5432/iex",
    "CELERY_BROKER_URL": "redis://redis:6379/0",
    "REDIS_URL": "redis://redis:6379/1",
    "EMAIL_URL": "smtp+tls://mailer:pw@smtp.example:587",
    "CREDENTIALS_KEYS": Fernet.generate_key().decode(),
    "STRIPE_SECRET_KEY": "sk_live_x",
    "STRIPE_WEBHOOK_SECRET": "whsec_x",
}


def manage(tmp_path, env: dict, *args: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO", "DATABASE", "REDIS", "CELERY"))}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**clean, "IEX_VAR_DIR": str(tmp_path), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_production_values_pass_check_deploy(tmp_path):
    result = manage(tmp_path, PRODUCTION, "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


def test_nothing_set_is_a_working_development_setup(tmp_path):
    result = manage(tmp_path, {}, "check")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "credentials.key").exists()  # a development key of its own, not derived from SECRET_KEY


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("DEBUG", "maybe", "DEBUG must be one of"),
        ("SECRET_KEY", "", "SECRET_KEY must be set"),
        ("SECRET_KEY", "short", "SECRET_KEY must be at least 50 random characters"),
        ("DATABASE_URL", "", "DATABASE_URL must be set"),
        ("CELERY_BROKER_URL", "", "CELERY_BROKER_URL must be set"),
        ("REDIS_URL", "", "REDIS_URL must be set"),
        ("EMAIL_URL", "", "EMAIL_URL must be set"),
        ("SITE_URL", "", "SITE_URL must be set"),
        ("ALLOWED_HOSTS", "", "ALLOWED_HOSTS must list"),
        ("DATABASE_URL", "mysql://db/iex", "DATABASE_URL must start with"),
        ("DATABASE_URL", "postgres://db:port/iex", "DATABASE_URL has a malformed port"),
        ("CELERY_BROKER_URL", "amqp://rabbit", "CELERY_BROKER_URL must start with"),
        ("REDIS_URL", "localhost:6379", "REDIS_URL must start with"),
        ("EMAIL_URL", "smtp://", "EMAIL_URL needs a host"),
        ("CREDENTIALS_KEYS", "not-a-key", "CREDENTIALS_KEYS must be comma-separated Fernet keys"),
        ("CREDENTIALS_KEYS", "", "CREDENTIALS_KEYS must be set"),
        ("SECURE_HSTS_SECONDS", "a year", "SECURE_HSTS_SECONDS must be a whole number"),
        ("SITE_URL", "app.iex.example", "SITE_URL must be an http(s) address"),
    ],
)
def test_bad_value_stops_start_up_naming_the_variable(tmp_path, variable, value, message):
    result = manage(tmp_path, {**PRODUCTION, variable: value}, "check")
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert message in result.stderr


def test_database_url_parsing():
    from iex.settings import parse_database_url

    pg = parse_database_url("DATABASE_URL", "postgres://u%40x:p%2Fw@db.example:6432/iex?sslmode=require")
    assert (pg["ENGINE"], pg["NAME"], pg["USER"], pg["PASSWORD"], pg["HOST"], pg["PORT"]) == (
        "django.db.backends.postgresql",
        "iex",
        "u@x",
        "p/w",
        "db.example",
        "6432",
    )
    assert pg["OPTIONS"] == {"sslmode": "require"}
    lite = parse_database_url("DATABASE_URL", "sqlite:////tmp/x.sqlite3")
    assert str(lite["NAME"]) == "/tmp/x.sqlite3"


def test_email_url_parsing():
    from iex.settings import parse_email_url

    tls = parse_email_url("EMAIL_URL", "smtp+tls://me:secret@smtp.example")
    assert (tls["EMAIL_HOST"], tls["EMAIL_PORT"], tls["EMAIL_USE_TLS"], tls["EMAIL_HOST_PASSWORD"]) == (
        "smtp.example",
        587,
        True,
        "secret",
    )
    assert parse_email_url("EMAIL_URL", "smtps://smtp.example")["EMAIL_USE_SSL"] is True


def test_production_workers_keep_work_and_share_it_fairly(tmp_path):
    """On Redis: transfers' lanes, a worker fetching only when a process is free, and acks_late tasks stopped when
    the broker connection drops (Redis gives their messages to another worker, which must not run them alongside)."""
    code = (
        "from iex.celery import app; c = app.conf; "
        "print(c.worker_disable_prefetch, c.worker_cancel_long_running_tasks_on_connection_loss, "
        "c.broker_transport_options['priority_steps'], c.broker_transport_options['visibility_timeout'])"
    )
    result = manage(tmp_path, PRODUCTION, "shell", "-c", code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "True True [0, 3, 6, 9] 14400"
