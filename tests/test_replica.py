"""The optional read replica on a real MariaDB primary and replica pair.

Two private ``mariadbd`` on their own loopback ports and folders: the primary
writes a binlog, the replica follows it with GTID replication. To see which
database answered, the test changes one message's text on the replica alone (a
local write, not logged): an answer holding that text came from the replica.
"""
from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import sqlalchemy
import sqlalchemy.exc

from tests.support import Api, ServerProcess, free_port, migrate, need

PLUGIN = Path("/usr/lib/mysql/plugin/ha_mroonga.so")
MARK = "replica copy"


def _available() -> bool:
    return (shutil.which("mariadbd") is not None
            and shutil.which("mariadb-install-db") is not None)


class MariaDBPair:
    """A primary (server id 1, binlog) and a replica (server id 2) replicating from it."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="chat-replica-"))
        self.ports = {"primary": free_port(), "replica": free_port()}
        self.procs: dict[str, subprocess.Popen] = {}
        self.mroonga = PLUGIN.exists()

    def url(self, which: str) -> str:
        return f"mysql+pymysql://root@127.0.0.1:{self.ports[which]}"

    def database_url(self, which: str) -> str:
        return self.url(which) + "/chat?charset=utf8mb4"

    def _start(self, which: str, server_id: int, extra: list[str]) -> None:
        args = ["mariadbd", "--no-defaults", f"--datadir={self.folder / which}", "--user=root",
                f"--port={self.ports[which]}", "--bind-address=127.0.0.1",
                f"--socket={self.folder / (which + '.sock')}", f"--server-id={server_id}",
                "--innodb-buffer-pool-size=32M", "--character-set-server=utf8mb4", *extra]
        if self.mroonga:
            args.append("--plugin-load-add=ha_mroonga")
        with open(self.folder / f"{which}.log", "wb") as log:  # the child keeps its own copy
            self.procs[which] = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)

    def sql(self, which: str, *statements: str) -> list:
        """Run statements on one server; the rows of the last."""
        engine = sqlalchemy.create_engine(self.url(which) + "/",
                                          connect_args={"connect_timeout": 2})
        try:
            with engine.connect() as conn:
                rows: list = []
                for statement in statements:
                    result = conn.exec_driver_sql(statement)
                    rows = result.all() if result.returns_rows else []
                conn.commit()
                return rows
        finally:
            engine.dispose()

    def _wait_up(self, which: str) -> None:
        deadline = time.monotonic() + 60
        while True:
            try:
                self.sql(which, "SELECT 1")
                return
            except sqlalchemy.exc.DBAPIError:
                if self.procs[which].poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{which} did not start: "
                                       + (self.folder / f"{which}.log").read_text()[-2000:])
                time.sleep(0.2)

    def start(self) -> MariaDBPair:
        """One data folder made once and copied (faster than two installs), both servers
        started, the replica following the primary from its first binlog event."""
        subprocess.run(["mariadb-install-db", "--no-defaults",
                        f"--datadir={self.folder / 'primary'}", "--user=root",
                        "--auth-root-authentication-method=normal", "--skip-test-db"],
                       check=True, capture_output=True)
        shutil.copytree(self.folder / "primary", self.folder / "replica")
        self._start("primary", 1, [f"--log-bin={self.folder / 'primary' / 'bin'}"])
        self._start("replica", 2, ["--skip-log-bin"])
        self._wait_up("primary")
        self._wait_up("replica")
        self.sql("replica",
                 f"CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={self.ports['primary']}, "
                 "MASTER_USER='root', MASTER_PASSWORD='', MASTER_USE_GTID=slave_pos",
                 "START SLAVE")
        self.sql("primary", "CREATE DATABASE chat CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
        return self

    def caught_up(self, seconds: float = 20) -> bool:
        """Whether the replica applies everything the primary has committed, within seconds."""
        position = self.sql("primary", "SELECT @@global.gtid_binlog_pos")[0][0]
        return self.sql("replica", f"SELECT MASTER_GTID_WAIT('{position}', {seconds})")[0][0] == 0

    def stop(self, which: str) -> None:
        proc = self.procs.get(which)
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)

    def close(self) -> None:
        for which in ("replica", "primary"):
            self.stop(which)
        shutil.rmtree(self.folder, ignore_errors=True)


@pytest.fixture
def pair_server():
    need(_available(), "mariadbd and mariadb-install-db")
    pair = MariaDBPair()
    server = None
    try:
        pair.start()
        migrate(pair.database_url("primary"))
        if pair.mroonga:  # the search index, as the operator's search-reindex makes it
            from app import create_app
            from chat.extensions import db
            from chat.store import search_sql
            app = create_app("testing", SQLALCHEMY_DATABASE_URI=pair.database_url("primary"),
                             REDIS_URL=None)
            with app.app_context(), db.engine.begin() as conn:
                search_sql.create_index(conn)
            with app.app_context():
                db.engine.dispose()
        assert pair.caught_up()
        server = ServerProcess({"DATABASE_URL": pair.database_url("primary"),
                                "DATABASE_REPLICA_URL": pair.database_url("replica"),
                                "CHAT_REPLICA_BEHIND_SECONDS": "1",
                                "CHAT_REPLICA_RETRY_SECONDS": "1",
                                "REDIS_URL": ""}).start()
        yield pair, server
    finally:
        if server is not None:
            server.stop()
        pair.close()


def _history(api: Api, peer: int, **params) -> list[dict]:
    r = api.get(f"/api/messages/{peer}", params={"limit": 100, **params})
    assert r.status_code == 200, r.text
    return r.json()["messages"]


def _sync(api: Api) -> list[dict]:
    r = api.get("/api/sync", params={"since_id": 0})
    assert r.status_code == 200, r.text
    return r.json()["messages"]


def _eventually(check, seconds: float = 15) -> None:
    """Wait until ``check()`` holds (the replica is skipped for a second after lag)."""
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "condition never held"
        time.sleep(0.2)


def test_reads_use_the_replica_see_their_own_writes_and_survive_its_loss(pair_server):
    pair, server = pair_server
    alice, bob = Api.new_user(server.base, "a"), Api.new_user(server.base, "b")
    alice.follow_each_other(bob)
    sent = []
    for n, text in enumerate(["one", "two", "three"]):
        r = alice.post("/api/messages", json={"recipient_id": bob.user_id, "content": text,
                                              "client_id": f"c{n}"})
        assert r.status_code == 201, r.text
        sent.append(r.json()["id"])
    # The search indexer writes after the sends (its position): wait until it has, so that
    # the replica is caught up with a primary that has stopped writing.
    if pair.mroonga:
        from tests.test_hardening import metric
        _eventually(lambda: metric(server, "chat_search_index_lag") == 0)
    assert pair.caught_up()
    # The replica's copy of message "one" now differs: answers holding it came from there.
    pair.sql("replica", "SET sql_log_bin = 0",
             f"UPDATE chat.messages SET content = '{MARK}' WHERE id = {sent[0]}")

    assert [m["content"] for m in _history(alice, bob.user_id)] == [MARK, "two", "three"]
    assert [m["content"] for m in _sync(bob)] == [MARK, "two", "three"]
    older = _history(alice, bob.user_id, before_id=sent[2])
    assert [m["content"] for m in older] == [MARK, "two"]
    if pair.mroonga:
        found = alice.get("/api/search", params={"q": "copy"})
        assert found.status_code == 200, found.text
        assert [m["id"] for m in found.json()["messages"]] == [sent[0]]

    # Lag: the replica stops applying. A fresh ack must be in the sender's next history
    # and sync (and the peer's): those reads go to the primary.
    pair.sql("replica", "STOP SLAVE SQL_THREAD")
    r = alice.post("/api/messages", json={"recipient_id": bob.user_id, "content": "fresh",
                                          "client_id": "c-fresh"})
    assert r.status_code == 201, r.text
    fresh = r.json()["id"]
    assert not pair.sql("replica", f"SELECT id FROM chat.messages WHERE id = {fresh}")
    page = _history(alice, bob.user_id)
    assert [m["id"] for m in page][-1] == fresh
    assert page[0]["content"] == "one"  # from the primary
    assert fresh in [m["id"] for m in _sync(alice)]
    assert [m["id"] for m in _history(bob, alice.user_id)][-1] == fresh
    assert [m["content"] for m in _history(alice, bob.user_id, before_id=fresh)] == [
        "one", "two", "three"]

    # Caught up again: the replica serves once more, with the fresh message.
    pair.sql("replica", "START SLAVE SQL_THREAD")
    assert pair.caught_up()
    _eventually(lambda: _history(alice, bob.user_id)[0]["content"] == MARK)
    assert [m["id"] for m in _history(alice, bob.user_id)][-1] == fresh
    assert _sync(alice)[0]["content"] == MARK

    # The replica dies: every read falls back to the primary, sends go on.
    pair.stop("replica")
    page = _history(alice, bob.user_id)
    assert [m["content"] for m in page] == ["one", "two", "three", "fresh"]
    r = alice.post("/api/messages", json={"recipient_id": bob.user_id, "content": "after",
                                          "client_id": "c-after"})
    assert r.status_code == 201, r.text
    after = r.json()["id"]
    assert [m["id"] for m in _sync(bob)][-1] == after
    assert [m["id"] for m in _history(alice, bob.user_id)][-1] == after
    if pair.mroonga:
        found = alice.get("/api/search", params={"q": "copy"})
        assert found.status_code == 200 and found.json()["messages"] == []
    assert alice.get("/healthz").status_code == 200
