"""The settings the service reads, taken from the app's config once, at start."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping


@dataclass(frozen=True, slots=True)
class ServiceSettings:
    """Limits and switches of the service layer (see ``chat.config`` for each variable)."""

    max_content: int = 5000
    edit_window: int = 48 * 3600  # seconds; 0: no limit
    recall_window: int = 24 * 3600
    stranger_limit: int = 3
    stranger_ttl: int = 90 * 24 * 3600
    login_max_failures: int = 10
    login_window: int = 15 * 60
    login_max_failures_per_address: int = 100
    auth_attempts_per_minute: int = 30
    hash_threads: int = 1
    idle_expiry: int = 30 * 24 * 3600  # seconds a session or token may go unused (0: never)
    batch_max: int = 500
    send_timeout: float = 10.0
    presence_grace: float = 10.0
    presence: bool = True

    @classmethod
    def from_config(cls, config: Mapping) -> "ServiceSettings":
        """Read every field from a Flask config."""
        return cls(max_content=config["CHAT_MAX_CONTENT"],
                   edit_window=config["CHAT_EDIT_WINDOW"],
                   recall_window=config["CHAT_RECALL_WINDOW"],
                   stranger_limit=config["CHAT_STRANGER_LIMIT"],
                   stranger_ttl=config["CHAT_STRANGER_TTL"],
                   login_max_failures=config["CHAT_LOGIN_MAX_FAILURES"],
                   login_window=config["CHAT_LOGIN_WINDOW"],
                   login_max_failures_per_address=config["CHAT_LOGIN_MAX_FAILURES_PER_ADDRESS"],
                   auth_attempts_per_minute=config["CHAT_AUTH_ATTEMPTS_PER_MINUTE"],
                   hash_threads=config["CHAT_HASH_THREADS"],
                   idle_expiry=config["CHAT_SESSION_IDLE_DAYS"] * 24 * 3600,
                   batch_max=config["CHAT_BATCH_MAX"],
                   send_timeout=config["CHAT_SEND_TIMEOUT"],
                   presence_grace=config["CHAT_PRESENCE_GRACE"],
                   presence=config["CHAT_PRESENCE"])
