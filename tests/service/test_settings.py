"""The service's settings (``chat.service.settings``), read once from the app's config."""
from __future__ import annotations

import dataclasses

import pytest

from chat.service.settings import ServiceSettings
from tests.inprocess import make_app


def test_every_field_comes_from_its_config_variable():
    app = make_app("sqlite://", CHAT_MAX_CONTENT=100, CHAT_STRANGER_LIMIT=5,
                   CHAT_STRANGER_TTL=60, CHAT_LOGIN_MAX_FAILURES=2, CHAT_LOGIN_WINDOW=30,
                   CHAT_LOGIN_MAX_FAILURES_PER_ADDRESS=7, CHAT_AUTH_ATTEMPTS_PER_MINUTE=9,
                   CHAT_HASH_THREADS=3, CHAT_SESSION_IDLE_DAYS=2, CHAT_BATCH_MAX=7,
                   CHAT_REDIS_PREFIX="blue:", CHAT_SEND_TIMEOUT=4)
    assert ServiceSettings.from_config(app.config) == ServiceSettings(
        max_content=100, stranger_limit=5, stranger_ttl=60, login_max_failures=2,
        login_window=30, login_max_failures_per_address=7, auth_attempts_per_minute=9,
        hash_threads=3, idle_expiry=2 * 24 * 3600, batch_max=7, send_timeout=4)
    assert app.extensions["chat"].services.settings.batch_max == 7  # what the services got


def test_the_defaults_are_the_protocols():
    settings = ServiceSettings.from_config(make_app("sqlite://").config)
    assert (settings.max_content, settings.stranger_limit, settings.stranger_ttl) == (
        5000, 3, 90 * 24 * 3600)


def test_settings_cannot_change_under_a_running_service():
    with pytest.raises(dataclasses.FrozenInstanceError):
        ServiceSettings().max_content = 1
