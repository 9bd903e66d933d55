"""The flood limit: frames and state-changing calls per user in the last minute.

Counted in this process, per second: a Redis round trip per frame would cost
more than the frame itself.
"""
from __future__ import annotations

from time import monotonic


class FloodLimiter:
    """Frames per user in the last minute, in this process, counted per second.

    Sixty one-second buckets per active user: exact to the second, so a user who
    was quiet for a minute has the whole allowance again.
    """

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        # user -> [newest second seen, frames in the last 60 seconds, 60 buckets]
        self.windows: dict[int, list] = {}
        self._last_sweep = monotonic()

    def hit(self, user_id: int) -> bool:
        """Count one frame; False when the user is over the limit."""
        if self.per_minute <= 0:
            return True
        second = int(monotonic())
        entry = self.windows.get(user_id)
        if entry is None:
            entry = self.windows[user_id] = [second, 0, [0] * 60]
            if second - self._last_sweep > 120:
                self._sweep(second)
        newest, buckets = entry[0], entry[2]
        if second != newest:
            if second - newest >= 60:
                buckets[:] = [0] * 60
                entry[1] = 0
            else:
                for s in range(newest + 1, second + 1):  # the seconds that left the window
                    entry[1] -= buckets[s % 60]
                    buckets[s % 60] = 0
            entry[0] = second
        if entry[1] >= self.per_minute:
            return False
        buckets[second % 60] += 1
        entry[1] += 1
        return True

    def _sweep(self, now: float) -> None:
        self._last_sweep = now
        for uid in [u for u, e in self.windows.items() if now - e[0] >= 60]:
            del self.windows[uid]
