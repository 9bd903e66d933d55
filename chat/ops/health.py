"""/healthz for load balancers and /metrics in the Prometheus text format."""
from __future__ import annotations

import hmac
import ipaddress

from flask import Blueprint, Response, current_app, request

from ..errors import Forbidden
from ..runtime import runtime
from ..store import queries
from .metrics import gauge

bp = Blueprint("health", __name__)


# /healthz answers within this many seconds whatever hangs (a balancer's check times out).
HEALTH_DEADLINE = 0.8


@bp.get("/healthz")
def healthz():
    """200 while this node can serve chat (database up, not draining), else 503.

    Redis is reported but does not fail the check: without it chat still works
    (messages are stored, acked and delivered on this process; other processes'
    clients catch up), and a balancer that pulled every node at once over a Redis
    blip would take the whole chat down.
    """
    chat = runtime()
    db_state = chat.database_check.state(HEALTH_DEADLINE)
    redis_state = chat.counters.status()
    if redis_state == "ok" and chat.bus.status() == "down":
        redis_state = "down"  # Redis answers, but our listener is not (yet) back on it
    ok = db_state == "ok" and not chat.draining
    body = {"db": db_state, "redis": redis_state, "bus": chat.bus.status(),
            "connections": len(chat.registry), "draining": chat.draining}
    return body, 200 if ok else 503


def _metrics_allowed() -> bool:
    """With CHAT_METRICS_TOKEN, only that bearer token; without it, only listed addresses."""
    token = current_app.config.get("CHAT_METRICS_TOKEN")
    if token:
        return hmac.compare_digest(request.headers.get("Authorization", ""), f"Bearer {token}")
    try:
        address = ipaddress.ip_address(request.remote_addr or "")
    except ValueError:
        return False
    return any(address in network for network in current_app.config["CHAT_METRICS_ALLOW"])


@bp.get("/metrics")
def metrics():
    """Connections, messages in and out, fan-out frames, send latency, errors by code."""
    if not _metrics_allowed():
        raise Forbidden("metrics need the metrics token, or a request from an allowed address")
    chat = runtime()
    stats = chat.stats
    lines = [
        *gauge("chat_connections", "Live WebSocket connections in this process.",
               len(chat.registry)),
        *gauge("chat_connected_users", "Users with at least one connection in this process.",
               len(chat.registry.users)),
        *gauge("chat_queued_bytes", "Bytes waiting in every connection queue of this process.",
               chat.registry.budget.total),
        *gauge("chat_messages_in_total", "Messages submitted for sending.", stats.messages_in,
               "counter"),
        *gauge("chat_frames_out_total", "Frames put on connection queues by fan-out.",
               chat.registry.frames_out, "counter"),
        *gauge("chat_commit_batches_total", "Group commits of messages.", stats.batches,
               "counter"),
        *gauge("chat_bus_published_total", "PUBLISHes on the bus (events and batch notices).",
               chat.bus.published, "counter"),
        *gauge("chat_bus_notices_total", "Committed batches' notices among those PUBLISHes.",
               chat.bus.notices, "counter"),
        *gauge("chat_bus_up", "1 while the Redis bus is connected (or in-process).",
               0 if chat.bus.status() == "down" else 1),
        *_upload_gauges(chat),
        *_search_gauges(chat),
        *_token_read_gauges(),
        "# HELP chat_errors_total Errors answered, by code.",
        "# TYPE chat_errors_total counter",
    ]
    for code, count in sorted(stats.errors.items()):
        lines.append(f'chat_errors_total{{code="{code}"}} {count}')
    lines += ["# HELP chat_send_seconds Time from batch start to ack, per message.",
              "# TYPE chat_send_seconds histogram", *stats.histogram_lines("chat_send_seconds")]
    return Response("\n".join(lines) + "\n", mimetype="text/plain; version=0.0.4")


def _token_read_gauges() -> list[str]:
    """Connects' token reads and the tokens they looked up (several each in a burst)."""
    reads = queries.token_reads()
    return [*gauge("chat_token_reads_total", "Token reads of connects sent to the database.",
                   reads.reads if reads else 0, "counter"),
            *gauge("chat_token_reads_tokens_total", "Tokens those reads looked up (more than "
                   "the reads where connects came together).", reads.keys if reads else 0,
                   "counter")]


def _upload_gauges(chat) -> list[str]:
    """Files kept and the bytes they take (every process's: read from the database)."""
    received = gauge("chat_uploads_received_total",
                     "Uploads this process accepted (rate() gives uploads per second).",
                     chat.services.uploads.received, "counter")
    try:
        count, stored = chat.services.uploads.totals()
    except Exception:  # the database is down: /metrics still answers the rest
        return received
    return [*received, *gauge("chat_uploads", "Uploaded files kept.", count),
            *gauge("chat_upload_bytes", "Bytes of uploaded files and thumbnails stored.", stored)]


def _search_gauges(chat) -> list[str]:
    """How far the search indexer is behind (MariaDB; 0 elsewhere)."""
    from ..extensions import db
    try:
        lag = chat.services.search.index_lag(db.engine)
    except Exception:  # the database is down: /metrics still answers the rest
        return []
    return gauge("chat_search_index_lag", "Message ids not yet in the search index (they "
                 "are found by walking them one by one until the indexer gets there).", lag)
