"""A private MariaDB with the Mroonga engine, for the search tests.

The shared MariaDB on :3306 is left as it is (others' tests run on it): this one
has its own data folder under a temporary directory, listens on a free loopback
port, loads ``ha_mroonga`` (Debian's ``mariadb-plugin-mroonga``) and is stopped
at the end.
"""
from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from tests.support import free_port

PLUGIN = Path("/usr/lib/mysql/plugin/ha_mroonga.so")


def available() -> bool:
    """The server binaries and the Mroonga plugin are installed."""
    return (PLUGIN.exists() and shutil.which("mariadbd") is not None
            and shutil.which("mariadb-install-db") is not None)


class PrivateMariaDB:
    """``mariadbd`` with Mroonga on its own folder and port."""

    def __init__(self, folder: Path | None = None, buffer_pool: str = "64M") -> None:
        # A given folder is kept (bench.search --reuse starts the same data again).
        self.keep = folder is not None
        self.folder = Path(folder) if folder else Path(tempfile.mkdtemp(prefix="chat-mroonga-"))
        self.folder.mkdir(parents=True, exist_ok=True)
        self.buffer_pool = buffer_pool
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"mysql+pymysql://root@127.0.0.1:{self.port}"

    def start(self) -> "PrivateMariaDB":
        """Make the data folder and start the server; waits until it answers."""
        data = self.folder / "data"
        if not data.exists():
            subprocess.run(["mariadb-install-db", "--no-defaults", f"--datadir={data}",
                            "--user=root", "--auth-root-authentication-method=normal",
                            "--skip-test-db"], check=True, capture_output=True)
        log = open(self.folder / "error.log", "wb")
        self.proc = subprocess.Popen(
            ["mariadbd", "--no-defaults", f"--datadir={data}", "--user=root",
             f"--port={self.port}", "--bind-address=127.0.0.1",
             f"--socket={self.folder / 'sock'}", "--skip-log-bin",
             "--plugin-load-add=ha_mroonga", f"--innodb-buffer-pool-size={self.buffer_pool}",
             "--character-set-server=utf8mb4"], stdout=log, stderr=subprocess.STDOUT)
        import sqlalchemy
        engine = sqlalchemy.create_engine(self.url + "/", connect_args={"connect_timeout": 1})
        deadline = time.monotonic() + 60
        while True:
            try:
                with engine.connect() as conn:
                    conn.exec_driver_sql("CREATE DATABASE IF NOT EXISTS chat CHARACTER SET utf8mb4 "
                                         "COLLATE utf8mb4_bin")
                break
            except Exception:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the private MariaDB did not start: "
                                       + (self.folder / "error.log").read_text()[-2000:])
                time.sleep(0.3)
        engine.dispose()
        return self

    @property
    def database_url(self) -> str:
        return self.url + "/chat?charset=utf8mb4"

    def stop(self) -> None:
        """Stop the server and remove its folder (unless it was given)."""
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        if not self.keep:
            shutil.rmtree(self.folder, ignore_errors=True)
