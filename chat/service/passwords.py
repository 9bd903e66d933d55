"""Password hashing off the event loop, in a bounded pool of threads.

A scrypt hash costs about 90 ms of CPU. Run in the worker's one event loop, a
few parallel logins stalled every socket of the process (a logged-in user's
ping went from 0.4 ms to a median of 139 ms with 6 of them). hashlib's scrypt
releases the GIL, so in a thread it leaves the loop free; the pool's size bounds
how much CPU logins can take, and the callers wait in line cooperatively. The
threads give way to the loop when they share its core (chat/background.py).
"""
from __future__ import annotations

from werkzeug.security import check_password_hash, generate_password_hash

from ..background import BackgroundPool


class PasswordHasher:
    """Hash and check passwords in ``threads`` background threads."""

    def __init__(self, threads: int) -> None:
        self.pool = BackgroundPool(threads)
        # Checked against when the username does not exist, so both paths cost one hash.
        self.dummy_hash = generate_password_hash("not-a-real-password-0")

    def hash(self, password: str) -> str:
        """A salted hash of ``password`` (werkzeug's default: scrypt)."""
        return self.pool.apply(generate_password_hash, (password,))

    def check(self, stored_hash: str | None, password: str) -> bool:
        """Whether ``password`` matches ``stored_hash`` (None: no such user, still one hash)."""
        return self.pool.apply(check_password_hash, (stored_hash or self.dummy_hash, password))
