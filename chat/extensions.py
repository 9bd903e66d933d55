"""Flask extensions, created unbound so that no module has to import the factory."""
from flask import session
from flask_babel import Babel
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFProtect
from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    """Declarative base for every model (SQLAlchemy 2.0 typed style)."""


class ChatLoginManager(LoginManager):
    """flask-login's manager, minus a hash that every request without a session paid."""

    def _session_protection_failed(self) -> bool:
        # flask-login hashes the client's address and user agent (SHA-512) before it
        # looks at the session, and an empty session never fails the check: every API
        # call by token and every socket paid it (3.5 % of a reconnect storm's CPU).
        if not session:
            return False
        return super()._session_protection_failed()


db = SQLAlchemy(model_class=Base)
migrate = Migrate()
login_manager = ChatLoginManager()
csrf = CSRFProtect()
babel = Babel()
