"""GET /ws: authenticate and check the origin before the upgrade, then serve frames."""
from __future__ import annotations

import logging

import gevent
import orjson
from flask import Blueprint, current_app, g, request
from flask_login import current_user
from gevent.event import Event as GeventEvent

from . import validation
from .auth import bearer_token
from .errors import (DATABASE_UNAVAILABLE, BadRequest, ChatError, Forbidden, RateLimited,
                     ServerBusy, Unauthorized)
from .extensions import db
from .registry import Connection
from .service import messages, runtime
from .service.sending import Outgoing
from .transport import CLOSE_TRY_AGAIN, ChatSock, ChatSocket, ProtocolError

log = logging.getLogger("chat.ws")

bp = Blueprint("ws", __name__)
sock = ChatSock()

_DEFAULT_PORTS = {"http": "80", "https": "443", "ws": "80", "wss": "443"}


def _normalise_origin(origin: str) -> str:
    """scheme://host[:port] in lower case, without a default port."""
    scheme, sep, rest = origin.strip().lower().partition("://")
    if not sep:
        return ""
    host = rest.split("/", 1)[0]
    if host.endswith(":" + _DEFAULT_PORTS.get(scheme, "")):
        host = host.rsplit(":", 1)[0]
    return f"{scheme}://{host}"


def origin_allowed(origin: str) -> bool:
    """The request's own origin, or one listed in CHAT_ALLOWED_ORIGINS; never "null"."""
    wanted = _normalise_origin(origin)
    if not wanted or wanted == "null":
        return False
    own = _normalise_origin(f"{request.scheme}://{request.host}")
    if wanted == own:
        return True
    listed = current_app.config.get("CHAT_ALLOWED_ORIGINS") or ""
    return wanted in {_normalise_origin(o) for o in listed.split(",") if o.strip()}


@bp.before_request
def guard_upgrade():
    """401 without identity, 403 from a foreign origin: before flask-sock accepts anything."""
    origin = request.headers.get("Origin")
    if origin is not None and not origin_allowed(origin):
        log.info("event=ws_origin_refused origin=%r", origin[:100])
        raise Forbidden("origin not allowed")
    if origin is None and bearer_token() is None:
        # Not a browser: only a token identifies it (a bare cookie could be replayed).
        raise Unauthorized("a token is required")
    if not current_user.is_authenticated:
        raise Unauthorized()


class FrameHandler:
    """Reads one connection's frames and answers them; one per connection."""

    __slots__ = ("conn", "chat", "user_id", "max_content", "max_inflight", "inflight",
                 "slot_free")

    def __init__(self, conn: Connection, chat) -> None:
        self.conn = conn
        self.chat = chat
        self.user_id = conn.user_id
        cfg = chat.app.config
        self.max_content = cfg["CHAT_MAX_CONTENT"]
        self.max_inflight = cfg["CHAT_MAX_INFLIGHT"]
        self.inflight = 0
        self.slot_free: GeventEvent | None = None  # made when back-pressure first bites

    def send(self, frame: dict) -> None:
        """Queue one frame for this connection."""
        self.conn.send_payload(orjson.dumps(frame))

    def error(self, err: ChatError, ref=None) -> None:
        """Answer with an error frame; the connection goes on."""
        self.chat.committer.stats.error(err.code)
        self.send(err.to_frame(ref))

    def handle(self, raw: str | bytes) -> None:
        """Parse, rate-limit and route one frame."""
        if isinstance(raw, (bytes, bytearray)):
            self._count_and(None, lambda: self.error(BadRequest("binary frames are not accepted")))
            return
        try:
            frame = orjson.loads(raw)
        except orjson.JSONDecodeError:
            self._count_and(None, lambda: self.error(BadRequest("the frame is not valid JSON")))
            return
        if not isinstance(frame, dict):
            self._count_and(None, lambda: self.error(BadRequest("a frame is a JSON object")))
            return
        ref = frame.get("client_id")
        if ref is None:
            ref = frame.get("type")
        if not self.chat.flood.hit(self.user_id):
            self.error(RateLimited(), ref)
            return
        kind = frame.get("type")
        route = ROUTES.get(kind) if type(kind) is int else None
        if route is None:
            self.error(BadRequest("unknown or missing type"), ref)
            return
        try:
            route(self, frame)
        except ChatError as err:
            self.error(err, ref)
        except DATABASE_UNAVAILABLE as exc:
            log.warning("event=db_unavailable user_id=%s type=%s error=%s", self.user_id, kind,
                        type(getattr(exc, "orig", exc)).__name__)
            self.error(ServerBusy(), ref)
        except Exception:  # noqa: BLE001 - a bug in one handler must not cut the socket
            log.exception("event=frame_failed user_id=%s type=%s", self.user_id, kind)
            self.error(ServerBusy(), ref)
        finally:
            db.session.remove()

    def _count_and(self, ref, answer) -> None:
        if not self.chat.flood.hit(self.user_id):
            self.error(RateLimited(), ref)
        else:
            answer()

    # -- the frame types ----------------------------------------------------

    def ping(self, frame: dict) -> None:
        """Type 0."""
        self.send({"kind": "pong", "code": 200})

    def private_message(self, frame: dict) -> None:
        """Type 1: a private message."""
        self._submit(frame, recipient_id=validation.entity_id(frame.get("recipient_id"),
                                                             "recipient_id"), group_id=None)

    def group_message(self, frame: dict) -> None:
        """Type 4: a group message (``recipient_id`` is the group's id)."""
        self._submit(frame, recipient_id=None,
                     group_id=validation.entity_id(frame.get("recipient_id"), "recipient_id"))

    def _submit(self, frame: dict, recipient_id: int | None, group_id: int | None) -> None:
        content = validation.content(frame.get("content"), self.max_content)
        client_id = validation.client_id(frame.get("client_id"))
        if self.chat.draining:
            raise ServerBusy("the server is restarting; retry with the same client_id")
        while self.inflight >= self.max_inflight:
            # Back-pressure: stop reading this socket until earlier sends are stored.
            if self.slot_free is None:
                self.slot_free = GeventEvent()
            self.slot_free.clear()
            self.slot_free.wait()
        self.inflight += 1
        ref = client_id if client_id is not None else frame.get("type")

        def reply(ack, err, created):
            self.inflight -= 1
            if self.slot_free is not None:
                self.slot_free.set()
            if err is not None:
                self.send(err.to_frame(ref))
            else:
                self.send(ack)

        self.chat.committer.submit(Outgoing(self.user_id, recipient_id, group_id, content,
                                            client_id, self.conn.id, reply))

    def unread(self, frame: dict) -> None:
        """Type 2: every unread message, marked read."""
        self.send(messages.fetch_unread(self.user_id, origin=self.conn.id))

    def history(self, frame: dict) -> None:
        """Type 3: a page of history, by ``before_id`` or by the seed's time cursor."""
        is_group = validation.flag(frame.get("group"), "group")
        target = validation.entity_id(frame.get("recipient_id"), "recipient_id")
        page = messages.history(self.user_id, target, is_group, before_id=frame.get("before_id"),
                                before_time=frame.get("content"), limit=frame.get("limit"))
        self.send({"kind": "history", "code": 200, **page})

    def mark_read(self, frame: dict) -> None:
        """Type 5: move a read cursor."""
        is_group = validation.flag(frame.get("group"), "group")
        target = validation.entity_id(frame.get("recipient_id"), "recipient_id")
        if frame.get("last_read_id") is None:
            raise BadRequest("last_read_id is required")
        messages.mark_read(self.user_id, target, is_group, frame.get("last_read_id"),
                           origin=self.conn.id)

    def typing(self, frame: dict) -> None:
        """Type 6: typing indicator, not stored."""
        is_group = validation.flag(frame.get("group"), "group")
        target = validation.entity_id(frame.get("recipient_id"), "recipient_id")
        messages.typing(self.user_id, target, is_group)

    def sync(self, frame: dict) -> None:
        """Type 7: everything after ``since_id``."""
        self.send(messages.sync(self.user_id, frame.get("since_id"), frame.get("limit")))


# Frame type -> handler; one table for every connection.
ROUTES = {0: FrameHandler.ping, 1: FrameHandler.private_message, 2: FrameHandler.unread,
          3: FrameHandler.history, 4: FrameHandler.group_message, 5: FrameHandler.mark_read,
          6: FrameHandler.typing, 7: FrameHandler.sync}


@sock.route("/ws", bp=bp)
def websocket(ws: ChatSocket) -> None:
    """One connection: hello, then frames until it ends."""
    chat = runtime.chat()
    chat.start()
    cfg = current_app.config
    user_id = current_user.id
    conn = Connection(user_id, current_user.auth_token_id, ws, cfg["CHAT_SEND_QUEUE_BYTES"])
    g.pop("_login_user", None)  # ids are all we keep: the ORM object would live for hours
    try:
        unread, last_id, group_ids = messages.hello_state(user_id)
    except DATABASE_UNAVAILABLE:
        conn.send_payload(orjson.dumps(ServerBusy().to_frame()))
        conn.close(CLOSE_TRY_AGAIN, "database unavailable")
        _finish(conn)
        return
    finally:
        db.session.remove()
    conn.send_payload(orjson.dumps({"kind": "hello", "code": 200, "user_id": user_id,
                                    "unread": unread, "last_id": last_id,
                                    "content": "connected"}))
    chat.registry.add(conn, group_ids)
    log.info("event=ws_open user_id=%s conn=%s", user_id, conn.id)
    handler = FrameHandler(conn, chat)
    try:
        for message in ws.messages():
            handler.handle(message)
    except ProtocolError as err:  # 1002, 1007, or 1009 for a frame over the limit
        conn.close(err.code, err.reason)
    finally:
        chat.registry.remove(conn)
        log.info("event=ws_close user_id=%s conn=%s code=%s", user_id, conn.id,
                 getattr(ws, "close_reason", None))
        _finish(conn)


def _finish(conn: Connection) -> None:
    """Let the writer flush a close frame (briefly) before the socket is dropped."""
    writer = conn.writer
    if writer is not None:
        writer.join(timeout=2)
    gevent.sleep(0)
