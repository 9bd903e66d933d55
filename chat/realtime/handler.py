"""One connection's frames: parsed, flood-counted, routed to the service, answered.

The handler owns nothing but the envelope: which ``type`` a frame is and which
of its fields name the target. Every rule lives in the service; a ChatError from
it becomes an ``error`` frame and the connection goes on.
"""
from __future__ import annotations

import logging
from typing import Any, Callable

import orjson
from gevent.event import Event as GeventEvent

from ..errors import DATABASE_UNAVAILABLE, BadRequest, ChatError, RateLimited, ServerBusy
from ..extensions import db
from ..service import Services, validation
from .registry import Connection, DeliveryBatch

log = logging.getLogger("chat.ws")

# Client frame types (docs/protocol.md 3.2 and 3.9).
(PING, PRIVATE_MESSAGE, FETCH_UNREAD, HISTORY, GROUP_MESSAGE, MARK_READ, TYPING, SYNC, EDIT,
 RECALL, REACT) = range(11)


class FrameHandler:
    """Reads one connection's frames and answers them; one per connection."""

    __slots__ = ("conn", "services", "stats", "user_id", "max_inflight", "max_unread_answer",
                 "inflight", "slot_free")

    def __init__(self, conn: Connection, services: Services, stats, max_inflight: int,
                 max_unread_answer: int = 1 << 20) -> None:
        self.conn = conn
        self.services = services
        self.stats = stats
        self.user_id = conn.user_id
        self.max_inflight = max_inflight
        # Bytes of answers a client may leave unread before it is served again.
        self.max_unread_answer = max_unread_answer
        self.inflight = 0
        self.slot_free: GeventEvent | None = None  # made when back-pressure first bites

    def send(self, frame: dict, batch: DeliveryBatch | None = None) -> None:
        """Queue one frame for this connection."""
        self.conn.send_payload(orjson.dumps(frame), batch)

    def error(self, err: ChatError, ref: Any = None,
              batch: DeliveryBatch | None = None) -> None:
        """Answer with an error frame; the connection goes on."""
        self.stats.error(err.code)
        self.send(err.to_frame(ref), batch)

    def handle(self, raw: str | bytes) -> None:
        """Count, parse and route one frame (the flood limit counts every frame first)."""
        if not self.services.flood.hit(self.user_id):
            self.error(RateLimited(), self._ref_of(raw))
            return
        try:
            frame = self._parse(raw)
        except ChatError as err:
            self.error(err)
            return
        ref = _frame_ref(frame)
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

    @staticmethod
    def _parse(raw: str | bytes) -> dict:
        """A text frame holding a JSON object."""
        if isinstance(raw, (bytes, bytearray)):
            raise BadRequest("binary frames are not accepted")
        frame = validation.parse_json(raw)
        if not isinstance(frame, dict):
            raise BadRequest("a frame is a JSON object")
        return frame

    @staticmethod
    def _ref_of(raw: str | bytes) -> Any:
        """The ``ref`` of a frame refused before it was routed, when it has one."""
        try:
            frame = FrameHandler._parse(raw)
        except ChatError:
            return None
        return _frame_ref(frame)

    # -- the frame types ----------------------------------------------------

    def ping(self, frame: dict) -> None:
        """Type 0."""
        self.send({"kind": "pong", "code": 200})

    def private_message(self, frame: dict) -> None:
        """Type 1: a private message."""
        self._submit(frame, recipient_id=frame.get("recipient_id"))

    def group_message(self, frame: dict) -> None:
        """Type 4: a group message (``recipient_id`` is the group's id)."""
        self._submit(frame, group_id=validation.entity_id(frame.get("recipient_id"),
                                                          "recipient_id"))

    def _submit(self, frame: dict, recipient_id: Any = None, group_id: int | None = None) -> None:
        self._wait_for_slot()
        self.inflight += 1
        try:
            self.services.sending.submit(
                self.user_id, recipient_id=recipient_id, group_id=group_id, fields=frame,
                origin=self.conn.id, answer=self._answerer(frame))
        except ChatError:
            self._slot_done()
            raise

    def _change(self, frame: dict, kind: str) -> None:
        self._wait_for_slot()
        self.inflight += 1
        try:
            self.services.sending.submit_change(
                self.user_id, kind, frame.get("message_id"), fields=frame, origin=self.conn.id,
                answer=self._answerer(frame))
        except ChatError:
            self._slot_done()
            raise

    def edit(self, frame: dict) -> None:
        """Type 8: edit one's own message."""
        self._change(frame, "edit")

    def recall(self, frame: dict) -> None:
        """Type 9: take a message back."""
        self._change(frame, "recall")

    def react(self, frame: dict) -> None:
        """Type 10: add (or, with ``on: false``, remove) a reaction."""
        self._change(frame, "reaction")

    def _wait_for_slot(self) -> None:
        """Back-pressure: stop reading this socket until earlier sends are stored."""
        while self.inflight >= self.max_inflight:
            if self.slot_free is None:
                self.slot_free = GeventEvent()
            self.slot_free.clear()
            self.slot_free.wait()

    def _slot_done(self) -> None:
        self.inflight -= 1
        if self.slot_free is not None:
            self.slot_free.set()

    def _answerer(self, frame: dict) -> Callable:
        ref = _frame_ref(frame)

        def answer(ack, err, created, batch) -> None:
            self._slot_done()
            if err is not None:
                self.send(err.to_frame(ref), batch)
            else:
                self.send(ack, batch)
        return answer

    def unread(self, frame: dict) -> None:
        """Type 2: every unread message, marked read."""
        self.conn.wait_until_read(self.max_unread_answer)
        self.send(self.services.reading.fetch_unread(self.user_id, origin=self.conn.id))

    def history(self, frame: dict) -> None:
        """Type 3: a page of history, by ``before_id`` or by the seed's time cursor."""
        is_group = validation.flag(frame.get("group"), "group")
        target = validation.entity_id(frame.get("recipient_id"), "recipient_id")
        self.conn.wait_until_read(self.max_unread_answer)
        page = self.services.reading.history(
            self.user_id, target, is_group, before_id=frame.get("before_id"),
            before_time=frame.get("content"), limit=frame.get("limit"))
        self.send({"kind": "history", "code": 200, **page})

    def mark_read(self, frame: dict) -> None:
        """Type 5: move a read cursor."""
        is_group = validation.flag(frame.get("group"), "group")
        target = validation.entity_id(frame.get("recipient_id"), "recipient_id")
        self.services.reading.mark_read(self.user_id, target, is_group,
                                        frame.get("last_read_id"), origin=self.conn.id)

    def typing(self, frame: dict) -> None:
        """Type 6: typing indicator, not stored."""
        is_group = validation.flag(frame.get("group"), "group")
        target = validation.entity_id(frame.get("recipient_id"), "recipient_id")
        self.services.reading.typing(self.user_id, target, is_group)

    def sync(self, frame: dict) -> None:
        """Type 7: everything after ``since_id``."""
        self.conn.wait_until_read(self.max_unread_answer)
        self.send(self.services.reading.sync(self.user_id, frame.get("since_id"),
                                             frame.get("limit")))


# Frame type -> handler; one table for every connection.
ROUTES = {PING: FrameHandler.ping, PRIVATE_MESSAGE: FrameHandler.private_message,
          FETCH_UNREAD: FrameHandler.unread, HISTORY: FrameHandler.history,
          GROUP_MESSAGE: FrameHandler.group_message, MARK_READ: FrameHandler.mark_read,
          TYPING: FrameHandler.typing, SYNC: FrameHandler.sync, EDIT: FrameHandler.edit,
          RECALL: FrameHandler.recall, REACT: FrameHandler.react}


def _frame_ref(frame: dict) -> Any:
    """The ``ref`` of a frame's answers: its ``client_id``, else its ``type``, as JSON can
    carry it. A string with a lone surrogate (JSON's escapes allow one; UTF-8 does not)
    is sent with U+FFFD in its place: refused for itself (400), it must still be
    answered, and an answer that cannot be encoded was lost, or closed the socket."""
    ref = frame.get("client_id")
    if ref is None:
        ref = frame.get("type")
    if (type(ref) is str and ref.isascii()) or (type(ref) is int and -(1 << 63) <= ref < 1 << 64):
        return ref
    try:
        orjson.dumps(ref)
    except TypeError:  # orjson's own error too (an integer past 64 bits)
        if type(ref) is str:
            return "".join("\ufffd" if "\ud800" <= ch <= "\udfff" else ch for ch in ref)
        return None  # a structure holding one: nothing of it can be echoed
    return ref
