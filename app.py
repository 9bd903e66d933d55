"""The application factory: ``create_app()`` wires extensions, blueprints and the runtime.

The runtime is created here but started only when a server starts
(``ChatRuntime.start``), so tests and ``flask db upgrade`` spawn nothing.
"""
from __future__ import annotations

import logging
import sys

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from chat.config import get_config
from chat.extensions import babel, csrf, db, login_manager, migrate
from chat.request_body import guard_request_bodies
from chat.store import pool, reads, replica


def configure_logging(level: str) -> None:
    """One line per event: time, level, logger, then key=value pairs."""
    root = logging.getLogger()
    # No line shows a thread or a source line. Under gevent, a record's thread name
    # makes each connection's greenlet a ``threading._DummyThread`` of its own, and the
    # caller's file and line turn the greenlet's frames into frame objects: both stay for
    # the connection's life (logging's own switches, from its "Optimization" advice).
    logging.logThreads = False
    logging._srcfile = None
    if any(getattr(h, "_chat", False) for h in root.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    handler._chat = True
    root.addHandler(handler)
    root.setLevel(level)


class ChatFlask(Flask):
    """Flask, but the response of a request upgraded to a WebSocket skips the after-request
    hooks: it is never written (the socket belongs to the connection by then), and the
    hooks (security headers, the session's cookie, the language's Vary) were a twentieth
    of a connect's CPU."""

    def process_response(self, response):
        """The hooks' work, unless the response is an upgrade's."""
        if getattr(response, "upgraded", False):
            return response
        return super().process_response(response)


def create_app(config_name: str | None = None, **overrides) -> Flask:
    """Build the Flask app for an environment (``CHAT_CONFIG``), with optional overrides."""
    app = ChatFlask(__name__, instance_relative_config=True)
    config = get_config(config_name)
    app.config.from_object(config)
    app.config.update(overrides)
    config.init_app(app)
    configure_logging(app.config["CHAT_LOG_LEVEL"])

    if app.config["CHAT_BODY_STALL_SECONDS"] > 0:
        app.wsgi_app = guard_request_bodies(app.wsgi_app, app.config["CHAT_BODY_STALL_SECONDS"])
    if app.config["CHAT_TRUSTED_PROXIES"] > 0:
        hops = app.config["CHAT_TRUSTED_PROXIES"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops,
                                x_port=hops)

    db.init_app(app)
    with app.app_context():
        pool.ping_when_idle(db.engine)
    replica.init_app(app)
    reads.init_app(app)
    migrate.init_app(app, db, directory=str(app.root_path + "/migrations"),
                     render_as_batch=True)
    login_manager.init_app(app)
    csrf.init_app(app)

    # Imported here, so that nothing imports the factory (and no import cycle can form).
    from chat.api import bp as api_bp
    from chat.errors import register_error_handlers
    # Importing identity registers the login loaders.
    from chat.identity import CookieSessions
    from chat.ops import health
    from chat.realtime import route as ws
    from chat.runtime import ChatRuntime
    from chat.security import register_security
    from chat.web import auth, groups, i18n, pages

    babel.init_app(app, locale_selector=i18n.select_locale,
                   default_translation_directories=str(i18n.TRANSLATIONS))

    app.register_blueprint(auth.bp)
    app.register_blueprint(pages.bp)
    app.register_blueprint(groups.bp)
    app.register_blueprint(api_bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(ws.bp)
    if app.config["CHAT_ECHO_ROUTE"]:
        from chat.realtime import echo
        app.register_blueprint(echo.bp)
    register_error_handlers(app)
    register_security(app)
    app.session_interface = CookieSessions()

    app.extensions["chat"] = ChatRuntime(app)

    from chat.cli import register_cli
    register_cli(app)
    return app
