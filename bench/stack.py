"""The whole of IEX on this machine, in processes, as docker-compose.yml runs it: a PostgreSQL cluster and a Redis
of its own (so they can be restarted without touching anything else), gunicorn, Celery workers and one beat, the
sandbox (the shops' and the accounting system's side) and localstripe. `bench/system.py` puts load on it;
`tests/faults/` breaks it.

    with Stack(Path("var/stack"), workers=2) as stack:  # started, migrated, static files collected
        stack.python("bench.stack:whoami")             # run code in Django set up on the stack's database
        stack.services["redis"].restart()
        stack.cables["economic"].unplug()              # e-conomic unreachable; .plug() brings it back

The economic and stripe *cables* are TCP relays in front of the sandbox's e-conomic and localstripe: unplugged,
IEX's connections are refused and open ones are cut, while what those systems hold is kept.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PG_BIN = Path(
    next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"), reverse=True)), "/usr/bin/postgres")
).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(check: Callable[[], Any], timeout: float = 60, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if value := check():
                return value
        except Exception:  # noqa: S110 - not up yet
            pass
        time.sleep(0.2)
    raise TimeoutError(f"timed out waiting for {what}")


def answers(port: int, path: str = "/") -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as response:
            return response.status < 500
    except urllib.error.HTTPError as exc:
        return exc.code < 500
    except OSError:
        return False


def accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


class Service:
    """One process (and its children, in a process group of their own), its output appended to `log`."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        *,
        env: dict[str, str],
        log: Path,
        ready: Callable[[Service], bool],
        stop_signal: int = signal.SIGTERM,
        user: str | None = None,
    ) -> None:
        self.name, self.argv, self.env, self.log = name, argv, env, log
        self.ready, self.stop_signal, self.user = ready, stop_signal, user
        self.process: subprocess.Popen | None = None
        self.log_start = 0

    def start(self, timeout: float = 60) -> None:
        self.log_start = self.log.stat().st_size if self.log.exists() else 0
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(  # noqa: S603
                self.argv,
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                user=self.user,
            )
        deadline = time.monotonic() + timeout
        while not self._ready():
            if not self.running or time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not start:\n{self.output()[-3000:]}")
            time.sleep(0.2)

    def _ready(self) -> bool:
        try:
            return self.ready(self)
        except Exception:
            return False

    def output(self) -> str:
        """What it wrote since it was last started."""
        with self.log.open("rb") as f:
            f.seek(self.log_start)
            return f.read().decode(errors="replace")

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def signal(self, signum: int) -> None:
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signum)

    def stop(self, timeout: float = 30) -> None:
        if self.process is None:
            return
        if self.running:
            os.kill(self.process.pid, self.stop_signal)  # the main process: it stops its children its own way
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout)
        self.kill()  # anything it left behind

    def kill(self) -> None:
        """SIGKILL to the whole group: a host or container dying, with no chance to clean up."""
        self.signal(signal.SIGKILL)
        if self.process is not None:
            self.process.wait()

    def restart(self) -> None:
        self.stop()
        self.start()


class Cable:
    """A TCP relay from `port` to `target`; `unplug()` refuses new connections and cuts the open ones."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.port = free_port()
        self.listener: socket.socket | None = None
        self.open: set[socket.socket] = set()
        self.lock = threading.Lock()

    def plug(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(128)
        self.listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def unplug(self) -> None:
        with self.lock:
            if self.listener is not None:
                with contextlib.suppress(OSError):
                    self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() below; close() alone would not
                self.listener.close()
                self.listener = None
            for each in self.open:
                with contextlib.suppress(OSError):
                    each.shutdown(socket.SHUT_RDWR)
                each.close()
            self.open.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # unplugged
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target), timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self.lock:
                if self.listener is not listener:
                    client.close()
                    upstream.close()
                    return
                self.open |= {client, upstream}
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for each in (source, sink):
                with self.lock:
                    self.open.discard(each)
                with contextlib.suppress(OSError):
                    each.shutdown(socket.SHUT_RDWR)
                each.close()


class Stack:
    """Everything started in `directory` (made afresh), on free ports of 127.0.0.1; stopped on exit."""

    def __init__(
        self,
        directory: Path,
        *,
        workers: int = 2,
        concurrency: int = 4,
        web_workers: int = 3,
        sandbox_latency_ms: int = 0,
        settings: dict[str, str] | None = None,
    ) -> None:
        from cryptography.fernet import Fernet

        shutil.rmtree(directory, ignore_errors=True)
        (directory / "logs").mkdir(parents=True)
        self.dir = directory
        self.ports = {name: free_port() for name in ("postgres", "redis", "web", "sandbox", "stripe")}
        self.cables = {"economic": Cable(self.ports["sandbox"]), "stripe": Cable(self.ports["stripe"])}
        self.url = f"http://127.0.0.1:{self.ports['web']}"
        self.sandbox_url = f"http://127.0.0.1:{self.ports['sandbox']}"
        redis = f"redis://127.0.0.1:{self.ports['redis']}"
        self.database_url = f"postgres://postgres@127.0.0.1:{self.ports['postgres']}/iex"
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "IEX_"))},
            "DJANGO_SETTINGS_MODULE": "iex.settings",
            "DEBUG": "0",
            "SECRET_KEY": "stack-" + Fernet.generate_key().decode(),
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "SITE_URL": self.url,
            "SECURE_SSL_REDIRECT": "0",
            "SESSION_COOKIE_SECURE": "0",
            "CSRF_COOKIE_SECURE": "0",
            "SECURE_PROXY_SSL_HEADER": "0",
            "EMAIL_URL": "console://",
            "DATABASE_URL": self.database_url,
            "REDIS_URL": f"{redis}/1",
            "CELERY_BROKER_URL": f"{redis}/0",
            "CREDENTIALS_KEYS": Fernet.generate_key().decode(),
            "STRIPE_SECRET_KEY": "sk_test_stack",
            "STRIPE_WEBHOOK_SECRET": "whsec_stack",
            "STRIPE_API_BASE": f"http://127.0.0.1:{self.cables['stripe'].port}",
            "SANDBOX_URL": self.sandbox_url,
            "OUTBOUND_ALLOWED_NETWORKS": "127.0.0.0/8,::1/128",  # the sandbox and the cables are on loopback
            "IEX_VAR_DIR": str(directory / "var"),
            "LOG_LEVEL": "INFO",
            **(settings or {}),
        }
        self.services: dict[str, Service] = {}
        self._define(workers, concurrency, web_workers, sandbox_latency_ms)

    # --- the processes --------------------------------------------------------------------------------------

    def _define(self, workers: int, concurrency: int, web_workers: int, latency_ms: int) -> None:
        py, logs, env = sys.executable, self.dir / "logs", self.env
        # Outside `directory`, which may sit in a folder only root can enter (pytest's tmp_path).
        self.pg_data = pg_data = Path(tempfile.mkdtemp(prefix="iex-stack-postgres-"))
        root = os.geteuid() == 0
        self.pg_user = "postgres" if root else None  # PostgreSQL refuses to run as root

        def service(name: str, argv: list[str], ready: Callable[[Service], bool], **kwargs: Any) -> None:
            self.services[name] = Service(name, argv, env=env, log=logs / f"{name}.log", ready=ready, **kwargs)

        service(
            "postgres",
            [
                str(PG_BIN / "postgres"),
                "-D",
                str(pg_data),
                "-p",
                str(self.ports["postgres"]),
                "-k",
                str(pg_data),
                *["-c", "listen_addresses=127.0.0.1", "-c", "max_connections=200"],
            ],
            lambda s: self._pg_ready(),
            stop_signal=signal.SIGINT,  # a fast shutdown, as `pg_ctl restart` does
            user=self.pg_user,
        )
        service(
            "redis",
            [
                "redis-server",
                "--port",
                str(self.ports["redis"]),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.dir),
            ],
            lambda s: self._redis_ready(),
        )
        service(
            "sandbox",
            [py, "-m", "sandbox", "--port", str(self.ports["sandbox"]), "--latency-ms", str(latency_ms)],
            lambda s: answers(self.ports["sandbox"], "/_sandbox/state"),
        )
        service(
            "localstripe",
            [
                py,
                "bin/localstripe",
                "--port",
                str(self.ports["stripe"]),
                "--webhook-url",
                f"{self.url}/stripe/webhook/",
                "--webhook-secret",
                env["STRIPE_WEBHOOK_SECRET"],
            ],
            lambda s: accepts(self.ports["stripe"]),
        )
        # The production commands of docker-compose.yml, on loopback.
        service(
            "web",
            [
                py,
                *["-m", "gunicorn", "iex.wsgi:application", "--timeout", "30", "--log-level", "warning"],
                "--bind",
                f"127.0.0.1:{self.ports['web']}",
                "--workers",
                str(web_workers),
            ],
            lambda s: answers(self.ports["web"], "/healthz"),
        )
        for n in range(1, workers + 1):
            service(
                f"worker-{n}",
                [
                    py,
                    *["-m", "celery", "-A", "iex", "worker", "-Q", "intake,transfers,jobs", "--loglevel", "INFO"],
                    "-n",
                    f"worker{n}@%h",
                    "--concurrency",
                    str(concurrency),
                    "--without-gossip",
                    "--without-mingle",
                ],
                lambda s: "ready." in s.output(),
            )
        service(
            "beat",
            [
                py,
                *["-m", "celery", "-A", "iex", "beat", "--loglevel", "INFO"],
                "--schedule",
                str(self.dir / "celerybeat-schedule"),
            ],
            lambda s: "beat: Starting" in s.output(),
        )

    def _pg_ready(self) -> bool:
        import psycopg

        psycopg.connect(self.database_url.rsplit("/", 1)[0] + "/postgres", connect_timeout=2).close()
        return True

    def _redis_ready(self) -> bool:
        with socket.create_connection(("127.0.0.1", self.ports["redis"]), timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")

    @property
    def workers(self) -> list[Service]:
        return [each for name, each in self.services.items() if name.startswith("worker-")]

    def start(self) -> Stack:
        pg_data = self.pg_data
        if self.pg_user:
            shutil.chown(pg_data, self.pg_user)
        subprocess.run(  # noqa: S603
            [str(PG_BIN / "initdb"), "-D", str(pg_data), "-U", "postgres", "--auth=trust", "-E", "UTF8"],
            check=True,
            capture_output=True,
            user=self.pg_user,
        )
        for name in ("postgres", "redis"):
            self.services[name].start()
        import psycopg

        with psycopg.connect(self.database_url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as admin:
            admin.execute("CREATE DATABASE iex")
        for command in (["migrate", "--no-input"], ["collectstatic", "--no-input"]):
            subprocess.run(  # noqa: S603
                [sys.executable, "manage.py", *command], cwd=ROOT, env=self.env, check=True, capture_output=True
            )
        for cable in self.cables.values():
            cable.plug()
        for service in self.services.values():
            if not service.running:
                service.start()
        return self

    def stop(self) -> None:
        for cable in self.cables.values():
            cable.unplug()
        for service in reversed(list(self.services.values())):
            service.stop()
        shutil.rmtree(self.pg_data, ignore_errors=True)

    def __enter__(self) -> Stack:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- talking to it ---------------------------------------------------------------------------------------

    def python(self, target: str, *args: Any) -> Any:
        """Call `module:function(*args)` in a fresh process with Django set up on the stack's database; its
        JSON-able result."""
        code = (
            "import json, sys, django; django.setup(); import importlib; "
            "module, name = sys.argv[1].split(':'); "
            "result = getattr(importlib.import_module(module), name)(*json.loads(sys.argv[2])); "
            "print('\\n' + json.dumps(result, default=str))"
        )
        done = subprocess.run(  # noqa: S603
            [sys.executable, "-c", code, target, json.dumps(args)],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if done.returncode:
            raise RuntimeError(f"{target} failed:\n{done.stderr[-3000:]}")
        return json.loads(done.stdout.strip().splitlines()[-1])

    def use_database(self) -> None:
        """Set this process's Django up on the stack's database (a benchmark's own process, not a test's)."""
        os.environ.update(self.env)
        import django

        django.setup()
        importlib.import_module("django.db").connections.close_all()

    def sandbox(self, path: str, body: Any = None) -> Any:
        """The sandbox's control API: GET without a body, POST with one."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(  # noqa: S310
            f"{self.sandbox_url}/_sandbox/{path}", data=data, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            return json.loads(response.read())


# --- what runs on it: called in the stack's Django (Stack.python, or after Stack.use_database) ------------------

PASSWORD = "stack-owner-password"  # noqa: S105 - throwaway accounts on a throwaway database


def make_integrations(count: int, shop_base: str, books_base: str, plan: str = "enterprise") -> list[dict]:
    """`count` integrations, each a Shopify shop whose orders arrive by webhook (a secret of its own) and the
    sandbox's e-conomic; owner n is owner<n>@shops.test with PASSWORD. Returns what a shop needs to post."""
    from allauth.account.models import EmailAddress
    from django.contrib.auth.models import User

    from billing.models import Plan, Subscription
    from connections.models import Connection, Module
    from iex.models import Integration

    made = []
    for n in range(count):
        email = f"owner{n}@shops.test"
        user = User.objects.create_user(f"owner{n}", email, PASSWORD)
        EmailAddress.objects.create(user=user, email=email, verified=True, primary=True)
        integration = Integration.create_for(user, f"Shop {n}")
        subscription = Subscription.of(integration)
        subscription.plan = Plan.objects.get(code=plan)
        subscription.save(update_fields=["plan"])
        shop = Module(integration=integration, kind="shopify", base_url=f"{shop_base}/shopify")
        secret = f"shop-{n}-webhook-secret"
        shop.set_credentials(
            {"shop_domain": f"shop{n}.myshopify.com", "access_token": "shpat_sandbox", "webhook_secret": secret}
        )
        shop.save()
        books = Module(integration=integration, kind="economic", base_url=f"{books_base}/economic")
        books.set_credentials({"app_secret_token": "sandbox-app-secret", "agreement_grant_token": "sandbox-grant"})
        books.save()
        Connection.ensure_for(integration)
        integration.connections.filter(flow="orders").update(active=True, trigger="webhook")
        made.append(
            {
                "id": integration.pk,
                "number": integration.number,
                "url": integration.get_absolute_url(),
                "owner": email,
                "hook": f"/hooks/{shop.webhook_token}/",
                "secret": secret,
            }
        )
    return made
