"""Reading other processes from /proc: CPU time, resident memory, children, affinity."""
from __future__ import annotations

import os
import resource
from time import monotonic

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    except (OSError, IndexError, ValueError):
        return 0.0


def rss_bytes(pid: int) -> int:
    """Resident set size of a process in bytes (VmRSS)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def children(pid: int) -> list[int]:
    """Direct children of a process."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
            if int(fields[1]) == pid:
                found.append(int(entry))
        except (OSError, IndexError, ValueError):
            continue
    return sorted(found)


def find_by_name(*names: str) -> list[int]:
    """Pids whose command name (``comm``) is one of ``names``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/comm") as f:
                if f.read().strip() in names:
                    found.append(int(entry))
        except OSError:
            continue
    return sorted(found)


def affinity(pid: int) -> str:
    """The CPUs a process may run on, as a list like "0-1" or "1"."""
    try:
        cpus = sorted(os.sched_getaffinity(pid))
    except OSError:
        return "?"
    if not cpus:
        return ""
    if cpus == list(range(cpus[0], cpus[-1] + 1)) and len(cpus) > 1:
        return f"{cpus[0]}-{cpus[-1]}"
    return ",".join(map(str, cpus))


class CpuMeter:
    """CPU use of this process and of watched pids over an interval, as fractions of a core."""

    def __init__(self, groups: dict[str, list[int]]) -> None:
        self.groups = {k: list(v) for k, v in groups.items() if v}
        self.start()

    def _self(self) -> tuple[float, float]:
        r = resource.getrusage(resource.RUSAGE_SELF)
        return r.ru_utime, r.ru_stime

    def start(self) -> None:
        """Begin an interval."""
        self.t0 = monotonic()
        self.self0 = self._self()
        self.g0 = {k: sum(cpu_seconds(p) for p in pids) for k, pids in self.groups.items()}

    def read(self) -> dict:
        """CPU fractions since ``start``: {"loadgen": 0.43, "server": 0.98, ...}."""
        wall = max(1e-6, monotonic() - self.t0)
        user, system = self._self()
        used = user - self.self0[0] + system - self.self0[1]
        out = {"loadgen": round(used / wall, 3),
               "loadgen_sys": round((system - self.self0[1]) / wall, 3)}
        for k, pids in self.groups.items():
            out[k] = round((sum(cpu_seconds(p) for p in pids) - self.g0[k]) / wall, 3)
        return out
