"""A private MariaDB for the benchmark, on the settings the README recommends.

``python -m bench --db private`` starts ``mariadbd`` with ``deploy/mariadb.cnf`` (the
production settings: a 1 GiB redo log, a 2 GiB buffer pool, a flush at every commit)
on a data folder and a loopback port of its own, runs every scenario on it and stops
it at the end. The shared server on :3306 is never touched. The settings that only
place it (folder, port, socket) are given on the command line, after the file.
"""
from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pymysql

from bench.ports import free_port

ROOT = Path(__file__).resolve().parent.parent
CONF = ROOT / "deploy" / "mariadb.cnf"
MROONGA = Path("/usr/lib/mysql/plugin/ha_mroonga.so")



class PrivateMariaDB:
    """``mariadbd --defaults-file=deploy/mariadb.cnf`` in a folder of its own."""

    def __init__(self, parent: Path | None = None) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="chat-bench-mariadb-", dir=parent))
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    def conf(self) -> Path:
        """deploy/mariadb.cnf, less the Mroonga line when the plugin is not installed."""
        text = CONF.read_text()
        if not MROONGA.exists():
            text = "\n".join(ln for ln in text.splitlines()
                             if not ln.startswith("plugin_load_add = ha_mroonga"))
        path = self.folder / "mariadb.cnf"
        path.write_text(text)
        return path

    def start(self, timeout: float = 120) -> "PrivateMariaDB":
        """Make the data folder, start the server, wait until it answers."""
        data = self.folder / "data"
        subprocess.run(["mariadb-install-db", "--no-defaults", f"--datadir={data}",
                        "--user=root", "--auth-root-authentication-method=normal",
                        "--skip-test-db"], check=True, capture_output=True)
        log = open(self.folder / "error.log", "wb")
        self.proc = subprocess.Popen(
            ["mariadbd", f"--defaults-file={self.conf()}", f"--datadir={data}", "--user=root",
             f"--port={self.port}", "--bind-address=127.0.0.1",
             f"--socket={self.folder / 'sock'}", f"--pid-file={self.folder / 'pid'}"],
            stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while True:
            try:
                pymysql.connect(host="127.0.0.1", port=self.port, user="root",
                                connect_timeout=1).close()
                return self
            except pymysql.err.OperationalError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the private MariaDB did not start: "
                                       + (self.folder / "error.log").read_text()[-2000:])
                time.sleep(0.3)

    @property
    def pid(self) -> int | None:
        """The server's process id (its CPU is reported next to the chat server's)."""
        return self.proc.pid if self.proc else None

    def stop(self) -> None:
        """Stop the server and remove its folder."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        shutil.rmtree(self.folder, ignore_errors=True)
