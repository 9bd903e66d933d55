"""MariaDB down: sends get 503 and no ack, nothing half written, recovery without restart."""
from __future__ import annotations

import time

import pytest
import sqlalchemy

from tests.services import PrivateMariaDB
from tests.support import WS, Api, ServerProcess, migrate, need


@pytest.fixture
def outage_setup():
    need(PrivateMariaDB.available(), "mariadbd (to start a private MariaDB)")
    mariadb = PrivateMariaDB().start()
    url = mariadb.create_database()
    migrate(url)
    server = ServerProcess({"DATABASE_URL": url, "REDIS_URL": ""}).start()
    yield mariadb, url, server
    server.stop()
    mariadb.destroy()


def count_rows(url: str) -> int:
    engine = sqlalchemy.create_engine(url)
    with engine.connect() as conn:
        n = conn.exec_driver_sql("SELECT COUNT(*) FROM messages").scalar()
    engine.dispose()
    return n


def test_sends_during_an_outage_get_503_and_resume_by_themselves(outage_setup):
    mariadb, url, server = outage_setup
    alice, bob = Api.new_user(server.base, "a"), Api.new_user(server.base, "b")
    alice.follow_each_other(bob)
    a, b = WS(server.ws_url, alice.token), WS(server.ws_url, bob.token)
    first = a.request({"type": 1, "recipient_id": bob.user_id, "content": "before",
                       "client_id": "m1"}, "ack")
    assert b.expect("message")["id"] == first["id"]

    mariadb.stop()
    err = a.request({"type": 1, "recipient_id": bob.user_id, "content": "during",
                     "client_id": "m2"}, "error", timeout=30)
    assert (err["code"], err["error"], err["ref"]) == (503, "server_busy", "m2")
    a.nothing("ack")
    b.nothing("message")
    http = alice.post("/api/messages", json={"recipient_id": bob.user_id, "content": "http",
                                             "client_id": "h1"})
    assert http.status_code == 503 and http.json()["error"]["code"] == "server_busy"
    assert a.request({"type": 3, "recipient_id": bob.user_id}, "error")["code"] == 503
    assert a.request({"type": 0}, "pong")  # the connection stays up
    assert alice.get("/healthz").status_code == 503

    mariadb.start()
    deadline = time.time() + 60
    ack = None
    while time.time() < deadline and ack is None:
        a.send({"type": 1, "recipient_id": bob.user_id, "content": "during", "client_id": "m2"})
        reply = a.recv(timeout=30)
        while reply["kind"] not in ("ack", "error"):
            reply = a.recv(timeout=30)
        if reply["kind"] == "ack":
            ack = reply
        else:
            assert reply["code"] == 503
            time.sleep(0.5)
    assert ack is not None, "the server did not recover"
    assert b.expect("message", timeout=10)["id"] == ack["id"]
    # A second retry of the same client_id is answered from the store: no duplicate.
    again = a.request({"type": 1, "recipient_id": bob.user_id, "content": "during",
                       "client_id": "m2"}, "ack")
    assert again["id"] == ack["id"]
    http = alice.post("/api/messages", json={"recipient_id": bob.user_id, "content": "http",
                                             "client_id": "h1"})
    assert http.status_code == 201
    assert count_rows(url) == 3
    assert alice.get("/healthz").status_code == 200
    a.close(), b.close()
