"""``python -m chat.devserver``: the first run on a laptop, on embedded defaults.

Upgrades the database, seeds demo users into an empty one, and serves with
gevent's WSGIServer (WebSockets included) on CHAT_HOST:CHAT_PORT.
"""
from gevent import monkey

monkey.patch_all()

import os  # noqa: E402
import signal  # noqa: E402

import gevent  # noqa: E402
from flask_migrate import upgrade  # noqa: E402
from gevent.pywsgi import WSGIHandler, WSGIServer  # noqa: E402


class ChatWSGIHandler(WSGIHandler):
    """gevent's handler, handing the application the client's socket for a WebSocket.

    gunicorn puts it in the environ (``gunicorn.socket``); pywsgi does not, so we
    do (``chat.socket``). After an upgrade the connection is the WebSocket's, and
    pywsgi must not read it as HTTP again (it would parse the bytes a client sends
    after its close frame as a new request).
    """

    def get_environ(self):
        """The WSGI environ, plus the socket."""
        environ = super().get_environ()
        environ["chat.socket"] = self.socket
        return environ

    def run_application(self):
        """Run the app; an upgraded connection ends with it."""
        try:
            super().run_application()
        finally:
            if self.environ.get("chat.upgraded"):
                self.close_connection = True


def main() -> None:
    """Migrate, seed, serve."""
    from app import configure_logging, create_app
    from chat.cli import DEMO_PASSWORD, DEMO_USERS, seed_demo

    app = create_app(os.environ.get("CHAT_CONFIG", "development"))
    host = os.environ.get("CHAT_HOST", "127.0.0.1")
    port = int(os.environ.get("CHAT_PORT", "5000"))
    with app.app_context():
        upgrade()
        seeded = seed_demo() if os.environ.get("CHAT_SEED_DEMO", "1") == "1" else False
    # Alembic's logging config replaced the root handlers while migrating: ours again.
    configure_logging(app.config["CHAT_LOG_LEVEL"])
    runtime = app.extensions["chat"]
    runtime.start()
    server = WSGIServer((host, port), app, log=None, handler_class=ChatWSGIHandler)
    server.start()

    def stop():
        server.stop_accepting() if hasattr(server, "stop_accepting") else server.close()
        runtime.shutdown(app.config["CHAT_SHUTDOWN_GRACE"])
        server.stop(timeout=1)

    for sig in (signal.SIGTERM, signal.SIGINT):
        gevent.signal_handler(sig, lambda: gevent.spawn(stop))
    print(f"chat server on http://{host}:{server.server_port}/", flush=True)
    if seeded:
        print(f"demo users: {', '.join(DEMO_USERS)} (password: {DEMO_PASSWORD})", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
