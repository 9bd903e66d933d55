"""The Redis clients' pools (``chat.store.redis_client``): a connection handed out is
checked cheaply, and one the server closed is replaced."""
from __future__ import annotations

import time

import redis

from chat.store.redis_client import make_client
from tests.support import REDIS_URL


def test_a_connection_the_server_closed_is_replaced_at_checkout():
    """Found closed when the pool hands it out (not by a failed command and a retry)."""
    client = make_client(REDIS_URL, max_connections=1)
    first = client.client_id()  # the pool's one connection, back in the pool now
    redis.Redis.from_url(REDIS_URL).client_kill_filter(_id=first)
    time.sleep(0.05)  # the server's FIN reaches this side
    pool = client.connection_pool
    conn = pool.get_connection()
    try:
        conn.send_command("CLIENT", "ID")
        assert conn.read_response() != first
    finally:
        pool.release(conn)


def test_an_idle_connection_is_handed_out_again():
    client = make_client(REDIS_URL, max_connections=1)
    first = client.client_id()
    assert [client.client_id() for _ in range(3)] == [first] * 3
