"""The kernel settings of deploy/sysctl.conf for the benchmark's run, put back after it.

The README asks a chat host for these (a reconnect storm overflows the default accept
queue), so the benchmark measures with them, as it measures on deploy/mariadb.cnf. A
setting is only ever raised, and only where this process may write it (root); what was
done is part of the run's results.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SYSCTL_CONF = ROOT / "deploy" / "sysctl.conf"
PROC_SYS = Path("/proc/sys")


def wanted(conf: Path = SYSCTL_CONF) -> dict[str, int]:
    """Each ``key = value`` line of a sysctl file (comments and blank lines skipped)."""
    found: dict[str, int] = {}
    for line in conf.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            key, _, value = line.partition("=")
            found[key.strip()] = int(value.strip())
    return found


def _path(key: str) -> Path:
    return PROC_SYS / key.replace(".", "/")


@contextlib.contextmanager
def raised(conf: Path = SYSCTL_CONF) -> Iterator[dict[str, dict]]:
    """Raise every setting of ``conf`` that is lower here, for the duration; yields what
    each was, what it is now, and why not where it could not be raised."""
    report: dict[str, dict] = {}
    restore: list[tuple[Path, str]] = []
    try:
        for key, value in wanted(conf).items():
            path = _path(key)
            try:
                before = path.read_text().strip()
            except OSError as exc:
                report[key] = {"wanted": value, "error": str(exc)}
                continue
            entry = report[key] = {"wanted": value, "before": int(before), "now": int(before)}
            if int(before) >= value:
                continue
            try:
                path.write_text(str(value))
            except OSError as exc:  # not root, or a container's read-only /proc/sys
                entry["error"] = str(exc)
                continue
            restore.append((path, before))
            entry["now"] = value
        yield report
    finally:
        for path, before in reversed(restore):
            with contextlib.suppress(OSError):
                path.write_text(before)
