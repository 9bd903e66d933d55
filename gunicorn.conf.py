"""gunicorn settings: ``gunicorn -c gunicorn.conf.py wsgi:app`` (gevent worker).

Every value can be set from the environment; see README.md, "Deployment".
"""
import os
import signal

bind = os.environ.get("CHAT_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("CHAT_WORKERS", "1"))
# The gevent worker needs gunicorn's "gevent" extra (it imports packaging).
worker_class = "gevent"
# Each WebSocket holds its connection for hours: gunicorn's default of 1000 is far too low.
worker_connections = int(os.environ.get("CHAT_WORKER_CONNECTIONS", "20000"))
graceful_timeout = int(os.environ.get("CHAT_SHUTDOWN_GRACE", "10")) + 5
timeout = 30
keepalive = 5
backlog = 4096
accesslog = os.environ.get("CHAT_ACCESS_LOG") or None
# X-Forwarded-* is the app's business (werkzeug's ProxyFix, only with CHAT_TRUSTED_PROXIES):
# gunicorn would otherwise take X-Forwarded-Proto from any local client and change the
# scheme that the origin check and secure cookies rely on.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "")
secure_scheme_headers: dict = {}


# Thousands of sockets keep tens of thousands of objects alive, and every young
# collection that reaches them walks them all again; with the default (700, 10, 10)
# a reconnect storm spent about a third of its CPU in the collector. Reference
# counting still frees everything at once; only cyclic garbage waits a little longer.
GC_THRESHOLDS = tuple(int(v) for v in (os.environ.get("CHAT_GC_THRESHOLDS") or "50000,20,100")
                      .split(",") if v.strip())[:3]


def post_worker_init(worker):
    """Start the chat runtime, and make SIGTERM close WebSockets with 1001 at once.

    gunicorn's gevent worker would otherwise wait ``graceful_timeout`` for the
    sockets to end by themselves and then cut them without a close frame.
    """
    import gc

    import gevent

    runtime = worker.wsgi.extensions["chat"]
    runtime.start()
    # Everything loaded so far lives as long as the worker: keep the cyclic garbage
    # collector from walking it again and again (its pauses showed as latency spikes).
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    grace = worker.wsgi.config["CHAT_SHUTDOWN_GRACE"]

    def graceful_stop():
        worker.alive = False  # gunicorn stops accepting within a second
        runtime.shutdown(grace)

    signal.signal(signal.SIGTERM, lambda signum, frame: gevent.spawn(graceful_stop))
