"""Accounts: registration, password checks with a brake on guessing, tokens and sessions."""
from __future__ import annotations

from typing import Any

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from flask_login import UserMixin
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from ..errors import BadRequest, Conflict, NotFound, RateLimited, Unauthorized
from ..extensions import db
from ..store import queries
from ..store.committer_sql import as_datetime, db_time
from ..store.counters import Counters, CountersDown
from ..store.tickets import Tickets
from ..store.models import AuthToken, User, utcnow
from . import validation
from .events import Events
from .i18n import N_
from .passwords import PasswordHasher
from .settings import ServiceSettings
from .shapes import iso

TICKET_TTL = 30  # seconds a WebSocket ticket is valid
CREDENTIAL_TOUCH_EVERY = timedelta(hours=1)
TOO_MANY_ATTEMPTS = N_(
    "too many login or sign-up attempts from your address; try again in a minute")
TOO_MANY_FAILURES = N_("too many failed logins; try again in 15 minutes")


@dataclass(frozen=True, slots=True)
class Credential:
    """A freshly issued secret: shown once to its owner, stored only as a hash."""

    token_id: int
    user_id: int
    secret: str



class Caller(UserMixin):
    """Who a request (or a socket) is: the user's id and name, and the credential that
    showed it. A plain object, not a ``User`` row: one was built for every API call and
    every connect, and an ORM instance costs more than the names it holds."""

    __slots__ = ("id", "username", "created_at", "auth_token_id", "auth_session_key",
                 "hello_rows")

    def __init__(self, id: int, username: str, created_at: Any) -> None:
        self.id, self.username, self.created_at = id, username, created_at
        self.auth_token_id: int | None = None
        self.auth_session_key: str | None = None
        self.hello_rows: list | None = None  # a socket's hello, read with its token

    def get_id(self) -> str:
        """Flask-Login keeps this in the session: the session's token, not the user id."""
        return self.auth_session_key or ""


def hash_secret(secret: str) -> str:
    """Tokens are random 256-bit strings, so a plain SHA-256 is enough to store them."""
    return hashlib.sha256(secret.encode()).hexdigest()


def session_key(cred: Credential) -> str:
    """What the Flask session keeps: the session row id and its secret."""
    return f"{cred.token_id}.{cred.secret}"


class Accounts:
    """Accounts and credentials; the login brake counts in Redis (or in this process)."""

    def __init__(self, settings: ServiceSettings, counters: Counters,
                 local_counters: Counters, events: Events, hasher: PasswordHasher,
                 tickets: Tickets) -> None:
        self.settings = settings
        self.tickets = tickets
        self.counters = counters
        # Stands in for Redis while it is down, so the limits still hold in this process.
        self.local_counters = local_counters
        self.events = events
        self.hasher = hasher

    def _count(self, key: str, ttl: int) -> int:
        """Add one to a counter (Redis, or this process while Redis is down)."""
        try:
            return self.counters.incr(key, ttl)
        except CountersDown:
            return self.local_counters.incr(key, ttl)

    def _value(self, key: str) -> int:
        try:
            return self.counters.get(key)
        except CountersDown:
            return self.local_counters.get(key)

    def _attempt(self, address: str | None) -> None:
        """Count a login or sign-up from ``address``: 429 past the per-minute limit.

        Every attempt costs a password hash, so one address cannot keep the hashing
        threads busy for everyone else.
        """
        limit = self.settings.auth_attempts_per_minute
        if address is None or limit <= 0:
            return
        if self._count("auth-attempts:" + address, 60) > limit:
            raise RateLimited(TOO_MANY_ATTEMPTS)

    def register(self, username: Any, password: Any, address: str | None = None) -> User:
        """Create an account; 409 when the name is taken (case-insensitively)."""
        name = validation.username(username)
        secret = validation.password(password)
        self._attempt(address)
        user = User(username=name, username_key=name.lower(),
                    password_hash=self.hasher.hash(secret))
        db.session.add(user)
        try:
            db.session.commit()
        except IntegrityError:
            db.session.rollback()
            raise Conflict(N_("that username is taken")) from None
        return user

    def authenticate(self, username: Any, password: Any, address: str | None = None) -> User:
        """The user for these credentials; 401 when wrong, 429 after too many failures.

        Failures are counted per (username, address) and per address, never per
        username alone: someone guessing elsewhere cannot lock a user out, while
        guessing from one address stays slow.
        """
        if type(username) is not str or type(password) is not str:
            raise BadRequest(N_("username and password must be strings"))
        if len(username) > 64 or len(password) > validation.PASSWORD_MAX:
            raise Unauthorized(N_("wrong username or password"))
        where = address or "-"
        pair_key = f"login-fail:{username.lower()}:{where}"
        address_key = f"login-fail-address:{where}"
        if (self._value(pair_key) >= self.settings.login_max_failures
                or self._value(address_key) >= self.settings.login_max_failures_per_address):
            raise RateLimited(TOO_MANY_FAILURES)
        self._attempt(address)
        user = db.session.scalar(select(User).where(User.username_key == username.lower()))
        ok = self.hasher.check(user.password_hash if user else None, password)
        if not user or not ok:
            self._count(pair_key, self.settings.login_window)
            self._count(address_key, self.settings.login_window)
            raise Unauthorized(N_("wrong username or password"))
        return user

    def issue_credential(self, user_id: int, kind: str, name: str = "") -> Credential:
        """Create a token (kind "api") or a browser session (kind "session")."""
        secret = secrets.token_urlsafe(32)
        row = AuthToken(user_id=user_id, token_hash=hash_secret(secret), kind=kind,
                        name=name[:64])
        db.session.add(row)
        db.session.commit()
        return Credential(row.id, user_id, secret)

    def resolve_secret(self, secret: str) -> tuple[Caller, int] | None:
        """The user (a detached copy: ids and names) and credential id for a live token.

        A credential unused for CHAT_SESSION_IDLE_DAYS is expired; using one moves its
        last use forward (written at most once an hour).
        """
        if not secret or len(secret) > 128:
            return None
        return self._live_owner(queries.token_owner(hash_secret(secret)))

    def resolve_secret_with_hello(self, secret: str) -> tuple[tuple[Caller, int] | None,
                                                             list | None]:
        """``resolve_secret``, and the user's hello rows read in the same round trip where
        the database allows (``None`` where it does not, or when the token is not live):
        a WebSocket opened with a token reads both at once."""
        if not secret or len(secret) > 128:
            return None, None
        row, hello = queries.token_owner_with_hello(hash_secret(secret))
        found = self._live_owner(row)
        return found, (hello if found is not None else None)

    def _live_owner(self, row: Any) -> tuple[Caller, int] | None:
        """The user and credential id of a token's row, unless revoked or idle too long."""
        if row is None or row.revoked_at is not None:
            return None
        now = utcnow()
        last_used = as_datetime(row.last_used_at or row.issued_at)
        if self.settings.idle_expiry and now - last_used > timedelta(
                seconds=self.settings.idle_expiry):
            return None
        if now - last_used > CREDENTIAL_TOUCH_EVERY:
            queries.touch_credential(row.token_id, db_time(now))
        return Caller(row.id, row.username, as_datetime(row.created_at)), row.token_id

    def issue_ticket(self, user_id: int, token_id: int) -> str:
        """A single-use secret that opens one WebSocket within TICKET_TTL seconds.

        For clients that cannot set headers on a WebSocket: no long-lived secret ever
        goes in a URL (where access logs would keep it).
        """
        ticket = secrets.token_urlsafe(24)
        self.tickets.put(hash_secret(ticket), f"{user_id}:{token_id}", TICKET_TTL)
        return ticket

    def redeem_ticket(self, ticket: str) -> tuple[Caller, int] | None:
        """The user and credential a ticket was issued for; a ticket works once."""
        if not ticket or len(ticket) > 64:
            return None
        found = self.tickets.take(hash_secret(ticket))
        if found is None:
            return None
        user_id, _, token_id = found.partition(":")
        row = queries.credential_owner(int(token_id))
        if row is None or row.revoked_at is not None or row.id != int(user_id):
            return None
        return Caller(row.id, row.username, as_datetime(row.created_at)), int(token_id)

    def resolve_session_key(self, key: str) -> tuple[Caller, int] | None:
        """The user for a session key kept in the cookie, or None once it was logged out."""
        token_id, _, secret = (key or "").partition(".")
        found = self.resolve_secret(secret)
        if found is None or str(found[1]) != token_id:
            return None
        return found

    def revoke(self, token_id: int, user_id: int) -> None:
        """Revoke one of the user's credentials and close the sockets opened with it."""
        row = db.session.get(AuthToken, token_id)
        if row is None or row.user_id != user_id:
            raise NotFound(N_("no such token"))
        if row.revoked_at is None:
            row.revoked_at = utcnow()
            self.events.close_credential_after_commit(user_id, token_id)
            db.session.commit()

    @staticmethod
    def list_tokens(user_id: int) -> list[dict]:
        """The user's live API tokens (never their secrets)."""
        rows = db.session.scalars(
            select(AuthToken).where(AuthToken.user_id == user_id, AuthToken.kind == "api",
                                    AuthToken.revoked_at.is_(None)).order_by(AuthToken.id))
        return [{"id": r.id, "name": r.name, "created_at": iso(r.created_at)} for r in rows]

    @staticmethod
    def list_sessions(user_id: int) -> list[dict]:
        """The user's live browser sessions: where (the browser's name), since, last used."""
        rows = db.session.scalars(
            select(AuthToken).where(AuthToken.user_id == user_id, AuthToken.kind == "session",
                                    AuthToken.revoked_at.is_(None)).order_by(AuthToken.id.desc()))
        return [{"id": r.id, "name": r.name, "created_at": iso(r.created_at),
                 "last_used_at": iso(r.last_used_at or r.created_at)} for r in rows]

    @staticmethod
    def revoked_among(token_ids: list[int]) -> set[int]:
        """Which of these credential ids are revoked (or gone): their sockets must close."""
        if not token_ids:
            return set()
        live = set(db.session.scalars(select(AuthToken.id).where(
            AuthToken.id.in_(token_ids), AuthToken.revoked_at.is_(None))))
        return set(token_ids) - live

    def change_password(self, user: User | Caller, current: Any, new: Any,
                        address: str | None = None) -> None:
        """Change a password and end every other session and token of the user.

        The current password is checked like a login, brake included, so a stolen
        token cannot be used to guess it at speed.
        """
        if type(current) is not str:
            raise BadRequest(N_("current_password must be a string"))
        stored = self.authenticate(user.username, current, address)
        stored.password_hash = self.hasher.hash(validation.password(new))
        others = list(db.session.scalars(select(AuthToken.id).where(
            AuthToken.user_id == user.id, AuthToken.revoked_at.is_(None),
            AuthToken.id != (user.auth_token_id or 0))))
        if others:
            db.session.execute(update(AuthToken).where(AuthToken.id.in_(others))
                               .values(revoked_at=utcnow()))
            for token_id in others:
                self.events.close_credential_after_commit(user.id, token_id)
        db.session.commit()
