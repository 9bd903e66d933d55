"""/healthz for load balancers and /metrics in the Prometheus text format."""
from __future__ import annotations

from flask import Blueprint, Response, current_app, request
from sqlalchemy import text

from ..errors import Forbidden
from ..extensions import db
from ..runtime import runtime
from .metrics import gauge

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    """200 when the database answers (and Redis, when configured); 503 otherwise."""
    chat = runtime()
    try:
        db.session.execute(text("SELECT 1"))
        db_state = "ok"
    except Exception:
        db_state = "down"
    finally:
        db.session.remove()
    redis_state = chat.counters.status()
    if redis_state == "ok" and chat.bus.status() == "down":
        redis_state = "down"  # Redis answers, but our listener is not (yet) back on it
    ok = db_state == "ok" and redis_state in ("ok", "off") and not chat.draining
    body = {"db": db_state, "redis": redis_state, "bus": chat.bus.status(),
            "connections": len(chat.registry), "draining": chat.draining}
    return body, 200 if ok else 503


def _metrics_allowed() -> bool:
    token = current_app.config.get("CHAT_METRICS_TOKEN")
    if not token:
        return True
    return request.headers.get("Authorization", "") == f"Bearer {token}"


@bp.get("/metrics")
def metrics():
    """Connections, messages in and out, fan-out frames, send latency, errors by code."""
    if not _metrics_allowed():
        raise Forbidden("metrics need the metrics token")
    chat = runtime()
    stats = chat.stats
    lines = [
        *gauge("chat_connections", "Live WebSocket connections in this process.",
               len(chat.registry)),
        *gauge("chat_connected_users", "Users with at least one connection in this process.",
               len(chat.registry.users)),
        *gauge("chat_messages_in_total", "Messages submitted for sending.", stats.messages_in,
               "counter"),
        *gauge("chat_frames_out_total", "Frames put on connection queues by fan-out.",
               chat.registry.frames_out, "counter"),
        *gauge("chat_commit_batches_total", "Group commits of messages.", stats.batches,
               "counter"),
        *gauge("chat_bus_published_total", "Events published on the bus.",
               chat.bus.published, "counter"),
        *gauge("chat_bus_up", "1 while the Redis bus is connected (or in-process).",
               0 if chat.bus.status() == "down" else 1),
        "# HELP chat_errors_total Errors answered, by code.",
        "# TYPE chat_errors_total counter",
    ]
    for code, count in sorted(stats.errors.items()):
        lines.append(f'chat_errors_total{{code="{code}"}} {count}')
    lines += ["# HELP chat_send_seconds Time from batch start to ack, per message.",
              "# TYPE chat_send_seconds histogram", *stats.histogram_lines("chat_send_seconds")]
    return Response("\n".join(lines) + "\n", mimetype="text/plain; version=0.0.4")
