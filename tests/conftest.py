"""Fixtures: a MariaDB database and a Redis prefix of the suite's own, and real servers.

Everything talks to real services: MariaDB on 127.0.0.1:3306 (a database
created for this run, schema built by the migrations) and Redis (db 11, keys
under a prefix of this run, removed at the end). Under CI=true a missing service
fails the run; on a laptop without them those tests are skipped and the SQLite
ones still run.
"""
from __future__ import annotations

import hashlib
import shutil
import sys
import tempfile
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support import (REDIS_URL, Api, ServerProcess, WS, create_mysql_database,  # noqa: E402
                           delete_redis_prefix, drop_mysql_database, migrate, mysql_available,
                           need, redis_available)


@pytest.fixture(scope="session")
def mysql_url():
    """A migrated MariaDB database for this test run."""
    need(mysql_available(), "MariaDB on 127.0.0.1:3306")
    url = create_mysql_database()
    migrate(url)
    yield url
    drop_mysql_database(url)


@pytest.fixture(scope="session")
def redis_prefix():
    """A Redis key and channel prefix of this run's own."""
    need(redis_available(), "Redis on 127.0.0.1:6379")
    prefix = f"chat-test-{uuid.uuid4().hex[:8]}:"
    yield prefix
    delete_redis_prefix(prefix)


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory):
    """A migrated SQLite database file (the embedded default)."""
    path = tmp_path_factory.mktemp("sqlite") / "chat.db"
    url = f"sqlite:///{path}"
    migrate(url)
    return url


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory):
    """A migrated SQLite file that in-process tests copy; nothing opens the file itself."""
    path = tmp_path_factory.mktemp("sqlite-template") / "chat.db"
    migrate(f"sqlite:///{path}")
    return path


def _copy_of(template: Path, fallback: Path):
    """Copy the template into memory-backed /dev/shm when there is one, else ``fallback``.

    A commit on disk waits for fsync (about 20 ms here), and in-process tests commit a lot.
    Yields the copy's URL; removes it afterwards.
    """
    shm = Path("/dev/shm")
    folder = Path(tempfile.mkdtemp(prefix="chat-test-", dir=shm)) if shm.is_dir() else fallback
    path = folder / "chat.db"
    shutil.copyfile(template, path)
    yield f"sqlite:///{path}"
    if folder != fallback:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def sqlite_module_url(sqlite_template, tmp_path_factory):
    """A migrated SQLite database shared by one test module (tests keep to their own rows)."""
    yield from _copy_of(sqlite_template, tmp_path_factory.mktemp("sqlite-module"))


def mysql_env(mysql_url: str, redis_prefix: str, **extra) -> dict:
    """Server environment on MariaDB and Redis. Servers on one database share their Redis
    keys; a server on another database (its user ids start at 1 again) gets keys of its own,
    or its users would inherit the flood counts of the other database's users of the same id."""
    database = hashlib.sha1(mysql_url.encode()).hexdigest()[:8]
    return {"DATABASE_URL": mysql_url, "REDIS_URL": REDIS_URL,
            "CHAT_REDIS_PREFIX": f"{redis_prefix}{database}:",
            **{k: str(v) for k, v in extra.items()}}


@pytest.fixture(scope="session")
def server(mysql_url, redis_prefix):
    """The chat server on MariaDB and Redis, shared by the session."""
    proc = ServerProcess(mysql_env(mysql_url, redis_prefix)).start()
    yield proc
    proc.stop()


@pytest.fixture(scope="session")
def sqlite_server(sqlite_url):
    """The chat server on the embedded defaults: SQLite, in-process bus and counters."""
    proc = ServerProcess({"DATABASE_URL": sqlite_url, "REDIS_URL": ""}).start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module", params=["mariadb", "sqlite"])
def any_server(request):
    """The same tests on MariaDB + Redis and on the embedded defaults."""
    return request.getfixturevalue("server" if request.param == "mariadb" else "sqlite_server")


@pytest.fixture
def user(any_server):
    """A factory of fresh users (with tokens) on ``any_server``."""
    return lambda stem="u": Api.new_user(any_server.base, stem)


@pytest.fixture
def pair(user):
    """Two users who follow each other (the stranger rule stays out of the way)."""
    a, b = user("alice"), user("bob")
    a.follow_each_other(b)
    return a, b


@pytest.fixture
def api(server):
    """A factory of fresh users (with tokens) on the MariaDB server."""
    return lambda stem="u": Api.new_user(server.base, stem)


@pytest.fixture
def connect():
    """Open real WebSockets; all are closed after the test."""
    opened: list[WS] = []

    def _connect(server, user: Api, **kw) -> WS:
        ws = WS(server.ws_url, token=user.token, **kw)
        opened.append(ws)
        return ws
    yield _connect
    for ws in opened:
        ws.close()
