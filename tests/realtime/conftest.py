"""Fixtures of the realtime tests: the in-process app (``tests.inprocess``) where a test
needs services behind its socket, and a registry with real connections."""
import pytest

from chat.realtime.registry import Registry
from tests.inprocess import app, hasher, module_app, runtime, services  # noqa: F401 (fixtures)
from tests.wire import open_connection


@pytest.fixture
def registry():
    """A registry that remembers which channels it asked the bus for."""
    reg = Registry()
    reg.added, reg.removed = [], []
    reg.on_channel_added = reg.added.append
    reg.on_channel_removed = reg.removed.append
    return reg


@pytest.fixture
def open_conn(registry):
    """Open connections into the registry; (Connection, Peer); all closed after the test."""
    opened = []

    def _open(user_id: int, groups=(), auth_id=None, add=True, **kw):
        conn, peer = open_connection(user_id, auth_id=auth_id, budget=registry.budget, **kw)
        if add:
            registry.add(conn, groups)
        opened.append((conn, peer))
        return conn, peer
    yield _open
    for conn, peer in opened:
        conn.discard()
        peer.close()
