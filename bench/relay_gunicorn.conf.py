"""gunicorn settings of the bare relay: the chat server's own (deploy/gunicorn.conf.py), minus the chat runtime."""
import os

bind = os.environ.get("CHAT_BIND", "127.0.0.1:8001")
workers = int(os.environ.get("CHAT_WORKERS", "1"))
worker_class = "gevent"
worker_connections = int(os.environ.get("CHAT_WORKER_CONNECTIONS", "20000"))
graceful_timeout = 5
timeout = 30
keepalive = 5
backlog = int(os.environ.get("CHAT_BACKLOG", "16384"))
accesslog = None
