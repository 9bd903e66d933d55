"""Counters and a latency histogram of this process, rendered for Prometheus."""
from __future__ import annotations


class SendStats:
    """Messages in, batches, errors by code, and commit latency (for /metrics)."""

    BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

    def __init__(self) -> None:
        self.messages_in = 0
        self.batches = 0
        self.errors: dict[str, int] = {}
        self.latency_counts = [0] * (len(self.BUCKETS) + 1)
        self.latency_sum = 0.0

    def observe(self, seconds: float, count: int) -> None:
        """Record the commit latency of ``count`` messages."""
        for i, bound in enumerate(self.BUCKETS):
            if seconds <= bound:
                self.latency_counts[i] += count
                break
        else:
            self.latency_counts[-1] += count
        self.latency_sum += seconds * count

    def error(self, code: str, count: int = 1) -> None:
        """Count errors by code."""
        self.errors[code] = self.errors.get(code, 0) + count

    def histogram_lines(self, name: str) -> list[str]:
        """The latency histogram in the Prometheus text format."""
        lines = []
        cumulative = 0
        for bound, count in zip(self.BUCKETS, self.latency_counts):
            cumulative += count
            lines.append(f'{name}_bucket{{le="{bound}"}} {cumulative}')
        cumulative += self.latency_counts[-1]
        lines.append(f'{name}_bucket{{le="+Inf"}} {cumulative}')
        lines.append(f"{name}_sum {self.latency_sum:.6f}")
        lines.append(f"{name}_count {cumulative}")
        return lines


def gauge(name: str, help_text: str, value, kind: str = "gauge") -> list[str]:
    """One metric with its HELP and TYPE lines."""
    return [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", f"{name} {value}"]
