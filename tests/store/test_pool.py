"""The pool pings a connection before use only when it sat idle (chat.store.pool)."""
from __future__ import annotations

import time

import pytest
import sqlalchemy
from sqlalchemy.exc import OperationalError

from chat.store.pool import ping_when_idle


@pytest.fixture
def engine(mysql_url):
    engine = sqlalchemy.create_engine(mysql_url, pool_size=1, max_overflow=0)
    ping_when_idle(engine, idle=0.3)
    yield engine
    engine.dispose()


def connection_id(engine) -> int:
    with engine.connect() as conn:
        return conn.exec_driver_sql("SELECT CONNECTION_ID()").scalar()


def kill(mysql_url: str, thread_id: int) -> None:
    admin = sqlalchemy.create_engine(mysql_url, poolclass=sqlalchemy.pool.NullPool)
    with admin.connect() as conn:
        conn.exec_driver_sql(f"KILL CONNECTION {int(thread_id)}")
    admin.dispose()


def test_a_connection_cut_while_idle_is_replaced_before_the_read_sees_it(engine, mysql_url):
    first = connection_id(engine)
    kill(mysql_url, first)  # a restart or an idle timeout cuts it in the pool
    time.sleep(0.4)
    second = connection_id(engine)  # no error: the ping found it dead, a new one answered
    assert second != first


def test_a_connection_in_use_a_moment_ago_is_not_pinged(engine, mysql_url):
    # The point of the change: no round trip at checkout on a busy pool. The cost is
    # that a connection cut within the idle time fails its statement once; SQLAlchemy
    # then drops it, and the next checkout gets a new one.
    first = connection_id(engine)
    kill(mysql_url, first)
    with pytest.raises(OperationalError):
        connection_id(engine)
    assert connection_id(engine) != first
