"""GET /ws: origin and identity checked before the upgrade, then one connection's life.

flask-sock provides the routing (a ``Sock`` whose blueprint the factory
registers, and Werkzeug's ``websocket=True`` rule). Its ``Sock.route`` builds a
``simple_websocket.Server`` for each request; ``ChatSock.route`` below is the one
place where we replace that, whole, with our own ``transport.WebSocket`` (why:
see that module).
"""
from __future__ import annotations

import logging
from typing import Any, Callable
from functools import wraps

import orjson
from flask import Blueprint, Response, current_app, request
from flask_login import current_user
from flask_sock import Sock

from ..errors import DATABASE_UNAVAILABLE, BadRequest, Forbidden, ServerBusy, Unauthorized
from ..extensions import db
from ..identity import script_credential
from ..runtime import runtime
from .frames import ProtocolError
from .handler import FrameHandler
from .quota import CLOSE_TOO_MANY, TOO_MANY_REASON
from .registry import Connection
from .transport import (CLOSE_GOING_AWAY, CLOSE_TRY_AGAIN, WebSocket, take_over, upgrade_socket,
                        valid_upgrade)

log = logging.getLogger("chat.ws")

_DEFAULT_PORTS = {"http": "80", "https": "443", "ws": "80", "wss": "443"}
SHUTTING_DOWN = "server shutting down"


# What a route hands back: the rest of the connection's life, run in a greenlet of its
# own once the request has ended; ``None`` when the connection already ended within it.
Life = Callable[[], None] | None


class ChatSock(Sock):
    """flask-sock, handing each route our ``WebSocket`` instead of simple-websocket's."""

    def route(self, path: Any, bp: Any = None, **kwargs):
        """Like ``Sock.route``, with our ``WebSocket``, on a socket taken over from the
        WSGI server: the handler decides in the request whether the connection may open,
        and returns its ``Life``, which the runtime runs after the request has ended (the
        request's greenlet, environ and context are then freed: an idle connection keeps
        only its own state). The socket is always dropped at the end."""
        def decorator(handler: Callable[..., Life]):
            @wraps(handler)
            def websocket_route(*args, **kw):
                sock = upgrade_socket(request.environ)
                if sock is None:
                    raise RuntimeError("WebSockets need the gevent worker: gunicorn -k gevent "
                                       "or python -m chat.devserver")
                if not valid_upgrade(request.environ):
                    raise BadRequest("not a WebSocket upgrade request")
                cfg = current_app.config
                own = take_over(sock)
                ws = WebSocket(own or sock, cfg["CHAT_MAX_FRAME_BYTES"])
                # Our development server stops reading this connection as HTTP.
                request.environ["chat.upgraded"] = True
                handed_over = False
                try:
                    ws.accept(request.environ["HTTP_SEC_WEBSOCKET_KEY"],
                              cfg["CHAT_SOCKET_SEND_BUFFER"])
                    life = handler(ws, *args, **kw)
                    if life is not None and own is not None:
                        runtime().live_on(life, ws.abort)
                        handed_over = True
                    elif life is not None:  # TLS served by gunicorn itself: in the request
                        life()
                except OSError:
                    pass  # the client went away during the handshake
                except Exception:
                    # The socket is ours now: no HTTP error response can be written on it.
                    log.exception("event=ws_open_failed")
                finally:
                    if not handed_over:
                        ws.abort()
                return UpgradedResponse()

            if bp is None:
                raise TypeError("our WebSocket routes live on a blueprint: pass bp=")
            kwargs["websocket"] = True
            bp.route(path, **kwargs)(websocket_route)
            return websocket_route
        return decorator


class UpgradedResponse(Response):
    """Nothing more to write: the connection was upgraded, and is closed by now."""

    upgraded = True  # what the app's after-request hooks would add is never sent

    def __call__(self, environ, start_response):
        if "gunicorn.socket" in environ:
            # gunicorn's worker ends the connection, without writing, on StopIteration
            # (what flask-sock does too).
            raise StopIteration()
        return []


bp = Blueprint("ws", __name__)
sock = ChatSock()


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
    """401 without identity, 403 from a foreign origin: before anything is accepted."""
    origin = request.headers.get("Origin")
    if origin is not None and not origin_allowed(origin):
        log.info("event=ws_origin_refused origin=%r", origin[:100])
        raise Forbidden("origin not allowed")
    if origin is None and not script_credential():
        # Not a browser: only a token or a ticket identifies it (a bare cookie could be
        # replayed).
        raise Unauthorized("a token is required")
    if not current_user.is_authenticated:
        raise Unauthorized()


@bp.get("/ws")
def not_an_upgrade() -> None:
    """A plain request to /ws: 400, once ``guard_upgrade`` has let it through (without this
    rule, routing refused it before the guard, and a request without identity got 400
    where the protocol says 401)."""
    raise BadRequest("not a WebSocket upgrade request")


@sock.route("/ws", bp=bp)
def websocket(ws: WebSocket) -> Life:
    """One connection: whether it may open is decided here, in the request; its life
    (hello, then frames until it ends) runs after the request."""
    chat = runtime()
    cfg = current_app.config
    user_id = current_user.id
    conn = Connection(user_id, current_user.auth_token_id, ws, cfg["CHAT_SEND_QUEUE_BYTES"],
                      chat.registry.budget)
    if chat.draining:  # this process is stopping: the client reconnects elsewhere
        return refuse(conn, CLOSE_GOING_AWAY, SHUTTING_DOWN)
    if chat.full():
        log.warning("event=ws_refused_full user_id=%s sockets=%s", user_id,
                    cfg["CHAT_WORKER_CONNECTIONS"])
        return refuse(conn, CLOSE_TRY_AGAIN, "server full")
    if not chat.quota.claim(user_id, conn.id):
        log.info("event=ws_refused_too_many user_id=%s", user_id)
        return refuse(conn, CLOSE_TOO_MANY, f"{TOO_MANY_REASON} ({chat.quota.cap})")

    # Read with the token, or None (read at the hello); taken once, so that an idle
    # connection's closure does not keep them.
    hello_rows = [current_user.hello_rows]
    current_user.hello_rows = None  # where the life runs inside the request, it holds them

    def life() -> None:
        try:
            serve(chat, conn, ws, user_id, hello_rows.pop())
        finally:
            chat.quota.release(user_id, conn.id)
    return life


def refuse(conn: Connection, code: int, reason: str) -> None:
    """Close a connection before its ``hello``, within its request (it has no life)."""
    conn.close(code, reason)
    finish(conn)


def serve(chat: Any, conn: Connection, ws: WebSocket, user_id: int,
          hello_rows: list | None = None) -> None:
    """Hello (from ``hello_rows`` when they were read already), register, then answer
    frames until the connection ends."""
    cfg = current_app.config
    try:
        unread, last_id, group_ids = chat.services.reading.hello_state(user_id, hello_rows)
    except DATABASE_UNAVAILABLE:
        conn.send_payload(orjson.dumps(ServerBusy().to_frame()))
        conn.close(CLOSE_TRY_AGAIN, "database unavailable")
        finish(conn)
        return
    finally:
        hello_rows = None  # this frame lives as long as the connection: keep nothing of it
        db.session.remove()
    conn.send_payload(orjson.dumps({"kind": "hello", "code": 200, "user_id": user_id,
                                    "unread": unread, "last_id": last_id,
                                    "content": "connected"}))
    if chat.registry.add(conn, group_ids):  # the user's groups, read before it listened
        chat.group_check.queue(user_id)
    if chat.draining:  # the stop's close_all may have passed before the add
        conn.close(CLOSE_GOING_AWAY, SHUTTING_DOWN)
    chat.services.presence.opened(user_id, conn.id)
    log.info("event=ws_open user_id=%s conn=%s", user_id, conn.id)
    handler = FrameHandler(conn, chat.services, chat.stats, cfg["CHAT_MAX_INFLIGHT"],
                           cfg["CHAT_MAX_UNREAD_ANSWER_BYTES"])
    try:
        for message in ws.messages():
            handler.handle(message)
    except ProtocolError as err:  # 1002, 1007, or 1009 for a frame over the limit
        conn.close(err.code, err.reason)
    finally:
        chat.registry.remove(conn)
        chat.services.presence.closed(user_id, conn.id)
        log.info("event=ws_close user_id=%s conn=%s code=%s", user_id, conn.id, ws.close_code)
        finish(conn)


def finish(conn: Connection) -> None:
    """Let the writer flush a close frame and the peer answer it (briefly), then drop the
    socket and whatever is still queued."""
    writer = conn.writer
    if writer is not None:
        writer.join(timeout=2)
    conn.transport.linger(1.0)
    conn.discard()
