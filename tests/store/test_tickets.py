"""Single-use secrets with a short life (``chat.store.tickets``): the in-process twin and
Redis behind one interface, one test body for both."""
from __future__ import annotations

import time
import uuid

import pytest

from chat.store.tickets import MemoryTickets, RedisTickets, make_tickets
from tests.support import REDIS_URL


@pytest.fixture(params=["memory", "redis"])
def tickets(request):
    if request.param == "memory":
        return MemoryTickets()
    prefix = request.getfixturevalue("redis_prefix")
    return RedisTickets(REDIS_URL, f"{prefix}tickets-{uuid.uuid4().hex[:6]}:")


def test_a_ticket_is_taken_once(tickets):
    tickets.put("k", "7:42", 30)
    assert tickets.take("k") == "7:42"
    assert tickets.take("k") is None
    assert tickets.take("never") is None


def test_a_ticket_expires(tickets):
    tickets.put("short", "a", 1)
    tickets.put("long", "b", 30)
    time.sleep(1.2)
    assert (tickets.take("short"), tickets.take("long")) == (None, "b")


def test_any_process_can_redeem_a_ticket_through_redis(redis_prefix):
    prefix = f"{redis_prefix}tickets-{uuid.uuid4().hex[:6]}:"
    one, two = RedisTickets(REDIS_URL, prefix), RedisTickets(REDIS_URL, prefix)
    one.put("k", "v", 30)
    assert two.take("k") == "v" and one.take("k") is None


def test_make_tickets_picks_redis_only_when_configured():
    assert isinstance(make_tickets(None, "p:"), MemoryTickets)
    assert isinstance(make_tickets(REDIS_URL, "p:"), RedisTickets)
