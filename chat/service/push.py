"""Web Push (docs/protocol.md, Attention; RFC 8030, 8291, 8292): subscriptions, and telling users with
no live connection about new messages.

Delivery is off the send path: the committer hands each committed batch to
``enqueue``, which only appends to a bounded queue (dropping past it rather than
waiting). One greenlet takes the queue in order and decides who should hear of
each message (subscribed, no live socket anywhere, not muted unless mentioned)
in a few queries per batch; a bounded pool of greenlets posts the encrypted
payloads with pywebpush (a slow push service holds a sender, never the committer).
"""
from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from time import monotonic
from typing import Any

import gevent
import orjson
import requests
from gevent.pool import Pool
from gevent.queue import Full, Queue
from sqlalchemy import bindparam, delete, func, select, text

from ..errors import BadRequest
from ..extensions import db
from ..store.models import PushSubscription, utcnow
from ..store.presence import PresenceStore
from .i18n import N_
from .push_keys import check_endpoint, check_key, endpoint_problem, load_vapid, public_key_b64

log = logging.getLogger("chat.push")

QUEUE_MAX = 10_000  # messages waiting to be looked at; past it new ones are not pushed
SENDERS = 8  # pushes posted at once
SEND_TIMEOUT = 10
EXCERPT = 100  # code points of the message in a push
PER_USER = 20  # subscriptions kept per user: a new one past it replaces the oldest
NOBODY_RECHECK = 10.0  # seconds: with no subscription at all, look again only this often

_USERS = bindparam("users", expanding=True)
_SUBSCRIBERS = text(
    "SELECT s.id, s.user_id, s.endpoint, s.p256dh, s.auth, u.push_previews FROM "
    "push_subscriptions s JOIN users u ON u.id = s.user_id WHERE s.user_id IN :users"
).bindparams(_USERS)
_MEMBERS = text("SELECT DISTINCT m.group_id, m.user_id FROM memberships m "
                "JOIN push_subscriptions s ON s.user_id = m.user_id WHERE m.group_id IN :groups"
                ).bindparams(bindparam("groups", expanding=True))
_MUTED = text("SELECT user_id, conv_key FROM read_cursors WHERE muted AND user_id IN :users"
              ).bindparams(_USERS)


def endpoint_hash(endpoint: str) -> str:
    """The key a subscription is stored under (endpoints are too long to index)."""
    return hashlib.sha256(endpoint.encode()).hexdigest()


def _conv_key(row: Any) -> str:
    if row.group_id is not None:
        return f"g:{row.group_id}"
    lo, hi = sorted((row.sender_id, row.recipient_id))
    return f"p:{lo}:{hi}"


def push_payload(row: Any, previews: bool) -> bytes:
    """What one push carries (encrypted): the message's id, conversation, sender, excerpt."""
    if row.group_id is not None:
        conversation = {"kind": "group", "group_id": row.group_id}
    else:
        conversation = {"kind": "private", "user_id": row.sender_id}
    return orjson.dumps({"kind": "message", "id": row.id, "conversation": conversation,
                         "sender": {"id": row.sender_id, "username": row.sender_name},
                         "excerpt": (row.content or "")[:EXCERPT] if previews else ""})


class Push:
    """Subscriptions of the API, and the pushes of new messages."""

    def __init__(self, app: Any, presence: PresenceStore, vapid_secret: str | None,
                 subject: str, testing: bool, keep_key_in: Path) -> None:
        self.app = app
        self.keep_key_in = keep_key_in
        self.presence = presence
        self.subject = subject
        self.testing = testing
        self._vapid_secret = vapid_secret
        self._vapid = None
        self.queue: Queue = Queue(QUEUE_MAX)
        self.worker: gevent.Greenlet | None = None
        self.senders = Pool(SENDERS)
        self._nobody_until = 0.0
        self.sent = 0

    @property
    def vapid(self):
        """The VAPID key pair (loaded, or generated for the development server, on first use)."""
        if self._vapid is None:
            self._vapid = load_vapid(self._vapid_secret, self.keep_key_in)
        return self._vapid

    def public_key(self) -> dict:
        """``{"key"}``: the VAPID public key, base64url, for ``PushManager.subscribe``."""
        return {"key": public_key_b64(self.vapid)}

    def subscribe(self, user_id: int, endpoint: Any, keys: Any) -> dict:
        """Keep a browser's subscription (a known endpoint moves to this user)."""
        if not isinstance(keys, dict):
            raise BadRequest(N_("keys must be an object with p256dh and auth"))
        p256dh = check_key(keys.get("p256dh"), "keys.p256dh", 65)
        auth = check_key(keys.get("auth"), "keys.auth", 16)
        url = check_endpoint(endpoint, self.testing)
        digest = endpoint_hash(url)
        db.session.execute(delete(PushSubscription).where(PushSubscription.endpoint_hash
                                                          == digest))
        held = list(db.session.scalars(select(PushSubscription.id).where(
            PushSubscription.user_id == user_id).order_by(PushSubscription.id)))
        if len(held) >= PER_USER:
            db.session.execute(delete(PushSubscription).where(
                PushSubscription.id.in_(held[:len(held) - PER_USER + 1])))
        sub = PushSubscription(user_id=user_id, endpoint_hash=digest, endpoint=url,
                               p256dh=p256dh, auth=auth, created_at=utcnow())
        db.session.add(sub)
        db.session.commit()
        self._nobody_until = 0.0
        return {"id": sub.id, "endpoint": url}

    @staticmethod
    def unsubscribe(user_id: int, endpoint: Any) -> dict:
        """Forget one of the user's subscriptions (idempotent)."""
        if type(endpoint) is not str:
            raise BadRequest(N_("endpoint is required"))
        result = db.session.execute(delete(PushSubscription).where(
            PushSubscription.user_id == user_id,
            PushSubscription.endpoint_hash == endpoint_hash(endpoint)))
        db.session.commit()
        return {"removed": bool(result.rowcount)}

    @staticmethod
    def list_mine(user_id: int) -> list[dict]:
        """The user's subscriptions (id and endpoint), oldest first."""
        rows = db.session.execute(select(PushSubscription.id, PushSubscription.endpoint).where(
            PushSubscription.user_id == user_id).order_by(PushSubscription.id))
        return [{"id": i, "endpoint": e} for i, e in rows]

    # -- delivery ---------------------------------------------------------------------

    def enqueue(self, rows: list) -> None:
        """New committed messages (the committer's rows); returns at once, never blocks."""
        if not rows or monotonic() < self._nobody_until:
            return
        try:
            self.queue.put_nowait(list(rows))
        except Full:
            log.warning("event=push_queue_full dropped=%s", len(rows))
            return
        if self.worker is None:
            self.worker = gevent.spawn(self._work)

    def _work(self) -> None:
        while True:
            rows = self.queue.get()
            try:
                with self.app.app_context():
                    try:
                        self._deliver(rows)
                    finally:
                        db.session.remove()
            except Exception:
                log.exception("event=push_failed")

    def _deliver(self, rows: list) -> None:
        """Push each message to its recipients who have no live socket."""
        if not db.session.scalar(select(func.count()).select_from(PushSubscription)):
            self._nobody_until = monotonic() + NOBODY_RECHECK
            return
        targets: dict[int, set[int]] = {}  # message id -> users to tell
        groups = {r.group_id for r in rows if r.group_id is not None}
        members: dict[int, set[int]] = {}
        if groups:
            for gid, uid in db.session.execute(_MEMBERS, {"groups": sorted(groups)}):
                members.setdefault(gid, set()).add(uid)
        for r in rows:
            if r.group_id is not None:
                targets[r.id] = members.get(r.group_id, set()) - {r.sender_id}
            elif r.recipient_id != r.sender_id:
                targets[r.id] = {r.recipient_id}
        users = set().union(*targets.values()) if targets else set()
        users -= self.presence.online(sorted(users))
        if not users:
            return
        params = {"users": sorted(users)}
        muted = set(map(tuple, db.session.execute(_MUTED, params).all()))
        subs: dict[int, list] = {}
        for sub in db.session.execute(_SUBSCRIBERS, params):
            subs.setdefault(sub.user_id, []).append(sub)
        for r in rows:
            mentioned = set(orjson.loads(r.mentions)) if r.mentions else set()
            for uid in targets.get(r.id, ()):
                if uid not in subs:
                    continue
                if (uid, _conv_key(r)) in muted and not (r.mention_all or uid in mentioned):
                    continue
                for sub in subs[uid]:
                    self.senders.spawn(self._send, sub, push_payload(r, bool(sub.push_previews)))

    def _send(self, sub: Any, payload: bytes) -> None:
        """Post one encrypted push (in its own app context)."""
        try:
            with self.app.app_context():
                try:
                    self._post(sub, payload)
                finally:
                    db.session.remove()
        except Exception:
            log.exception("event=push_failed subscription=%s", sub.id)

    def _post(self, sub: Any, payload: bytes) -> None:
        """Post one encrypted push; a subscription that answers 404 or 410 is removed."""
        from pywebpush import WebPushException, webpush

        if endpoint_problem(sub.endpoint, self.testing) is not None:  # resolved again now
            log.warning("event=push_endpoint_refused subscription=%s", sub.id)
            return
        session = requests.Session()
        session.trust_env = False  # no proxies from the environment
        session.max_redirects = 0  # a redirect could lead anywhere
        try:
            webpush({"endpoint": sub.endpoint, "keys": {"p256dh": sub.p256dh, "auth": sub.auth}},
                    payload.decode(), vapid_private_key=self.vapid,
                    vapid_claims={"sub": self.subject}, ttl=24 * 3600, timeout=SEND_TIMEOUT,
                    requests_session=session)
            self.sent += 1
        except WebPushException as exc:
            status = getattr(exc.response, "status_code", None)
            if status in (404, 410):
                db.session.execute(delete(PushSubscription).where(PushSubscription.id
                                                                  == sub.id))
                db.session.commit()
                log.info("event=push_subscription_gone subscription=%s", sub.id)
            else:
                log.warning("event=push_refused subscription=%s status=%s", sub.id, status)
        except requests.RequestException as exc:
            log.warning("event=push_unreachable subscription=%s error=%s", sub.id,
                        type(exc).__name__)
        finally:
            session.close()
