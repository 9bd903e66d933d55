"""gunicorn settings: ``gunicorn -c gunicorn.conf.py wsgi:app`` (gevent worker)."""
import os

bind = os.environ.get("CHAT_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("CHAT_WORKERS", "1"))
worker_class = "gevent"
# Each WebSocket is one open connection for hours: the default of 1000 is far too low.
worker_connections = int(os.environ.get("CHAT_WORKER_CONNECTIONS", "20000"))
graceful_timeout = int(os.environ.get("CHAT_SHUTDOWN_GRACE", "10")) + 5
timeout = 30
keepalive = 5
accesslog = os.environ.get("CHAT_ACCESS_LOG") or None


def post_worker_init(worker):
    """Start the bus listener, the pinger and the committer once the worker is up."""
    worker.wsgi.extensions["chat"].start()
