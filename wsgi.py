"""Production entry point: ``gunicorn -c deploy/gunicorn.conf.py wsgi:app``.

gevent's monkey-patching must come before anything else is imported, so that
sockets, locks and PyMySQL's I/O all cooperate with the event loop.
"""
from gevent import monkey

monkey.patch_all()

import os  # noqa: E402

from app import create_app  # noqa: E402

app = create_app(os.environ.get("CHAT_CONFIG", "production"))
