"""Fixtures of the storage tests: the same test body on SQLite and on MariaDB."""
from __future__ import annotations

import pytest

from chat.extensions import db
from tests.inprocess import make_app, running


@pytest.fixture(scope="module", params=["sqlite", "mariadb"])
def db_app(request):
    """An app on a SQLite file of the module's own, then on the suite's MariaDB database."""
    fixture = "sqlite_module_url" if request.param == "sqlite" else "mysql_url"
    with running(make_app(request.getfixturevalue(fixture))) as app:
        yield app


@pytest.fixture
def in_app(db_app):
    """The test body runs in the app's context; its session is closed afterwards."""
    with db_app.app_context():
        yield db_app
        db.session.remove()
