"""deploy/chat.service: systemd accepts it, and its stop waits for gunicorn's drain."""
from __future__ import annotations

import configparser
import os
import runpy
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "deploy" / "chat.service"


def analyze() -> str:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        if os.environ.get("CI") == "true":
            pytest.fail("systemd-analyze is required under CI (.ci/run installs systemd)")
        pytest.skip("systemd-analyze is not installed")
    return tool


def verify(text: str, tmp_path: Path) -> subprocess.CompletedProcess:
    """``systemd-analyze verify`` on a unit with this text."""
    path = tmp_path / "chat.service"
    path.write_text(text)
    return subprocess.run([analyze(), "verify", "--man=no", str(path)],
                          capture_output=True, text=True, timeout=60)


def installed_here(text: str) -> str:
    """The unit as if the repository were installed at /opt/chat (its ExecStart exists)."""
    assert (ROOT / ".venv" / "bin" / "gunicorn").exists()
    return text.replace("/opt/chat", str(ROOT))


def test_systemd_accepts_the_unit_without_a_single_complaint(tmp_path):
    result = verify(installed_here(UNIT.read_text()), tmp_path)
    assert result.returncode == 0 and result.stderr.strip() == "", result.stderr


def test_the_check_is_real_it_catches_a_bad_unit(tmp_path):
    """A missing program and a misspelt setting are both reported."""
    missing = verify(UNIT.read_text().replace("/opt/chat/.venv", "/nonexistent/.venv"), tmp_path)
    assert missing.returncode != 0 and "not executable" in missing.stderr
    typo = verify(installed_here(UNIT.read_text()).replace("KillSignal=SIGTERM",
                                                           "KillSignal=SIGTREM"), tmp_path)
    assert "SIGTREM" in typo.stderr


def test_the_unit_runs_gunicorn_gevent_and_stops_gracefully():
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str
    unit.read_string(UNIT.read_text())
    service = unit["Service"]
    assert service["ExecStart"].endswith(
        "gunicorn -k gevent -c deploy/gunicorn.conf.py wsgi:app")
    assert int(service["LimitNOFILE"]) >= 65536
    assert service["Restart"] == "on-failure"
    assert service["KillSignal"] == "SIGTERM" and service["EnvironmentFile"]
    # systemd must not kill the workers while gunicorn still drains (stores what is
    # queued, closes sockets with 1001): its stop timeout outlasts graceful_timeout.
    gunicorn = runpy.run_path(str(ROOT / "deploy" / "gunicorn.conf.py"))
    assert int(service["TimeoutStopSec"]) > gunicorn["graceful_timeout"]


def test_the_kernel_settings_are_real_ones_and_hold_gunicorns_accept_queue():
    """deploy/sysctl.conf (which the benchmark also applies) names settings this kernel
    has, and its accept queue is at least the one gunicorn asks for: the kernel would
    cap gunicorn's at somaxconn, and a reconnect storm's SYNs past it wait 1-3 s."""
    from bench import kernel

    wanted = kernel.wanted()
    assert set(wanted) >= {"net.core.somaxconn", "net.ipv4.tcp_max_syn_backlog"}
    for key in wanted:
        assert (Path("/proc/sys") / key.replace(".", "/")).is_file(), key
    gunicorn = runpy.run_path(str(ROOT / "deploy" / "gunicorn.conf.py"))
    assert wanted["net.core.somaxconn"] >= gunicorn["backlog"] >= 16384
