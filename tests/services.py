"""Private MariaDB and Redis servers that a test may stop and start (never the shared ones)."""
from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from tests.support import free_port


def _wait_port(port: int, timeout: float) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        with socket.socket() as s:
            s.settimeout(0.2)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return True
        time.sleep(0.05)
    return False


class PrivateMariaDB:
    """A throw-away mariadbd on its own port and data directory (no grant tables)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="chat-mariadb-"))
        (self.dir / "data").mkdir()
        self.proc: subprocess.Popen | None = None
        self.initialised = False

    @staticmethod
    def available() -> bool:
        """Whether the mariadbd binary is installed."""
        return shutil.which("mariadbd") is not None or Path("/usr/sbin/mariadbd").exists()

    @property
    def url(self) -> str:
        return f"mysql+pymysql://root@127.0.0.1:{self.port}"

    def start(self) -> "PrivateMariaDB":
        """Start (or start again on the same data) and wait for the port."""
        binary = shutil.which("mariadbd") or "/usr/sbin/mariadbd"
        log = open(self.dir / "server.log", "ab")
        logged_before = log.tell()
        self.proc = subprocess.Popen(
            [binary, "--no-defaults", f"--datadir={self.dir / 'data'}", f"--port={self.port}",
             f"--socket={self.dir / 'sock'}", "--bind-address=127.0.0.1", "--user=root",
             "--skip-grant-tables", "--innodb-buffer-pool-size=32M",
             "--innodb-log-file-size=16M", "--skip-log-bin", f"--pid-file={self.dir / 'pid'}"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        # Ready, not merely listening: the port opens before the signal handler runs, and
        # a SIGTERM sent in between was lost (the restart below then waited forever).
        if not _wait_port(self.port, 30) or not self._wait_ready(logged_before, 60):
            raise RuntimeError("private MariaDB did not start: "
                               + (self.dir / "server.log").read_text()[-2000:])
        if not self.initialised:
            # A brand-new InnoDB system tablespace is not crash-safe until the first clean
            # shutdown; restart once so that a later SIGKILL is an ordinary crash.
            self.initialised = True
            self.stop(signal.SIGTERM)
            return self.start()
        return self

    def _wait_ready(self, offset: int, timeout: float) -> bool:
        """Wait for "ready for connections" in what the server logged after ``offset``."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            with open(self.dir / "server.log", "rb") as log:
                log.seek(offset)
                if b"ready for connections" in log.read():
                    return True
            if self.proc.poll() is not None:
                return False
            time.sleep(0.05)
        return False

    def create_database(self, name: str = "chat") -> str:
        """Create a database and return its URL."""
        import sqlalchemy
        engine = sqlalchemy.create_engine(self.url + "/")
        with engine.connect() as conn:
            conn.exec_driver_sql(f"CREATE DATABASE IF NOT EXISTS `{name}` "
                                 "CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
        engine.dispose()
        return f"{self.url}/{name}?charset=utf8mb4"

    def stop(self, sig: int = signal.SIGKILL) -> None:
        """Stop it (by default abruptly, like a crash)."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(30)

    def pause(self) -> None:
        """Freeze it (SIGSTOP): it hangs rather than dies, connections stay open."""
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """Thaw it (SIGCONT)."""
        self.proc.send_signal(signal.SIGCONT)

    def destroy(self) -> None:
        """Stop and delete the data directory."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)  # a frozen process cannot die of SIGKILL's wait
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class PrivateRedis:
    """A throw-away redis-server on its own port, keeping nothing on disk."""

    def __init__(self) -> None:
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    @staticmethod
    def available() -> bool:
        """Whether redis-server is installed."""
        return shutil.which("redis-server") is not None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> "PrivateRedis":
        """Start (again) on the same port."""
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)
        if not _wait_port(self.port, 10):
            raise RuntimeError("private Redis did not start")
        return self

    def stop(self, sig: int = signal.SIGKILL) -> None:
        """Stop it."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(10)
