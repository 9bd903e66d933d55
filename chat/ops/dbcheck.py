"""A database check that answers in bounded time, even when the database hangs."""
from __future__ import annotations

import gevent
from sqlalchemy import text


class DatabaseCheck:
    """``SELECT 1`` in a greenlet of its own; at most one check is ever in flight.

    A check that does not answer in time is reported as ``"timeout"`` and left to
    finish (the driver's read timeout ends it); until it has, later checks report
    ``"timeout"`` at once instead of piling more stuck connections on the pool.
    """

    def __init__(self, app) -> None:
        self.app = app
        self.running: gevent.Greenlet | None = None

    def _ping(self) -> str:
        from ..extensions import db
        with self.app.app_context():
            try:
                with db.engine.connect() as conn:
                    conn.execute(text("SELECT 1"))
                return "ok"
            except Exception:
                return "down"

    def state(self, deadline: float) -> str:
        """"ok", "down" or "timeout", within ``deadline`` seconds."""
        if self.running is not None and not self.running.ready():
            self.running.join(deadline)
            if not self.running.ready():
                return "timeout"
        self.running = gevent.spawn(self._ping)
        self.running.join(deadline)
        return self.running.value if self.running.ready() else "timeout"
