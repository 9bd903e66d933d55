"""Production entry point: ``gunicorn -c deploy/gunicorn.conf.py wsgi:app``.

gevent's monkey-patching must come before anything else is imported, so that
sockets, locks and PyMySQL's I/O all cooperate with the event loop.
"""
import gevent
from gevent import monkey

# gevent records, for every greenlet, the stack that spawned it (for its debugging
# tools): about 1 KiB and a dozen objects kept for each connection's life. We never
# read them.
gevent.config.track_greenlet_tree = False
monkey.patch_all()

import os  # noqa: E402

from app import create_app  # noqa: E402

app = create_app(os.environ.get("CHAT_CONFIG", "production"))
