"""A second look at the groups of users whose first socket here just registered.

A socket's hello, and with it its user's groups, is read before the user's
channel is subscribed (with the token, before the upgrade). A membership change
committed and published in between reached no one here: a user removed from a
group would keep getting its messages, one added would not, until the next
connect. Once the channel is subscribed, every later change arrives as an event;
so the groups are read once more, a moment later and for many users in one
query, and the registry corrected (``Registry.correct_groups``). A user added
to a group is told to catch up on what it may have missed.
"""
from __future__ import annotations

import logging
from itertools import islice
from typing import Callable, Sequence

import gevent

from .registry import Registry

log = logging.getLogger("chat.group_check")

# Seconds a check waits for more users to join it: a burst of connects costs a query per
# round, not one per socket; this long, at most, a membership changed in the window is
# not yet applied.
CHECK_DELAY = 0.1
# Users read in one query, at most.
CHECK_BATCH = 500
# A failed read is tried again this many times, after 2, 4, 8 times CHECK_DELAY: a
# membership change lost meanwhile would otherwise stay lost while the socket lives.
RETRIES = 3

ReadGroups = Callable[[Sequence[int]], dict[int, list[int]]]


class GroupCheck:
    """Queues newly registered users; one greenlet reads their groups and corrects the
    registry, round after round while users keep coming."""

    def __init__(self, registry: Registry, read_groups: ReadGroups,
                 delay: float = CHECK_DELAY) -> None:
        self.registry = registry
        self.read_groups = read_groups
        self.delay = delay
        self._waiting: set[int] = set()
        self._failures: dict[int, int] = {}  # user -> failed reads in a row (retried)
        self._runner: gevent.Greenlet | None = None
        self.corrected = 0  # users whose groups the check changed (metrics, tests)

    def queue(self, user_id: int) -> None:
        """Check this user's groups soon (call right after its channel was subscribed)."""
        self.registry.watch(user_id)
        self._failures.pop(user_id, None)
        self._wait(user_id)

    def _wait(self, user_id: int) -> None:
        self._waiting.add(user_id)
        if self._runner is None:
            self._runner = gevent.spawn_later(self.delay, self._run)

    def _retry(self, user_id: int) -> None:
        """Read a user again after a failed read, its watch kept (the events it noted are
        as new as the coming read, or newer)."""
        if user_id in self._failures and user_id not in self._waiting:
            self._wait(user_id)

    def queue_everyone(self) -> None:
        """Check every connected user's groups again (the bus lost events, membership
        events among them: a member removed meanwhile would keep getting the group's
        messages here)."""
        for user_id in self.registry.user_ids():
            self.queue(user_id)

    def _run(self) -> None:
        users: list[int] = []
        try:
            while self._waiting:
                users = list(islice(self._waiting, CHECK_BATCH))
                self._waiting.difference_update(users)
                self._check(users)
                users = []
                if self._waiting:
                    gevent.sleep(self.delay)
        finally:
            for user_id in users:  # a round stopped half-way (killed): its watches end
                if user_id not in self._waiting:
                    self.registry.unwatch(user_id)
            self._runner = None
            if self._waiting:  # queued while the last round was ending
                self._runner = gevent.spawn_later(self.delay, self._run)

    def _check(self, users: list[int]) -> None:
        """Read the users' groups and correct the registry; on a failure the users keep the
        groups of their hello (as before the check existed), and a warning says so."""
        try:
            found = self.read_groups(users)
        except Exception as exc:  # the database may be down or slow: nothing to correct with
            log.warning("event=group_check_failed users=%s error=%s", len(users),
                        type(exc).__name__)
            for user_id in users:
                if user_id in self._waiting:
                    continue  # queued again meanwhile: its own check reads
                failures = self._failures.get(user_id, 0) + 1
                if failures > RETRIES:  # keeps the groups of its hello, as before the check
                    self._failures.pop(user_id, None)
                    self.registry.unwatch(user_id)
                else:
                    self._failures[user_id] = failures
                    gevent.spawn_later(self.delay * 2 ** failures, self._retry, user_id)
            return
        for user_id in users:
            if user_id in self._waiting:
                # Queued again meanwhile (a new first socket, whose hello may be newer than
                # this read): its own check reads later, with the events seen since.
                continue
            self._failures.pop(user_id, None)
            try:
                self._correct(user_id, found.get(user_id, ()))
            except Exception:  # one user's correction never stops the others'
                log.exception("event=group_check_failed user_id=%s", user_id)
                self.registry.unwatch(user_id)

    def _correct(self, user_id: int, group_ids: Sequence[int]) -> None:
        added, removed = self.registry.correct_groups(user_id, group_ids)
        if added or removed:
            self.corrected += 1
            log.info("event=groups_corrected user_id=%s added=%s removed=%s", user_id,
                     sorted(added), sorted(removed))
        if added:
            self.registry.catch_up(user_id)
