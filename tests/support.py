"""Helpers for the tests: services, a real server process, HTTP and WebSocket clients."""
from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests
import websocket

from bench.ports import free_port  # noqa: F401  (the tests' too)

ROOT = Path(__file__).resolve().parent.parent
CI = os.environ.get("CI", "").lower() == "true"
MYSQL_URL = os.environ.get("CHAT_TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306")
REDIS_URL = os.environ.get("CHAT_TEST_REDIS_URL", "redis://127.0.0.1:6379/11")
PASSWORD = "correct-horse-battery"


def need(ok: bool, what: str) -> None:
    """Skip without the service on a laptop; fail under CI, where it must be there."""
    if ok:
        return
    if CI:
        last = "; ".join(f"{k}: {v}" for k, v in _LAST_ERROR.items())
        pytest.fail(f"{what} is required under CI=true but is not available ({last})")
    pytest.skip(f"{what} is not available")


_LAST_ERROR: dict[str, str] = {}


def _answers(name: str, probe, patience: float) -> bool:
    """Whether probe() succeeds within patience seconds (a server still starting is waited for)."""
    deadline = time.monotonic() + patience
    while True:
        try:
            probe()
            return True
        except Exception as exc:  # any failure to connect means "not there (yet)"
            _LAST_ERROR[name] = f"{type(exc).__name__}: {exc}"
        if time.monotonic() >= deadline:
            return False
        time.sleep(1)


# Under CI the services must be there; one that is restarting or slow to start is waited
# for rather than failing the whole run on its first refused connection.
_PATIENCE = 90.0 if CI else 0.0


def mysql_available() -> bool:
    """Whether MariaDB answers at MYSQL_URL."""
    import sqlalchemy

    def probe() -> None:
        engine = sqlalchemy.create_engine(MYSQL_URL + "/", connect_args={"connect_timeout": 2})
        try:
            with engine.connect() as conn:
                conn.exec_driver_sql("SELECT 1")
        finally:
            engine.dispose()
    return _answers("mysql", probe, _PATIENCE)


def redis_available() -> bool:
    """Whether Redis answers at REDIS_URL."""
    import redis

    def probe() -> None:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    return _answers("redis", probe, _PATIENCE)


def create_mysql_database() -> str:
    """A fresh database of the suite's own; returns its URL."""
    import sqlalchemy
    name = f"chat_test_{os.getpid()}_{secrets.token_hex(3)}"
    engine = sqlalchemy.create_engine(MYSQL_URL + "/")
    with engine.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 "
                             "COLLATE utf8mb4_bin")
    engine.dispose()
    return f"{MYSQL_URL}/{name}?charset=utf8mb4"


def drop_mysql_database(url: str) -> None:
    """Drop a database made by ``create_mysql_database``."""
    import sqlalchemy
    name = url.rsplit("/", 1)[1].split("?")[0]
    engine = sqlalchemy.create_engine(MYSQL_URL + "/")
    with engine.connect() as conn:
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{name}`")
    engine.dispose()


def migrate(database_url: str) -> None:
    """Build the schema by running the migrations, as production does."""
    from flask_migrate import upgrade

    from app import create_app
    app = create_app("testing", SQLALCHEMY_DATABASE_URI=database_url, REDIS_URL=None)
    with app.app_context():
        upgrade()
        from chat.extensions import db
        db.engine.dispose()


def delete_redis_prefix(prefix: str) -> None:
    """Remove the keys this run wrote (never FLUSHDB: the server is shared)."""
    import redis
    client = redis.Redis.from_url(REDIS_URL)
    for key in client.scan_iter(match=prefix + "*", count=1000):
        client.delete(key)


def unique_name(stem: str = "u") -> str:
    """A username no other test uses."""
    return f"{stem}_{uuid.uuid4().hex[:10]}"


class ServerProcess:
    """A real chat server in its own process: the dev server (gevent) or gunicorn."""

    def __init__(self, env: dict, kind: str = "devserver", workers: int = 1,
                 port: int | None = None) -> None:
        self.port = port or free_port()
        self.kind = kind
        self.env = {**os.environ, "CHAT_CONFIG": "testing", "CHAT_SEED_DEMO": "0",
                    "CHAT_HOST": "127.0.0.1", "CHAT_PORT": str(self.port),
                    "CHAT_LOG_LEVEL": "WARNING", "PYTHONUNBUFFERED": "1", **env}
        self.env.pop("CI", None)
        if kind == "devserver":
            self.argv = [sys.executable, "-m", "chat.devserver"]
        else:
            self.argv = [sys.executable, "-m", "gunicorn", "-k", "gevent", "-w", str(workers),
                         "-c", str(ROOT / "deploy" / "gunicorn.conf.py"),
                         "-b", f"127.0.0.1:{self.port}", "wsgi:app"]
        self.log_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"chat-server-{self.port}.log"
        self.env.setdefault("CHAT_CONTROL_SOCKET", str(self.log_path.with_suffix(".ctl")))
        self.proc: subprocess.Popen | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def start(self, timeout: float = 30) -> "ServerProcess":
        """Start and wait until /healthz answers."""
        log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(self.argv, cwd=ROOT, env=self.env, stdout=log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log()}")
            try:
                if requests.get(self.base + "/healthz", timeout=1).status_code in (200, 503):
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server did not start: {self.log()}")

    def log(self) -> str:
        """The server's output so far (for failure messages)."""
        try:
            return self.log_path.read_text(errors="replace")[-5000:]
        except OSError:
            return ""

    def signal(self, sig: int) -> None:
        """Send a signal to the server (and its workers)."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig) if sig == signal.SIGKILL else self.proc.send_signal(sig)

    def stop(self, timeout: float = 15) -> None:
        """SIGTERM, then SIGKILL if it lingers."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)


class Api:
    """A script's view of the HTTP API: requests with a bearer token."""

    def __init__(self, base: str, token: str | None = None, user_id: int | None = None,
                 username: str | None = None) -> None:
        self.base = base
        self.token = token
        self.user_id = user_id
        self.username = username
        self.http = requests.Session()

    def headers(self) -> dict:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def call(self, method: str, path: str, **kw) -> requests.Response:
        """One request; returns the response whatever its status."""
        return self.http.request(method, self.base + path, headers=self.headers(), timeout=30,
                                 **kw)

    def get(self, path: str, **kw):
        return self.call("GET", path, **kw)

    def post(self, path: str, **kw):
        return self.call("POST", path, **kw)

    def put(self, path: str, **kw):
        return self.call("PUT", path, **kw)

    def patch(self, path: str, **kw):
        return self.call("PATCH", path, **kw)

    def delete(self, path: str, **kw):
        return self.call("DELETE", path, **kw)

    @classmethod
    def new_user(cls, base: str, stem: str = "u") -> "Api":
        """Register a fresh user and log in with a token."""
        name = unique_name(stem)
        r = requests.post(base + "/api/register", json={"username": name, "password": PASSWORD},
                          timeout=30)
        assert r.status_code == 201, r.text
        t = requests.post(base + "/api/tokens", json={"username": name, "password": PASSWORD},
                          timeout=30)
        assert t.status_code == 201, t.text
        return cls(base, t.json()["token"], t.json()["user_id"], name)

    def follow_each_other(self, other: "Api") -> None:
        """Mutual follow, so that the stranger rule stays out of the way."""
        assert self.put(f"/api/users/{other.user_id}/follow").status_code == 200
        assert other.put(f"/api/users/{self.user_id}/follow").status_code == 200


class WS:
    """A real WebSocket client that keeps frames it was not asked for yet."""

    def __init__(self, url: str, token: str | None = None, headers: list | None = None,
                 origin: str | None = None, timeout: float = 10) -> None:
        hdrs = list(headers or [])
        if token:
            hdrs.append(f"Authorization: Bearer {token}")
        self.sock = websocket.create_connection(url, header=hdrs, origin=origin,
                                                timeout=timeout, suppress_origin=origin is None)
        self.buffer: list[dict] = []
        self.hello = self.expect("hello")

    def send(self, frame) -> None:
        """Send a frame (a dict is sent as JSON, a str or bytes as they are)."""
        if isinstance(frame, dict):
            self.sock.send(json.dumps(frame))
        elif isinstance(frame, bytes):
            self.sock.send_binary(frame)
        else:
            self.sock.send(frame)

    def recv(self, timeout: float = 10) -> dict:
        """The next frame, from the buffer or the socket."""
        if self.buffer:
            return self.buffer.pop(0)
        self.sock.settimeout(timeout)
        return json.loads(self.sock.recv())

    def expect(self, kind: str, timeout: float = 10, **match) -> dict:
        """The first frame of ``kind`` (matching ``match``); others are kept for later."""
        for i, frame in enumerate(self.buffer):
            if frame.get("kind") == kind and all(frame.get(k) == v for k, v in match.items()):
                return self.buffer.pop(i)
        deadline = time.time() + timeout
        while True:
            left = deadline - time.time()
            if left <= 0:
                raise AssertionError(f"no {kind} frame {match} within {timeout}s; "
                                     f"buffered: {self.buffer[-5:]}")
            self.sock.settimeout(left)
            try:
                frame = json.loads(self.sock.recv())
            except websocket.WebSocketTimeoutException:
                continue
            if frame.get("kind") == kind and all(frame.get(k) == v for k, v in match.items()):
                return frame
            self.buffer.append(frame)

    def nothing(self, kind: str | None = None, wait: float = 0.5) -> None:
        """Assert that no frame (of ``kind``) arrives within ``wait`` seconds."""
        deadline = time.time() + wait
        while time.time() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.time()))
            try:
                frame = json.loads(self.sock.recv())
            except websocket.WebSocketTimeoutException:
                break
            if kind is None or frame.get("kind") == kind:
                raise AssertionError(f"unexpected frame {frame}")
            self.buffer.append(frame)
        assert not [f for f in self.buffer if kind is None or f.get("kind") == kind], self.buffer

    def request(self, frame: dict, kind: str, timeout: float = 10) -> dict:
        """Send a frame and wait for the answer of ``kind``."""
        self.send(frame)
        return self.expect(kind, timeout)

    def close(self) -> None:
        try:
            self.sock.close()
        except Exception:
            pass
