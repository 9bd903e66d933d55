"""Accounts (``chat.service.accounts``): registration, logins and their brake, credentials."""
from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select

from chat.errors import BadRequest, Conflict, NotFound, RateLimited, Unauthorized
from chat.extensions import db
from chat.service.accounts import Accounts, hash_secret, session_key
from chat.service.settings import ServiceSettings
from chat.store.counters import MemoryCounters, RedisCounters
from chat.store.tickets import MemoryTickets
from chat.store.models import AuthToken, User, utcnow
from tests.inprocess import add_user, username
from tests.support import PASSWORD, REDIS_URL, free_port, unique_name


def make_accounts(services, counters=None, local=None, tickets=None, **settings) -> Accounts:
    """Accounts with small limits: 3 failures per (name, address), 5 per address."""
    limits = {"login_max_failures": 3, "login_max_failures_per_address": 5,
              "login_window": 60, "auth_attempts_per_minute": 0, **settings}
    return Accounts(ServiceSettings(**limits), counters or MemoryCounters(),
                    local or MemoryCounters(), services.events, services.accounts.hasher,
                    tickets or MemoryTickets())


@pytest.fixture
def accounts(services) -> Accounts:
    """Accounts counting in this process, with small limits."""
    return make_accounts(services)


def closes(published) -> list[tuple[str, int]]:
    """The credential-closing events published so far."""
    return [(e.channel, e.close_auth) for e in published.events if e.close_auth is not None]


# -- registration ---------------------------------------------------------------------------


def test_register_keeps_a_hash_never_the_password(accounts):
    name = unique_name("Reg")
    user = accounts.register(name, PASSWORD)
    stored = db.session.get(User, user.id)
    assert stored.username == name and stored.username_key == name.lower()
    assert PASSWORD not in stored.password_hash


def test_a_name_is_taken_whatever_its_case(accounts):
    name = unique_name("Case")
    accounts.register(name, PASSWORD)
    with pytest.raises(Conflict):
        accounts.register(name.upper(), PASSWORD)
    assert db.session.scalars(select(User).where(User.username_key == name.lower())).all()


@pytest.mark.parametrize("name, password", [("ab", PASSWORD), ("bad name", PASSWORD),
                                            (None, PASSWORD), ("fine_name", "short"),
                                            ("fine_name", None)])
def test_invalid_registrations_are_400_and_store_nothing(accounts, name, password):
    before = db.session.scalar(select(db.func.count()).select_from(User))
    with pytest.raises(BadRequest):
        accounts.register(name, password)
    assert db.session.scalar(select(db.func.count()).select_from(User)) == before


# -- logging in, and the brake on guessing -----------------------------------------------------


def test_authenticate_finds_the_user_case_insensitively(accounts):
    uid = add_user("Login")
    assert accounts.authenticate(username(uid).upper(), PASSWORD).id == uid


@pytest.mark.parametrize("who, password", [("known", "wrong-password"), ("nobody", PASSWORD),
                                           ("long", PASSWORD)])
def test_wrong_credentials_are_401(accounts, who, password):
    name = {"known": username(add_user()), "nobody": unique_name("ghost"),
            "long": "x" * 65}[who]
    with pytest.raises(Unauthorized):
        accounts.authenticate(name, password)


def test_credentials_that_are_not_strings_are_400(accounts):
    with pytest.raises(BadRequest):
        accounts.authenticate(["admin"], PASSWORD)
    with pytest.raises(BadRequest):
        accounts.authenticate("admin", 12345678)


def fail(accounts: Accounts, name: str, times: int, address: str | None = "10.0.0.1") -> None:
    for _ in range(times):
        with pytest.raises(Unauthorized):
            accounts.authenticate(name, "guess-guess", address)


def test_after_too_many_failures_that_address_is_braked_for_that_name(accounts):
    victim, bystander = username(add_user()), username(add_user())
    fail(accounts, victim, 3)
    with pytest.raises(RateLimited):
        accounts.authenticate(victim.upper(), PASSWORD, "10.0.0.1")  # even the right password
    assert accounts.authenticate(victim, PASSWORD, "10.0.0.2")  # nobody locks a user out
    assert accounts.authenticate(bystander, PASSWORD, "10.0.0.1")


def test_guessing_many_names_from_one_address_is_braked_too(accounts):
    names = [username(add_user()) for _ in range(3)]
    fail(accounts, names[0], 2)
    fail(accounts, names[1], 2)
    fail(accounts, names[2], 1)
    with pytest.raises(RateLimited):  # five failures from the address, whatever the names
        accounts.authenticate(names[2], PASSWORD, "10.0.0.1")
    assert accounts.authenticate(names[2], PASSWORD, "10.0.0.9")


def test_attempts_per_minute_are_limited_per_address(services):
    accounts = make_accounts(services, auth_attempts_per_minute=2)
    name = username(add_user())
    for _ in range(2):
        assert accounts.authenticate(name, PASSWORD, "10.0.0.1")
    with pytest.raises(RateLimited):
        accounts.authenticate(name, PASSWORD, "10.0.0.1")
    with pytest.raises(RateLimited):
        accounts.register(unique_name("late"), PASSWORD, "10.0.0.1")  # sign-ups count too
    assert accounts.authenticate(name, PASSWORD, "10.0.0.2")


def test_the_brake_is_shared_by_every_process_through_redis(services, redis_prefix):
    prefix = f"{redis_prefix}brake-{uuid.uuid4().hex[:6]}:"
    one, two = (make_accounts(services, counters=RedisCounters(REDIS_URL, prefix))
                for _ in range(2))
    name = username(add_user())
    fail(one, name, 1)
    fail(two, name, 1)
    fail(one, name, 1)
    with pytest.raises(RateLimited):
        two.authenticate(name, PASSWORD, "10.0.0.1")


def test_with_redis_down_the_brake_still_holds_in_this_process(services):
    dead = RedisCounters(f"redis://127.0.0.1:{free_port()}/0", "dead:")
    accounts = make_accounts(services, counters=dead)
    name = username(add_user())
    fail(accounts, name, 3)
    with pytest.raises(RateLimited):
        accounts.authenticate(name, PASSWORD, "10.0.0.1")


# -- credentials ------------------------------------------------------------------------------


def test_a_credential_resolves_to_its_user_until_revoked(accounts, published):
    uid = add_user()
    cred = accounts.issue_credential(uid, "api", "laptop")
    user, token_id = accounts.resolve_secret(cred.secret)
    assert (user.id, user.username, token_id) == (uid, username(uid), cred.token_id)
    assert db.session.get(AuthToken, cred.token_id).token_hash == hash_secret(cred.secret)
    accounts.revoke(cred.token_id, uid)
    assert accounts.resolve_secret(cred.secret) is None
    assert closes(published) == [(f"user:{uid}", cred.token_id)]
    accounts.revoke(cred.token_id, uid)  # again: nothing more to close
    assert len(closes(published)) == 1


@pytest.mark.parametrize("secret", ["", "not-a-token", "x" * 129])
def test_unknown_secrets_resolve_to_nothing(accounts, secret):
    assert accounts.resolve_secret(secret) is None
    assert accounts.resolve_secret_with_hello(secret) == (None, None)


def test_a_socket_token_resolves_as_any_token_does_and_brings_no_hello_once_revoked(accounts):
    uid = add_user()
    cred = accounts.issue_credential(uid, "api")
    (user, token_id), _ = accounts.resolve_secret_with_hello(cred.secret)
    assert (user.id, token_id) == (uid, cred.token_id)
    accounts.revoke(cred.token_id, uid)
    assert accounts.resolve_secret_with_hello(cred.secret) == (None, None)


def test_a_session_key_must_name_its_own_row(accounts):
    uid = add_user()
    one = accounts.issue_credential(uid, "session")
    two = accounts.issue_credential(uid, "session")
    assert accounts.resolve_session_key(session_key(one))[1] == one.token_id
    assert accounts.resolve_session_key(f"{two.token_id}.{one.secret}") is None
    assert accounts.resolve_session_key("") is None
    assert accounts.resolve_session_key("garbage") is None


def test_nobody_revokes_someone_elses_credential(accounts, published):
    owner, thief = add_user(), add_user()
    cred = accounts.issue_credential(owner, "api")
    with pytest.raises(NotFound):
        accounts.revoke(cred.token_id, thief)
    with pytest.raises(NotFound):
        accounts.revoke(10**9, owner)
    assert accounts.resolve_secret(cred.secret) is not None and closes(published) == []


def test_list_tokens_shows_live_api_tokens_without_secrets(accounts):
    uid = add_user()
    kept = accounts.issue_credential(uid, "api", "ci")
    gone = accounts.issue_credential(uid, "api", "old")
    accounts.issue_credential(uid, "session")
    accounts.revoke(gone.token_id, uid)
    tokens = accounts.list_tokens(uid)
    assert [(t["id"], t["name"]) for t in tokens] == [(kept.token_id, "ci")]
    assert kept.secret not in repr(tokens)


def test_revoked_among_names_the_revoked_and_the_missing(accounts):
    uid = add_user()
    live, dead = accounts.issue_credential(uid, "api"), accounts.issue_credential(uid, "api")
    accounts.revoke(dead.token_id, uid)
    assert accounts.revoked_among([live.token_id, dead.token_id, 10**9]) == {dead.token_id,
                                                                             10**9}
    assert accounts.revoked_among([]) == set()


def test_changing_the_password_ends_every_other_credential(accounts, published):
    uid = add_user()
    current = accounts.issue_credential(uid, "session")
    other_session = accounts.issue_credential(uid, "session")
    script = accounts.issue_credential(uid, "api")
    user, token_id = accounts.resolve_secret(current.secret)
    user.auth_token_id = token_id
    accounts.change_password(user, PASSWORD, "a-new-password")
    assert accounts.resolve_secret(current.secret) is not None
    assert accounts.resolve_secret(other_session.secret) is None
    assert accounts.resolve_secret(script.secret) is None
    assert sorted(t for _, t in closes(published)) == sorted([other_session.token_id,
                                                              script.token_id])
    assert accounts.authenticate(username(uid), "a-new-password").id == uid


def test_a_wrong_current_password_changes_nothing(accounts, published):
    uid = add_user()
    other = accounts.issue_credential(uid, "api")
    user, _ = accounts.resolve_secret(other.secret)
    with pytest.raises(Unauthorized):
        accounts.change_password(user, "not-my-password", "short")  # 401 before the new one's 400
    with pytest.raises(BadRequest):
        accounts.change_password(user, PASSWORD, "short")
    assert accounts.resolve_secret(other.secret) is not None and closes(published) == []
    assert accounts.authenticate(username(uid), PASSWORD).id == uid


# -- WebSocket tickets and idle credentials ---------------------------------------------------


def test_a_ticket_opens_one_socket_once(accounts):
    uid = add_user()
    cred = accounts.issue_credential(uid, "session")
    ticket = accounts.issue_ticket(uid, cred.token_id)
    assert cred.secret not in ticket
    user, token_id = accounts.redeem_ticket(ticket)
    assert (user.id, user.username, token_id) == (uid, username(uid), cred.token_id)
    assert accounts.redeem_ticket(ticket) is None  # single use
    for bad in ("", "x" * 65, "never-issued"):
        assert accounts.redeem_ticket(bad) is None


def test_a_ticket_dies_with_its_credential(accounts):
    uid = add_user()
    cred = accounts.issue_credential(uid, "session")
    ticket = accounts.issue_ticket(uid, cred.token_id)
    accounts.revoke(cred.token_id, uid)
    assert accounts.redeem_ticket(ticket) is None


def last_used(token_id: int, ago: timedelta | None = None):
    """Set (or read) a credential's last use."""
    db.session.remove()
    row = db.session.get(AuthToken, token_id)
    if ago is not None:
        row.last_used_at = utcnow() - ago
        db.session.commit()
    return row.last_used_at


def test_a_credential_unused_too_long_expires(services):
    accounts = make_accounts(services, idle_expiry=30 * 24 * 3600)
    uid = add_user()
    cred = accounts.issue_credential(uid, "api")
    last_used(cred.token_id, timedelta(days=29))
    assert accounts.resolve_secret(cred.secret) is not None
    last_used(cred.token_id, timedelta(days=31))
    assert accounts.resolve_secret(cred.secret) is None
    assert make_accounts(services, idle_expiry=0).resolve_secret(cred.secret) is not None


def test_using_a_credential_moves_its_last_use_at_most_hourly(accounts):
    uid = add_user()
    cred = accounts.issue_credential(uid, "api")
    recently = last_used(cred.token_id, timedelta(minutes=10))
    accounts.resolve_secret(cred.secret)
    assert last_used(cred.token_id) == recently  # no write for every request
    last_used(cred.token_id, timedelta(hours=2))
    accounts.resolve_secret(cred.secret)
    assert utcnow() - last_used(cred.token_id) < timedelta(minutes=1)
