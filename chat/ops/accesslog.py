"""gunicorn's access log without secrets: ``?token=`` and ``?ticket=`` values are blanked.

Browsers open the WebSocket with their session cookie and scripts should use the
``Authorization`` header or a single-use ticket, but ``/ws?token=...`` still
works, and a request line is logged whole by default.
"""
from __future__ import annotations

import re

from gunicorn.glogging import Logger

_SECRET_PARAM = re.compile(r"((?:^|[?&])(?:token|ticket)=)[^&\s]*", re.IGNORECASE)


def scrub(text: str) -> str:
    """``text`` with the value of every token and ticket parameter replaced by ``***``."""
    return _SECRET_PARAM.sub(r"\1***", text)


class ScrubbingLogger(Logger):
    """gunicorn's logger, scrubbing the request line and query string of each access line."""

    def atoms(self, resp, req, environ, request_time):
        """The access log's fields, secrets blanked."""
        atoms = super().atoms(resp, req, environ, request_time)
        for key in ("r", "q"):
            if isinstance(atoms.get(key), str):
                atoms[key] = scrub(atoms[key])
        return atoms
