"""The bus tests run in a child pytest under gevent's monkey-patching.

RedisBus's listener is a greenlet blocked in redis-py's socket reads: without
monkey-patching, that read would stop the whole thread, so RedisBus can only be
tested the way it runs, patched. Patching this process instead would change the
rest of the suite under its feet (Playwright's sync API, the threads of the
end-to-end tests), so each module marked ``gevent_patched`` runs once in a child
``python -c "monkey.patch_all(); pytest.main(...)"``, and each of its tests here
replays the child's reports under its own name: it passes, fails, skips or
xfails here exactly as it did there, with the child's traceback.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from _pytest.reports import TestReport

# Set in the child only: the file its reports go to.
CHILD_REPORTS = "CHAT_TEST_GEVENT_CHILD_REPORTS"
_PATCH_THEN_PYTEST = ("from gevent import monkey\nmonkey.patch_all()\n"
                      "import sys, pytest\nsys.exit(pytest.main(sys.argv[1:]))")
_config = None
_runs: dict[str, tuple[dict, str]] = {}  # module path -> (reports by nodeid, child output)


def pytest_configure(config):
    global _config
    _config = config
    config.addinivalue_line("markers", "gevent_patched: run this module's tests in a child "
                                       "pytest under gevent's monkey-patching (tests/bus)")


def pytest_runtest_logreport(report):
    """In the child: keep every report for the parent."""
    path = os.environ.get(CHILD_REPORTS)
    if path:
        data = _config.hook.pytest_report_to_serializable(config=_config, report=report)
        with open(path, "a", encoding="utf-8") as out:
            out.write(json.dumps(data) + "\n")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item, nextitem):
    """In the parent: run the item's module in the child once, then replay its reports."""
    if os.environ.get(CHILD_REPORTS) or item.get_closest_marker("gevent_patched") is None:
        return None
    reports, output = _child_run(item)
    item.ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
    for report in reports.get(item.nodeid) or [_lost(item, output)]:
        item.ihook.pytest_runtest_logreport(report=report)
    item.ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
    return True


def _child_run(item) -> tuple[dict, str]:
    """The child's reports for every selected test of the item's module (run once)."""
    module = str(item.path)
    if module not in _runs:
        nodeids = [i.nodeid for i in item.session.items if str(i.path) == module]
        fd, path = tempfile.mkstemp(prefix="chat-gevent-child-", suffix=".jsonl")
        os.close(fd)
        try:
            proc = subprocess.run(
                [sys.executable, "-c", _PATCH_THEN_PYTEST, *nodeids, "-q", "-p",
                 "no:cacheprovider"], cwd=item.config.rootpath, capture_output=True,
                text=True, timeout=300,
                # No third-party plugin is needed there; loading them took seconds.
                env={**os.environ, CHILD_REPORTS: path, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"})
            output = proc.stdout[-20000:] + proc.stderr[-20000:]
            reports: dict[str, list] = {}
            for line in Path(path).read_text(encoding="utf-8").splitlines():
                report = item.config.hook.pytest_report_from_serializable(
                    config=item.config, data=json.loads(line))
                report.location = tuple(report.location)
                reports.setdefault(report.nodeid, []).append(report)
        finally:
            os.unlink(path)
        _runs[module] = (reports, output)
    return _runs[module]


def _lost(item, output: str) -> TestReport:
    """A failure for a test the child never reported (it crashed, or did not collect it)."""
    return TestReport(item.nodeid, item.location, {}, "failed",
                      f"the gevent-patched child pytest gave no report for this test:\n{output}",
                      "call")
