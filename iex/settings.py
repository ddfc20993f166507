"""IEX settings: one file, driven by environment variables.

Development needs nothing set: DEBUG is on, the database is SQLite under var/, the Celery broker is kombu's
filesystem transport under var/, the cache is a file cache under var/ (shared by web, worker and beat).
Production sets DEBUG=0 and the values the README lists; a missing or malformed value stops start-up with
ImproperlyConfigured naming the variable.
"""

import ipaddress
import operator
import os
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

TRUE = {"1", "true", "yes", "on"}
FALSE = {"0", "false", "no", "off", ""}


def env(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    if value.strip().lower() in TRUE:
        return True
    if value.strip().lower() in FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be one of 1/0, true/false, yes/no, on/off; got {value!r}")


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number; got {value!r}") from None


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in env(name, default).split(",") if item.strip()]


def parse_database_url(name: str, url: str) -> dict:
    """sqlite:///relative/or//absolute/path or postgres://user:password@host:port/dbname?option=value."""
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        path = parts.path[1:] if parts.path.startswith("/") else parts.path
        if not path:
            raise ImproperlyConfigured(f"{name} needs a file path, e.g. sqlite:///var/db.sqlite3; got {url!r}")
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": BASE_DIR / path if not Path(path).is_absolute() else Path(path),
            # Web, worker and beat write to the file at once: take the write lock when a transaction starts and
            # wait for it (instead of failing "database is locked"), and let readers go on while one writes.
            "OPTIONS": {
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
        }
    if parts.scheme in {"postgres", "postgresql", "pgsql"}:
        if not parts.path.strip("/"):
            raise ImproperlyConfigured(f"{name} needs a database name, e.g. postgres://host/iex; got {url!r}")
        try:
            port = parts.port
        except ValueError:
            raise ImproperlyConfigured(f"{name} has a malformed port; got {url!r}") from None
        options = {key: values[-1] for key, values in parse_qs(parts.query).items()}
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": unquote(parts.path.strip("/")),
            "USER": unquote(parts.username or ""),
            "PASSWORD": unquote(parts.password or ""),
            "HOST": parts.hostname or "",
            "PORT": str(port or ""),
            "OPTIONS": options,
            "CONN_MAX_AGE": env_int("DATABASE_CONN_MAX_AGE", 60),
            "CONN_HEALTH_CHECKS": True,
        }
    raise ImproperlyConfigured(f"{name} must start with sqlite:// or postgres://; got {url!r}")


def parse_email_url(name: str, url: str) -> dict:
    """console:// | smtp://user:password@host:port | smtp+tls:// (STARTTLS) | smtps:// (implicit TLS)."""
    parts = urlsplit(url)
    if parts.scheme == "console":
        return {"EMAIL_BACKEND": "django.core.mail.backends.console.EmailBackend"}
    if parts.scheme in {"smtp", "smtp+tls", "smtps"}:
        if not parts.hostname:
            raise ImproperlyConfigured(f"{name} needs a host, e.g. smtp+tls://user:pass@mail.example.com:587")
        return {
            "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "EMAIL_HOST": parts.hostname,
            "EMAIL_PORT": parts.port or {"smtp": 25, "smtp+tls": 587, "smtps": 465}[parts.scheme],
            "EMAIL_HOST_USER": unquote(parts.username or ""),
            "EMAIL_HOST_PASSWORD": unquote(parts.password or ""),
            "EMAIL_USE_TLS": parts.scheme == "smtp+tls",
            "EMAIL_USE_SSL": parts.scheme == "smtps",
        }
    raise ImproperlyConfigured(f"{name} must start with console://, smtp://, smtp+tls:// or smtps://; got {url!r}")


def parse_fernet_keys(name: str, value: str) -> list[str]:
    keys = [key.strip() for key in value.split(",") if key.strip()]
    for key in keys:
        try:
            Fernet(key)
        except ValueError:
            raise ImproperlyConfigured(
                f"{name} must be comma-separated Fernet keys (newest first); one is malformed. "
                "Make one with: python -c 'from cryptography.fernet import Fernet; "
                "print(Fernet.generate_key().decode())'"
            ) from None
    return keys


# --- Core ---------------------------------------------------------------------------------------------------

DEBUG = env_bool("DEBUG", True)
VAR_DIR = Path(env("IEX_VAR_DIR", str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)


def env_required(name: str, development_default: str) -> str:
    """A value production must set explicitly; development gets a safe local default."""
    value = env(name)
    if value:
        return value
    if not DEBUG:
        raise ImproperlyConfigured(f"{name} must be set when DEBUG is off")
    return development_default


SECRET_KEY = env_required("SECRET_KEY", "django-insecure-development-only-key-never-used-with-debug-off")
if not DEBUG and (len(SECRET_KEY) < 50 or len(set(SECRET_KEY)) < 5):
    raise ImproperlyConfigured("SECRET_KEY must be at least 50 random characters when DEBUG is off")

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost" if DEBUG else "")
if not DEBUG and not ALLOWED_HOSTS:
    raise ImproperlyConfigured("ALLOWED_HOSTS must list the site's host names when DEBUG is off")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

# The public address of the site, used in links inside emails and in webhook URLs shown to merchants.
SITE_URL = env_required("SITE_URL", "http://127.0.0.1:8000").rstrip("/")
if urlsplit(SITE_URL).scheme not in {"http", "https"}:
    raise ImproperlyConfigured(f"SITE_URL must be an http(s) address; got {SITE_URL!r}")

# The floors from the ground up (README "Architecture"): each app imports only those listed before it.
INSTALLED_APPS = [
    "iex",
    "transferlog",
    "billing",
    "connections",
    "scheduling",
    "dashboard",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "allauth",
    "allauth.account",
    "django_htmx",
]

MIDDLEWARE = [
    "iex.lib.logs.log_context_middleware",  # first: what a request binds for its log lines ends with it
    "django.middleware.security.SecurityMiddleware",
    "iex.lib.headers.SecurityHeaders",  # CSP on every answer, no-store on what a signed-in user sees
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "iex.lib.outage.DatabaseAway",  # last: it turns a view's lost database into a 503 with Retry-After
]

ROOT_URLCONF = "dashboard.urls"
DEFAULT_EXCEPTION_REPORTER_FILTER = "iex.lib.reporting.SecretsFilter"  # no credentials on an error page or email
WSGI_APPLICATION = "iex.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "iex.context_processors.tenant",
            ],
        },
    },
]

DATABASES = {
    "default": parse_database_url("DATABASE_URL", env_required("DATABASE_URL", "sqlite:///var/db.sqlite3"))
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Production needs a cache every web process shares (allauth's rate limits count in it): Redis.
REDIS_URL = env_required("REDIS_URL", "")
if REDIS_URL:
    if urlsplit(REDIS_URL).scheme not in {"redis", "rediss", "unix"}:
        raise ImproperlyConfigured(f"REDIS_URL must start with redis://, rediss:// or unix://; got {REDIS_URL!r}")
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    # A file cache is shared by every process on the machine, so allauth's rate limits hold under `make run`.
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(VAR_DIR / "cache"),
        }
    }

# --- Accounts (django-allauth) ------------------------------------------------------------------------------

AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "index"
ACCOUNT_LOGOUT_REDIRECT_URL = "account_login"
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_EMAIL_VERIFICATION = "mandatory"
ACCOUNT_LOGIN_ON_EMAIL_CONFIRMATION = True
ACCOUNT_LOGIN_ON_PASSWORD_RESET = False
ACCOUNT_EMAIL_SUBJECT_PREFIX = "IEX: "
ACCOUNT_ADAPTER = "iex.accounts.AccountAdapter"
# The proxies in front of the web processes that append the client's address to X-Forwarded-For (the load balancer:
# 1). The client address (login limits) is taken that many entries from its end; 0 trusts no header at all.
ALLAUTH_TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 0)
ACCOUNT_PREVENT_ENUMERATION = True  # sign-up and password reset answer alike for an address with an account
ACCOUNT_USER_DISPLAY = operator.attrgetter("email")
ACCOUNT_DEFAULT_HTTP_PROTOCOL = urlsplit(SITE_URL).scheme
# allauth's rate limits are on by default (10 failed logins a minute per IP, 5 per 5 minutes per address);
# they count in the cache above, which every process shares.

# --- Email --------------------------------------------------------------------------------------------------

_email = parse_email_url("EMAIL_URL", env_required("EMAIL_URL", "console://"))
EMAIL_BACKEND = _email["EMAIL_BACKEND"]
EMAIL_HOST = _email.get("EMAIL_HOST", "localhost")
EMAIL_PORT = _email.get("EMAIL_PORT", 25)
EMAIL_HOST_USER = _email.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = _email.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = _email.get("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = _email.get("EMAIL_USE_SSL", False)
EMAIL_TIMEOUT = 10
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", "IEX <noreply@iex.local>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

# --- Third-party credentials --------------------------------------------------------------------------------

# Fernet keys for the credentials merchants give us (shops, accounting systems), newest first: data is
# encrypted with the first and decrypted with any, so a key is rotated by prepending a new one.
_credentials_keys = env("CREDENTIALS_KEYS")
if not _credentials_keys:
    if not DEBUG:
        raise ImproperlyConfigured("CREDENTIALS_KEYS must be set when DEBUG is off")
    _key_file = VAR_DIR / "credentials.key"
    if not _key_file.exists():
        _key_file.write_text(Fernet.generate_key().decode())
        _key_file.chmod(0o600)
    _credentials_keys = _key_file.read_text()
CREDENTIALS_KEYS = parse_fernet_keys("CREDENTIALS_KEYS", _credentials_keys)

# IEX's app registration with Visma Connect, through which merchants' Dinero API keys are used. Development uses
# the sandbox's.
DINERO_CLIENT_ID = env("DINERO_CLIENT_ID", "iex-sandbox" if DEBUG else "")
DINERO_CLIENT_SECRET = env("DINERO_CLIENT_SECRET", "iex-sandbox-secret" if DEBUG else "")
# IEX's Shopify app (its client id and secret), through which a merchant installs IEX in their shop; without it they
# connect a custom app of their own by its token. Development uses the sandbox's.
SHOPIFY_CLIENT_ID = env("SHOPIFY_CLIENT_ID", "iex-sandbox" if DEBUG else "")
SHOPIFY_CLIENT_SECRET = env("SHOPIFY_CLIENT_SECRET", "shpss_sandbox" if DEBUG else "")
# IEX's e-conomic app: merchants add it to their agreement on e-conomic's page (its public token) and IEX sends its
# secret token with their agreement grant token. Without them, merchants paste the tokens of an app of their own.
ECONOMIC_APP_PUBLIC_TOKEN = env("ECONOMIC_APP_PUBLIC_TOKEN", "sandbox-app-public" if DEBUG else "")
ECONOMIC_APP_SECRET_TOKEN = env("ECONOMIC_APP_SECRET_TOKEN", "sandbox-app-secret" if DEBUG else "")

# --- Outbound calls -----------------------------------------------------------------------------------------

# IEX calls the systems' addresses that merchants enter. It refuses addresses on loopback, private, link-local,
# multicast and reserved networks (our own services, the cloud's metadata endpoint) except these networks: none in
# production; with the embedded defaults the sandbox's loopback. A self-hosted shop on a private network: list it.
OUTBOUND_ALLOWED_NETWORKS = env_list("OUTBOUND_ALLOWED_NETWORKS", "127.0.0.0/8,::1/128" if DEBUG else "")
for _network in OUTBOUND_ALLOWED_NETWORKS:
    try:
        ipaddress.ip_network(_network)
    except ValueError:
        raise ImproperlyConfigured(
            f"OUTBOUND_ALLOWED_NETWORKS must be comma-separated networks like 10.1.2.0/24; got {_network!r}"
        ) from None
# Whether merchants may point a hosted system (Shopify, e-conomic, Dinero) at another API address: the sandbox's.
API_ADDRESSES = env_bool("API_ADDRESSES", DEBUG)

# --- Sandbox ------------------------------------------------------------------------------------------------

# The local stand-in for Shopify and e-conomic that `make run` starts; seed_demo points the demo modules at it.
SANDBOX_URL = env("SANDBOX_URL", "http://127.0.0.1:8900").rstrip("/")

# --- Stripe -------------------------------------------------------------------------------------------------

STRIPE_SECRET_KEY = env_required("STRIPE_SECRET_KEY", "sk_test_localstripe")
STRIPE_WEBHOOK_SECRET = env_required("STRIPE_WEBHOOK_SECRET", "whsec_localstripe")
# Empty means Stripe itself; development points it at localstripe.
STRIPE_API_BASE = env("STRIPE_API_BASE", "http://127.0.0.1:8420" if DEBUG else "")

# --- Celery -------------------------------------------------------------------------------------------------

CELERY_BROKER_URL = env_required("CELERY_BROKER_URL", "filesystem://")
if urlsplit(CELERY_BROKER_URL).scheme not in {"filesystem", "redis", "rediss"}:
    raise ImproperlyConfigured(
        f"CELERY_BROKER_URL must start with redis://, rediss:// or filesystem://; got {CELERY_BROKER_URL!r}"
    )
CELERY_BROKER_TRANSPORT_OPTIONS: dict = {}
if CELERY_BROKER_URL.startswith("filesystem://"):
    _broker_dir = VAR_DIR / "broker"
    (_broker_dir / "processed").mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir),
        "data_folder_out": str(_broker_dir),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
if CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
    # An unacknowledged message (acks_late tasks) is redelivered after this long; it must be well above the
    # longest task and above any countdown we use (retries back off up to an hour), or work runs twice.
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 4 * 3600),
        # Publishing gives up fast when Redis is down (the row is stored; the sweeper enqueues it later):
        # a shop's webhook must still be answered within its 5 seconds.
        "max_retries": 1,
        "interval_start": 0,
        "interval_step": 0.2,
        "interval_max": 0.2,
        # Lanes of a queue (the pipeline's fair shares; kombu's default, written out): priority 0 is taken first.
        "priority_steps": [0, 3, 6, 9],
    }
    # A worker takes a message only when one of its processes is free, so the lane it takes from is decided at that
    # moment; without it, early-acknowledged tasks (jobs) are prefetched ahead. (Countdowns do not count.)
    CELERY_WORKER_DISABLE_PREFETCH = True
    # Lost the broker connection: stop the acks_late tasks running (they run again from the start, claiming their
    # rows), because Redis puts their messages back for another worker, which must not run them at the same time.
    CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = True
# Workers and beat reconnect to a broker that went away for as long as it takes (Celery gives up after 100 tries,
# about 46 minutes, by default): a long Redis outage must not leave the workers stopped when it ends.
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TIMEZONE = "UTC"
CELERY_ENABLE_UTC = True
CELERY_TASK_IGNORE_RESULT = True
# Transfers can take seconds (slow receiving systems): take one message at a time per process.
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# One queue per kind of work, so a flood of webhooks does not starve scheduled jobs, nor the other way round.
# Workers consume all three (`celery -A iex worker -Q intake,transfers,jobs`) or are split per queue.
CELERY_TASK_DEFAULT_QUEUE = "jobs"
CELERY_TASK_ROUTES = {
    "connections.tasks.drain_inbox": {"queue": "intake"},
    "connections.tasks.process_transfer": {"queue": "transfers"},
    "connections.tasks.sweep_inbox": {"queue": "jobs"},
    "scheduling.tasks.*": {"queue": "jobs"},
}
# Recovery: the sweeper queues again what a broker outage, a lost message or a dead worker left behind.
SWEEP_INTERVAL_SECONDS = env_int("SWEEP_INTERVAL_SECONDS", 60)
SWEEP_AFTER_SECONDS = env_int("SWEEP_AFTER_SECONDS", 120)  # a delivery or a due transfer left waiting this long
# Running this long: its worker is gone. A transfer stops itself before a request after half of it.
TRANSFER_LEASE_SECONDS = env_int("TRANSFER_LEASE_SECONDS", 900)
RETRY_BACKOFF_SECONDS = env_int("RETRY_BACKOFF_SECONDS", 30)  # a transient failure's first wait; doubles each time
CELERY_BEAT_SCHEDULE = {
    "dispatch-due-jobs": {"task": "scheduling.tasks.dispatch_due_jobs", "schedule": 30.0},
    "sweep-inbox": {"task": "connections.tasks.sweep_inbox", "schedule": float(SWEEP_INTERVAL_SECONDS)},
    "purge-transfers": {"task": "transferlog.tasks.purge_transfers", "schedule": 24 * 3600.0},
    "purge-deliveries": {"task": "connections.tasks.purge_deliveries", "schedule": 24 * 3600.0},
    # Trials, downgrades and cancellations whose period has ended; held orders whose allowance is back; order packs
    # whose payment's answer was lost.
    "roll-billing-periods": {"task": "billing.tasks.roll_periods", "schedule": 3600.0},
    "release-held-transfers": {"task": "billing.tasks.release_held", "schedule": 600.0},
    # Transfers held while a system refused IEX, once it lets IEX in again (a test of it releases them at once).
    "release-let-in": {"task": "connections.tasks.release_let_in", "schedule": 300.0},
    "ask-again-about-packs": {"task": "billing.tasks.ask_again_about_packs", "schedule": 60.0},
    # Error digests go out at most every 15 minutes per integration; reports once on the day they are due.
    "send-error-digests": {"task": "dashboard.tasks.send_error_digests", "schedule": 60.0},
    "send-status-reports": {"task": "dashboard.tasks.send_status_reports", "schedule": 3600.0},
}

# --- Security -----------------------------------------------------------------------------------------------

SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", not DEBUG)
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
# The load balancer probes /healthz, and Prometheus scrapes /metrics from inside the network, over plain HTTP.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^metrics$"]
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", not DEBUG)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", not DEBUG)
if env_bool("SECURE_PROXY_SSL_HEADER", not DEBUG):
    # Only behind a proxy that sets X-Forwarded-Proto itself (the load balancer in docker-compose.yml).
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# --- Static files, i18n -------------------------------------------------------------------------------------

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env("STATIC_ROOT", str(VAR_DIR / "static")))
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    # Hashed, compressed names for far-future caching; with DEBUG on, {% static %} serves plain names.
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# plain: the message alone, as Python prints it; json: one JSON object per line with time, level, logger, message,
# exception, and the integration number and transfer id where known (iex/lib/logs.py), for a log collector.
LOG_FORMAT = env("LOG_FORMAT", "plain").strip().lower()
if LOG_FORMAT not in {"plain", "json"}:
    raise ImproperlyConfigured(f"LOG_FORMAT must be plain or json; got {LOG_FORMAT!r}")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"log_context": {"()": "iex.lib.logs.ContextFilter"}},
    "formatters": {"json": {"()": "iex.lib.logs.JsonFormatter"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "filters": ["log_context"],
            **({"formatter": "json"} if LOG_FORMAT == "json" else {}),
        }
    },
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", "INFO")},
    # The SDK logs every request at INFO; our wrapper logs what goes wrong.
    # urllib3 logs each request's URL at DEBUG, query string and all (some shops' API keys travel there).
    "loggers": {"stripe": {"level": "WARNING"}, "urllib3": {"level": "INFO"}},
}

# --- IEX ----------------------------------------------------------------------------------------------------

INVITATION_VALID_HOURS = 72
LOG_RETENTION_DAYS = env_int("LOG_RETENTION_DAYS", 90)  # failed transfers are kept twice as long
INVITATIONS_PER_HOUR = 20  # per integration
INVITATIONS_PER_DAY = 50  # per account, over all its integrations: nobody mails the world through IEX
TRIALS_PER_ACCOUNT = 3  # integrations an account owns in their free trial at once

# Who may scrape /metrics without a staff login: the addresses REMOTE_ADDR may have (never X-Forwarded-For, which
# anyone can send). Behind the load balancer REMOTE_ADDR is the balancer: leave its address out, or have it refuse
# /metrics from outside. Everyone else gets 404.
METRICS_ALLOWED_NETWORKS = env_list("METRICS_ALLOWED_NETWORKS", "127.0.0.1/32,::1/128")
for _network in METRICS_ALLOWED_NETWORKS:
    try:
        ipaddress.ip_network(_network)
    except ValueError:
        raise ImproperlyConfigured(
            f"METRICS_ALLOWED_NETWORKS must be comma-separated networks like 10.0.0.0/8; got {_network!r}"
        ) from None
