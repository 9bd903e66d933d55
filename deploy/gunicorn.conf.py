"""gunicorn settings: ``gunicorn -c deploy/gunicorn.conf.py wsgi:app`` (gevent worker).

Every value can be set from the environment; see README.md, "Deployment".
"""
import os
import signal
from pathlib import Path

bind = os.environ.get("CHAT_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("CHAT_WORKERS", "1"))
# The gevent worker needs gunicorn's "gevent" extra (it imports packaging).
worker_class = "gevent"
# Each WebSocket holds its connection for hours: gunicorn's default of 1000 is far too low.
worker_connections = int(os.environ.get("CHAT_WORKER_CONNECTIONS", "20000"))
graceful_timeout = int(os.environ.get("CHAT_SHUTDOWN_GRACE", "10")) + 5
timeout = 30
keepalive = 5
# The queue of connections not yet taken by the worker. A network blip makes every client
# reconnect at once; past this queue the kernel drops their SYNs and each waits 1 s (then 3 s)
# to try again. The kernel caps it at net.core.somaxconn: deploy/sysctl.conf raises that.
backlog = int(os.environ.get("CHAT_BACKLOG", "16384"))
accesslog = os.environ.get("CHAT_ACCESS_LOG") or None
# The access log never holds a token or ticket from a /ws?token=... request line.
logger_class = "chat.ops.accesslog.ScrubbingLogger"
# X-Forwarded-* is the app's business (werkzeug's ProxyFix, only with CHAT_TRUSTED_PROXIES):
# gunicorn would otherwise take X-Forwarded-Proto from any local client and change the
# scheme that the origin check and secure cookies rely on.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "")
secure_scheme_headers: dict = {}
# gunicornc's control socket: one per deployment (gunicorn's default, ~/.gunicorn/gunicorn.ctl,
# is shared by every deployment of the same user on the host).
control_socket = os.environ.get("CHAT_CONTROL_SOCKET") or str(
    Path(__file__).resolve().parent.parent / "instance" / "gunicorn.ctl")


def post_worker_init(worker):
    """Start the chat runtime, and make SIGTERM close WebSockets with 1001 at once.

    gunicorn's gevent worker would otherwise wait ``graceful_timeout`` for the
    sockets to end by themselves and then cut them without a close frame.
    """
    import gevent

    runtime = worker.wsgi.extensions["chat"]
    runtime.start()
    grace = worker.wsgi.config["CHAT_SHUTDOWN_GRACE"]

    def graceful_stop():
        worker.alive = False  # gunicorn stops accepting within a second
        runtime.shutdown(grace)

    def stop_gracefully():
        if getattr(worker, "chat_stopping", None) is None:
            worker.chat_stopping = gevent.spawn(graceful_stop)
        return worker.chat_stopping

    worker.chat_stop_gracefully = stop_gracefully
    signal.signal(signal.SIGTERM, lambda signum, frame: stop_gracefully())


def worker_int(worker):
    """SIGINT or SIGQUIT: gunicorn's quick stop, which stays quick (no drain)."""
    worker.chat_quick_stop = True


def worker_exit(server, worker):
    """Let the graceful stop finish before the worker process ends (and run one when the
    worker ends for another reason than SIGTERM, say ``max_requests``).

    The WebSockets live in greenlets of the runtime's own (``ChatRuntime.live_on``),
    which gunicorn does not wait for: without this, the worker would end as soon as no
    HTTP request is in progress, before the committer's drain and the close frames.
    """
    stop_gracefully = getattr(worker, "chat_stop_gracefully", None)
    if stop_gracefully is not None and not getattr(worker, "chat_quick_stop", False):
        stop_gracefully().join(timeout=graceful_timeout)
