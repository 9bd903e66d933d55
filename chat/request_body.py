"""A request body that stops arriving gives its greenlet back: 408, and the connection ends.

gunicorn's gevent worker gives a request's headers a deadline (its keep-alive timeout)
but reads the body with none: a client that sends its headers and then its body a byte
now and then, or never, holds a greenlet, a socket and (for an upload) a turn of the
uploads for as long as it likes, and a few thousand such clients fill a worker's
connections. nginx in front (deploy/nginx.conf) buffers bodies under a timeout of its
own; a server reached without it has this guard: every 4 KiB of the body must arrive
within ``CHAT_BODY_STALL_SECONDS`` (15 s) of the read that asks for it, or the request is
answered ``408 request_timeout`` and gunicorn drops the connection (it waits its
keep-alive timeout for the rest of the body, then closes). nginx's own
``client_body_timeout`` is the same idea (60 s between two reads).
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, BinaryIO

import gevent
from werkzeug.exceptions import RequestTimeout


# The body is read this many bytes at a time (the server's read of n bytes waits for all
# n), each piece within the stall period: at least 4 KiB per CHAT_BODY_STALL_SECONDS.
PIECE = 4096


class BodyStalled(RequestTimeout):
    """The request's body stopped arriving."""

    description = "the request body stopped arriving"


class StallGuardedInput:
    """``wsgi.input`` whose reads get each ``PIECE`` within ``seconds``, else 408."""

    def __init__(self, stream: BinaryIO, seconds: float) -> None:
        self._stream = stream
        self._seconds = seconds

    def _within(self, read: Callable[..., Any], *args: Any) -> Any:
        with gevent.Timeout(self._seconds, BodyStalled()):
            return read(*args)

    def read(self, size: int | None = -1) -> bytes:
        """The stream's ``read``, a piece at a time, each piece within the stall period."""
        if size is None or size < 0:  # to the end
            return b"".join(iter(lambda: self._within(self._stream.read, PIECE), b""))
        parts: list[bytes] = []
        while size > 0 and (piece := self._within(self._stream.read, min(size, PIECE))):
            parts.append(piece)
            size -= len(piece)
        return b"".join(parts)

    def readline(self, *args: Any) -> bytes:
        """The stream's ``readline``, within the stall period."""
        return self._within(self._stream.readline, *args)

    def readlines(self, *args: Any) -> list[bytes]:
        """The stream's ``readlines``, within the stall period."""
        return self._within(self._stream.readlines, *args)

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.readline, b"")


def guard_request_bodies(wsgi_app: Callable[[dict, Callable], Iterable[bytes]],
                         seconds: float) -> Callable[[dict, Callable], Iterable[bytes]]:
    """``wsgi_app`` with each request body read under ``StallGuardedInput`` (requests
    without a body, a WebSocket's handshake among them, are left as they are)."""

    def guarded(environ: dict, start_response: Callable) -> Iterable[bytes]:
        if environ.get("CONTENT_LENGTH") not in (None, "", "0") or environ.get(
                "HTTP_TRANSFER_ENCODING"):
            environ["wsgi.input"] = StallGuardedInput(environ["wsgi.input"], seconds)
        return wsgi_app(environ, start_response)

    return guarded
