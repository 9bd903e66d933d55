"""Fixtures of the realtime tests: the in-process app (``tests.inprocess``) where a test
needs services behind its socket."""
from tests.inprocess import app, hasher, module_app, runtime, services  # noqa: F401 (fixtures)
