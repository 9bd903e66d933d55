"""Configuration: one class per environment, every value from an environment variable."""
from __future__ import annotations

import ipaddress
import os
import secrets
from pathlib import Path

INSTANCE_DIR = Path(__file__).resolve().parent.parent / "instance"

# Keys that must never be used outside development, however they got into the environment.
_KNOWN_WEAK_KEYS = {"", "dev", "changeme", "secret", "development"}


def env_str(name: str, default: str | None = None) -> str | None:
    """A string setting, or ``default`` when unset or empty."""
    value = os.environ.get(name)
    return value if value not in (None, "") else default


def env_int(name: str, default: int) -> int:
    """An integer setting; a malformed value stops the start-up with a clear message."""
    raw = os.environ.get(name)
    if raw in (None, ""):
        return default
    try:
        return int(raw)
    except ValueError:
        raise SystemExit(f"{name} must be an integer, got {raw!r}") from None


def env_bool(name: str, default: bool) -> bool:
    """A boolean setting: 1/true/yes/on or 0/false/no/off."""
    raw = os.environ.get(name)
    if raw in (None, ""):
        return default
    return raw.strip().lower() in ("1", "true", "yes", "on")


def env_ints(name: str, default: tuple[int, ...]) -> tuple[int, ...]:
    """A comma-separated list of integers; a malformed value stops the start-up."""
    raw = os.environ.get(name)
    if raw in (None, ""):
        return default
    try:
        return tuple(int(part) for part in raw.split(",") if part.strip())
    except ValueError:
        raise SystemExit(f"{name} must be integers separated by commas, got {raw!r}") from None


def env_networks(name: str, default: str) -> tuple:
    """Comma-separated addresses or networks (``10.0.0.0/8``); a malformed one stops the start."""
    raw = env_str(name, default)
    try:
        return tuple(ipaddress.ip_network(part.strip(), strict=False)
                     for part in raw.split(",") if part.strip())
    except ValueError as exc:
        raise SystemExit(f"{name}: {exc}") from None


def normalise_database_url(url: str) -> str:
    """Make a MySQL URL use PyMySQL and utf8mb4, so emoji and every CJK character round-trip."""
    if url.startswith("mysql://"):
        url = "mysql+pymysql://" + url[len("mysql://"):]
    if url.startswith(("mysql+pymysql://", "mariadb+pymysql://")) and "charset=" not in url:
        url += ("&" if "?" in url else "?") + "charset=utf8mb4"
    return url


def _dev_secret_key() -> str:
    """A random key generated once and kept in instance/, so dev sessions survive restarts."""
    path = INSTANCE_DIR / "secret_key"
    if not path.exists():
        INSTANCE_DIR.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(48))
        path.chmod(0o600)
    return path.read_text().strip()


class BaseConfig:
    """Settings shared by every environment."""

    NAME = "base"
    SQLALCHEMY_DATABASE_URI = normalise_database_url(
        env_str("DATABASE_URL", f"sqlite:///{INSTANCE_DIR / 'chat.db'}"))
    # Optional MariaDB replica for history, sync and search (chat/store/replica.py has the
    # rule); unset: every read on the primary.
    DATABASE_REPLICA_URL = normalise_database_url(env_str("DATABASE_REPLICA_URL", "")) or None
    # How long a read waits for the replica to reach the primary's position before it
    # reads the primary; then the replica is skipped for BEHIND seconds (or RETRY
    # seconds after it failed).
    CHAT_REPLICA_WAIT_MS = env_int("CHAT_REPLICA_WAIT_MS", 50)
    CHAT_REPLICA_BEHIND_SECONDS = env_int("CHAT_REPLICA_BEHIND_SECONDS", 1)
    CHAT_REPLICA_RETRY_SECONDS = env_int("CHAT_REPLICA_RETRY_SECONDS", 5)
    REDIS_URL = env_str("REDIS_URL")
    SECRET_KEY = env_str("SECRET_KEY")

    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    SESSION_COOKIE_SECURE = env_bool("CHAT_SECURE_COOKIES", False)
    REMEMBER_COOKIE_HTTPONLY = True
    REMEMBER_COOKIE_SAMESITE = "Lax"
    MAX_CONTENT_LENGTH = env_int("CHAT_MAX_BODY_BYTES", 256 * 1024)
    # Each read of a request body must get its bytes within this (408 past it; 0: no
    # limit): chat/request_body.py.
    CHAT_BODY_STALL_SECONDS = env_int("CHAT_BODY_STALL_SECONDS", 15)
    JSON_SORT_KEYS = False

    # CSRF is checked by our own before_request, so bearer-token API calls can skip it.
    WTF_CSRF_CHECK_DEFAULT = False
    WTF_CSRF_TIME_LIMIT = None  # the token lives as long as the session

    # No pool_pre_ping: chat.store.pool pings only a connection that sat idle.
    SQLALCHEMY_ENGINE_OPTIONS = {
        "pool_recycle": 280,
    }
    SQLALCHEMY_POOL_SIZE = env_int("CHAT_DB_POOL_SIZE", 20)
    SQLALCHEMY_MAX_OVERFLOW = env_int("CHAT_DB_MAX_OVERFLOW", 20)
    # A database that hangs (rather than dies) must not hang the server: every statement
    # gets this many seconds to answer (PyMySQL's read and write timeouts; 0: none), and a
    # request waits at most CHAT_DB_POOL_TIMEOUT for a pooled connection (a connect storm
    # of thousands of sockets queues on the pool for several seconds: keep it generous).
    CHAT_DB_TIMEOUT = env_int("CHAT_DB_TIMEOUT", 10)
    CHAT_DB_POOL_TIMEOUT = env_int("CHAT_DB_POOL_TIMEOUT", 30)
    # A send not committed within this many seconds is answered 503 (retry with the same
    # client_id): it is dropped if it has not been written yet.
    CHAT_SEND_TIMEOUT = env_int("CHAT_SEND_TIMEOUT", 10)

    CHAT_MAX_FRAME_BYTES = env_int("CHAT_MAX_FRAME_BYTES", 65536)
    CHAT_MAX_CONTENT = env_int("CHAT_MAX_CONTENT", 5000)
    # Seconds after sending within which the sender may edit (or recall) a message; 0: any time.
    CHAT_EDIT_WINDOW = env_int("CHAT_EDIT_WINDOW", 48 * 3600)
    CHAT_RECALL_WINDOW = env_int("CHAT_RECALL_WINDOW", 24 * 3600)
    # Search checks this many of the user's newest messages one by one before it asks the
    # full-text index (chat.store.search_sql): common words answer from the scan.
    CHAT_SEARCH_WINDOW = env_int("CHAT_SEARCH_WINDOW", 20000)
    # MariaDB: how soon (ms) after its process committed messages (else once a second)
    # each process's indexer adds new messages to the search index (one process at a time
    # takes a round); 0: this process does not index. A round that found fewer than 50
    # messages makes the next one wait longer, up to a second (``runtime.index_pause``).
    # Short rounds: each one's indexing work on MariaDB delays the sends that meet it, so a
    # round of 50 ms of messages delays fewer of them by less than one of 250 ms (p99 at
    # 1,000 msgs/s 4.4 -> 3.6 ms, bench/README.md).
    CHAT_SEARCH_INDEX_INTERVAL_MS = env_int("CHAT_SEARCH_INDEX_INTERVAL_MS", 50)
    CHAT_RATE_PER_MINUTE = env_int("CHAT_RATE_PER_MINUTE", 600)
    CHAT_STRANGER_LIMIT = env_int("CHAT_STRANGER_LIMIT", 3)
    CHAT_STRANGER_TTL = env_int("CHAT_STRANGER_TTL", 90 * 24 * 3600)
    CHAT_ALLOWED_ORIGINS = env_str("CHAT_ALLOWED_ORIGINS", "")
    CHAT_TRUSTED_PROXIES = env_int("CHAT_TRUSTED_PROXIES", 0)
    CHAT_PING_INTERVAL = env_int("CHAT_PING_INTERVAL", 25)
    CHAT_AUTH_RECHECK_INTERVAL = env_int("CHAT_AUTH_RECHECK_INTERVAL", 30)
    CHAT_SEND_QUEUE_BYTES = env_int("CHAT_SEND_QUEUE_BYTES", 8 * 1024 * 1024)
    # All the connection queues of one process together; past it the biggest are closed
    # with 1013 first.
    CHAT_SEND_QUEUE_TOTAL_BYTES = env_int("CHAT_SEND_QUEUE_TOTAL_BYTES", 256 * 1024 * 1024)
    # A socket with more than this many bytes of answers still queued gets no further
    # history, unread or sync answer until its client has read them (back-pressure).
    CHAT_MAX_UNREAD_ANSWER_BYTES = env_int("CHAT_MAX_UNREAD_ANSWER_BYTES", 1024 * 1024)
    # The kernel's send buffer per socket (0: the kernel's own autotuning, up to 4 MiB).
    CHAT_SOCKET_SEND_BUFFER = env_int("CHAT_SOCKET_SEND_BUFFER", 256 * 1024)
    # Live sockets per process (gunicorn's requests in progress too, deploy/gunicorn.conf.py);
    # a new one past it is closed with 1013.
    CHAT_WORKER_CONNECTIONS = env_int("CHAT_WORKER_CONNECTIONS", 20000)
    # Live sockets per user across every process (0: no cap); a new one past it is refused.
    CHAT_MAX_SOCKETS_PER_USER = env_int("CHAT_MAX_SOCKETS_PER_USER", 20)
    CHAT_MAX_INFLIGHT = env_int("CHAT_MAX_INFLIGHT", 256)
    CHAT_BATCH_MAX = env_int("CHAT_BATCH_MAX", 500)
    # Failed logins per (username, address), and per address, in CHAT_LOGIN_WINDOW.
    CHAT_LOGIN_MAX_FAILURES = env_int("CHAT_LOGIN_MAX_FAILURES", 10)
    CHAT_LOGIN_MAX_FAILURES_PER_ADDRESS = env_int("CHAT_LOGIN_MAX_FAILURES_PER_ADDRESS", 100)
    CHAT_LOGIN_WINDOW = env_int("CHAT_LOGIN_WINDOW", 15 * 60)
    # Logins and sign-ups per address per minute (each costs a password hash); 0: off.
    CHAT_AUTH_ATTEMPTS_PER_MINUTE = env_int("CHAT_AUTH_ATTEMPTS_PER_MINUTE", 30)
    # A session or API token unused for this many days expires (0: never).
    CHAT_SESSION_IDLE_DAYS = env_int("CHAT_SESSION_IDLE_DAYS", 30)
    # Threads that hash passwords, off the event loop (their number bounds the CPU taken).
    CHAT_HASH_THREADS = env_int("CHAT_HASH_THREADS", 1)
    CHAT_REDIS_PREFIX = env_str("CHAT_REDIS_PREFIX", "chat:")
    CHAT_SHUTDOWN_GRACE = env_int("CHAT_SHUTDOWN_GRACE", 10)
    CHAT_LOG_LEVEL = env_str("CHAT_LOG_LEVEL", "INFO")
    # When set, /metrics answers only to "Authorization: Bearer <this token>"; when not, only
    # to the addresses (or networks) in CHAT_METRICS_ALLOW (behind a proxy, the client's
    # address as CHAT_TRUSTED_PROXIES says).
    CHAT_METRICS_TOKEN = env_str("CHAT_METRICS_TOKEN")
    CHAT_METRICS_ALLOW = env_networks("CHAT_METRICS_ALLOW", "127.0.0.1/32,::1/128")
    # The server process's gc.set_threshold (see ChatRuntime.start).
    CHAT_GC_THRESHOLDS = env_ints("CHAT_GC_THRESHOLDS", (50000, 20, 100))[:3]
    # Attention (docs/protocol.md, Attention): friends hear "offline" this many seconds after a user's
    # last socket closed (a reload does not flicker).
    CHAT_PRESENCE_GRACE = env_int("CHAT_PRESENCE_GRACE", 10)
    # Off: nobody is told who is online (profiles show null) and no query runs for it;
    # sockets are still counted, for Web Push. For measuring what presence costs.
    CHAT_PRESENCE = env_bool("CHAT_PRESENCE", True)
    # Files and pictures (docs/protocol.md 3.10): one upload's size, each user's total, where they
    # are kept (a local folder, or an S3-compatible bucket when CHAT_S3_BUCKET is set, with
    # the standard AWS credentials), threads that decode pictures, and the clean-up period.
    CHAT_MAX_UPLOAD_BYTES = env_int("CHAT_MAX_UPLOAD_BYTES", 25 * 1024 * 1024)
    CHAT_UPLOAD_QUOTA = env_int("CHAT_UPLOAD_QUOTA", 1024 * 1024 * 1024)
    CHAT_UPLOAD_DIR = env_str("CHAT_UPLOAD_DIR", str(INSTANCE_DIR / "uploads"))
    CHAT_UPLOAD_SPOOL = env_str("CHAT_UPLOAD_SPOOL", str(INSTANCE_DIR / "uploads" / "spool"))
    CHAT_S3_BUCKET = env_str("CHAT_S3_BUCKET")
    CHAT_S3_ENDPOINT = env_str("CHAT_S3_ENDPOINT")
    CHAT_S3_REGION = env_str("CHAT_S3_REGION")
    CHAT_IMAGE_THREADS = env_int("CHAT_IMAGE_THREADS", 2)
    CHAT_UPLOAD_CLEANUP_INTERVAL = env_int("CHAT_UPLOAD_CLEANUP_INTERVAL", 20)
    # With the local backend behind nginx: downloads answered with this internal location
    # prefix in X-Accel-Redirect (nginx then sends the file); empty: the app streams it.
    CHAT_UPLOAD_ACCEL_PREFIX = env_str("CHAT_UPLOAD_ACCEL_PREFIX", "")
    # Web Push's VAPID private key (PEM, or base64url of the raw key); unset: one is
    # generated once and kept in instance/ (fine for one machine, not for several).
    CHAT_VAPID_PRIVATE_KEY = env_str("CHAT_VAPID_PRIVATE_KEY")
    # Who runs this server, for push services to write to (a mailto: or https: URL).
    CHAT_VAPID_SUBJECT = env_str("CHAT_VAPID_SUBJECT", "mailto:admin@localhost")
    # Only for the transport conformance tests: mounts /_echo on our exact WebSocket stack.
    CHAT_ECHO_ROUTE = env_bool("CHAT_ECHO_ROUTE", False)

    @classmethod
    def init_app(cls, app) -> None:
        """Environment-specific checks and derived values, run by the factory."""
        opts = dict(app.config["SQLALCHEMY_ENGINE_OPTIONS"])
        url = app.config["SQLALCHEMY_DATABASE_URI"]
        if not url.startswith("sqlite"):
            opts.setdefault("pool_size", app.config["SQLALCHEMY_POOL_SIZE"])
            opts.setdefault("max_overflow", app.config["SQLALCHEMY_MAX_OVERFLOW"])
            opts.setdefault("pool_timeout", app.config["CHAT_DB_POOL_TIMEOUT"])
        if url.startswith(("mysql+pymysql://", "mariadb+pymysql://")):
            args = dict(opts.get("connect_args", {}))
            timeout = app.config["CHAT_DB_TIMEOUT"]
            if timeout > 0:
                args.setdefault("connect_timeout", min(timeout, 5))
                args.setdefault("read_timeout", timeout)
                args.setdefault("write_timeout", timeout)
            if "ssl" not in url:
                # PyMySQL otherwise tries TLS without checking the certificate, which costs
                # 80 ms of CPU per connection (it loads the CA bundle each time) and stops no
                # active attacker. Ask for real TLS in the URL: ?ssl_ca=/path/to/ca.pem
                args["ssl_disabled"] = True
            from .store.driver import conversions_with_fast_times, remember_column_descriptors
            args.setdefault("conv", conversions_with_fast_times())
            remember_column_descriptors()
            opts["connect_args"] = args
        app.config["SQLALCHEMY_ENGINE_OPTIONS"] = opts


class DevelopmentConfig(BaseConfig):
    """A first run on a laptop: SQLite under instance/, in-process bus and counters."""

    NAME = "development"

    @classmethod
    def init_app(cls, app) -> None:
        """Generate and keep a dev secret key when none is given."""
        if not app.config.get("SECRET_KEY"):
            app.config["SECRET_KEY"] = _dev_secret_key()
        super().init_app(app)


class TestingConfig(BaseConfig):
    """The test suite: databases and Redis numbers are passed in by the fixtures."""

    NAME = "testing"
    SECRET_KEY = env_str("SECRET_KEY", "testing-" + secrets.token_hex(16))
    CHAT_LOGIN_MAX_FAILURES = env_int("CHAT_LOGIN_MAX_FAILURES", 10)
    # The suite registers and logs in hundreds of users from 127.0.0.1; the tests of
    # this limit set it themselves.
    CHAT_AUTH_ATTEMPTS_PER_MINUTE = env_int("CHAT_AUTH_ATTEMPTS_PER_MINUTE", 0)


class ProductionConfig(BaseConfig):
    """Production: refuses to start with a missing or weak secret key."""

    NAME = "production"
    SESSION_COOKIE_SECURE = env_bool("CHAT_SECURE_COOKIES", True)
    REMEMBER_COOKIE_SECURE = SESSION_COOKIE_SECURE

    @classmethod
    def init_app(cls, app) -> None:
        """Check the secret key before anything is served."""
        key = app.config.get("SECRET_KEY") or ""
        if key.lower() in _KNOWN_WEAK_KEYS or len(key) < 32:
            raise RuntimeError(
                "SECRET_KEY must be set to a random string of at least 32 characters in "
                "production, e.g. python -c 'import secrets; print(secrets.token_urlsafe(48))'")
        super().init_app(app)


CONFIGS = {c.NAME: c for c in (DevelopmentConfig, TestingConfig, ProductionConfig)}


def get_config(name: str | None) -> type[BaseConfig]:
    """The config class for ``name`` (or ``CHAT_CONFIG``, default development)."""
    name = name or env_str("CHAT_CONFIG", "development")
    try:
        return CONFIGS[name]
    except KeyError:
        raise RuntimeError(f"unknown CHAT_CONFIG {name!r}; one of {sorted(CONFIGS)}") from None
