"""A test-only echo route on exactly our WebSocket stack, for the Autobahn conformance cases.

Mounted only when ``CHAT_ECHO_ROUTE`` is set (the conformance tests set it): it
shares ``WebSocket``, ``Connection`` and its writer with /ws, and echoes every
message back as it came, text or binary.
"""
from __future__ import annotations

from flask import Blueprint, current_app

from .frames import ProtocolError, binary_frame, text_frame
from .registry import Connection
from .route import finish, sock
from .transport import WebSocket

bp = Blueprint("echo", __name__)


@sock.route("/_echo", bp=bp)
def echo(ws: WebSocket) -> None:
    """Echo each message back."""
    conn = Connection(0, None, ws, current_app.config["CHAT_SEND_QUEUE_BYTES"])
    try:
        for message in ws.messages():
            if isinstance(message, str):
                conn.enqueue(text_frame(message.encode("utf-8")))
            else:
                conn.enqueue(binary_frame(message))
    except ProtocolError as err:  # 1002, 1007, or 1009 for a frame over the limit
        conn.close(err.code, err.reason)
    finally:
        finish(conn)
