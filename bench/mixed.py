"""The mixed scenario: pairs traffic with rich messages (docs/protocol.md 3.9).

Every pair talks both ways, as in the pairs scenario, and each direction (a
*lane*) goes through the same cycle of 23 items: 20 messages, of which 4 are
replies (20 %) and 2 carry a mention (10 %), and one edit, one recall and one
reaction. Mentions are only valid in group messages, so every pair also has a
two-member group of its own; the mentioning messages go there and mention the
partner. Replies answer the partner's newest acked private message (or the
sender's own before the partner has one); edits and recalls take the sender's
newest acked private message that no change has used yet, reactions the
partner's. Each message is changed at most once, so no change can meet a
message another one took back. Lane ``i`` starts ``i`` items into the cycle, so
that the changes are spread evenly instead of every lane sending its edit in
the same round; a reply or change that finds no acked target yet (the first
round) is sent as a plain message and counted as ``substituted``.

The rate counts messages and changes together. A lane has three streams (its
private messages, its group messages, its changes), each with the bookkeeping
of the pairs scenario: acks, errors, one bitmap per receiver. A change is
delivered when the partner's socket delivers its ``update`` frame, which is
found by the message id it names (the frame has no client_id). Latency in the
step's p50/p99 is that of messages, as in pairs; the updates' latency is
reported apart, and an update that never arrives is lost like a message.
"""
from __future__ import annotations

from time import monotonic_ns

from .loadgen import (NONCE, Client, Step, Stream, Traffic, _setup, log, percentiles,
                      step_line)
from .wsclient import OPEN, Conn, text_frame

# The cycle of one lane: P plain message, R reply, N group message with a mention,
# E edit, X recall (take back), A reaction; the changes spread over the cycle.
PLAIN, REPLY, MENTION, EDIT, RECALL, REACT = range(6)
CYCLE = "PPPRPNPEPRPPAPRPPXNPRPP"
LETTERS = "PRNEXA"  # in the order of the codes above
CHANGE_KIND = {EDIT: "edit", RECALL: "recall", REACT: "reaction"}
POOL_KEEP = 64  # acked ids a lane remembers as targets (the newest are used)

_TAIL = b'"client_id":"%d:%d:' + NONCE + b'"}'
PLAIN_T = b'{"type":1,"recipient_id":%d,"content":"%d:%d:%d:%s",' + _TAIL
REPLY_T = b'{"type":1,"recipient_id":%d,"reply_to":%d,"content":"%d:%d:%d:%s",' + _TAIL
MENTION_T = b'{"type":4,"recipient_id":%d,"mentions":[%d],"content":"%d:%d:%d:%s",' + _TAIL
EDIT_T = b'{"type":8,"message_id":%d,"content":"%d:%d:%d:%s",' + _TAIL
RECALL_T = b'{"type":9,"message_id":%d,' + _TAIL
REACT_T = b'{"type":10,"message_id":%d,"emoji":"' + "👍".encode() + b'",' + _TAIL


def parse_cycle(cycle: str) -> tuple[int, ...]:
    """The codes of a cycle written as letters (``--set mixed_cycle=...`` for experiments)."""
    if not cycle or set(cycle) - set(LETTERS):
        raise ValueError(f"a cycle is a non-empty string of {LETTERS}: {cycle!r}")
    return tuple(LETTERS.index(c) for c in cycle)


def cycle_counts(cycle: str = CYCLE) -> dict[str, int]:
    """How many of each item one cycle holds (for the report and the test)."""
    codes = parse_cycle(cycle)
    return {name: codes.count(op) for op, name in enumerate(
        ("plain", "reply", "mention", "edit", "recall", "reaction"))}


class Lane:
    """One direction of a pair: its sender, its three streams and its acked message ids."""

    __slots__ = ("sender", "peer_id", "gid", "priv", "grp", "upd", "pool", "peer_pool", "n")

    def __init__(self, sender: Client, peer: Client, gid: int, priv: Stream, grp: Stream,
                 upd: Stream) -> None:
        self.sender = sender
        self.peer_id = peer.uid
        self.gid = gid
        self.priv, self.grp, self.upd = priv, grp, upd
        self.pool: list[int] = []  # ids of this lane's acked private messages, not yet changed
        self.peer_pool: list[int] = []  # the partner lane's pool (the same list)
        self.n = 0  # the position in the cycle (items sent, plus the lane's offset)


class MixedTraffic(Traffic):
    """Traffic of the mixed scenario: lanes, targets from acks, updates by message id."""

    def __init__(self, spec: dict, loop, meter) -> None:
        super().__init__(spec, loop, meter)
        self.lanes: list[Lane] = []
        self.pools: list[list[int] | None] = []  # stream id -> pool fed by its acks
        # message id -> (stream, seq, scheduled ns, update kind) of the change sent to it
        self.pending: dict[int, tuple[int, int, int, str]] = {}
        self.substituted = 0  # replies and changes sent as plain messages: no target yet
        self.cycle = spec.get("cycle") or CYCLE
        self.pattern = parse_cycle(self.cycle)

    def _stream(self, sender: Client, kind: int, target: int, receiver: Client) -> Stream:
        s = Stream(len(self.streams), sender, kind, target, [receiver])
        self.streams.append(s)
        self.pools.append(None)
        return s

    def add_pair(self, a: Client, b: Client, gid: int) -> None:
        """Both lanes of one pair, whose group of two is ``gid``."""
        lanes = []
        for sender, peer in ((a, b), (b, a)):
            lane = Lane(sender, peer, gid, self._stream(sender, 1, peer.uid, peer),
                        self._stream(sender, 4, gid, peer), self._stream(sender, 8, 0, peer))
            self.pools[lane.priv.sid] = lane.pool
            # Each lane starts one item further into the cycle than the one before: lanes
            # in step would send their changes in bursts (every lane's edit in one round of
            # the round-robin), which is not the steady mix the scenario measures.
            lane.n = len(self.lanes) + len(lanes)
            lanes.append(lane)
        lanes[0].peer_pool, lanes[1].peer_pool = lanes[1].pool, lanes[0].pool
        self.lanes.extend(lanes)

    @property
    def message_streams(self) -> list[Stream]:
        return [s for lane in self.lanes for s in (lane.priv, lane.grp)]

    @property
    def change_streams(self) -> list[Stream]:
        return [lane.upd for lane in self.lanes]

    # -- frames ---------------------------------------------------------------

    def on_frame(self, conn: Conn, kind: str, d: dict, now: int) -> None:
        """One decoded server frame: acks feed the target pools, updates are deliveries."""
        if kind == "message":
            self.delivery(conn.cl, d, now)
        elif kind == "ack":
            self.mixed_ack(d)
        elif kind == "update":
            self.update(conn.cl, d, now)
        else:
            super().on_frame(conn, kind, d, now)

    def mixed_ack(self, d: dict) -> None:
        """An ack of a message or a change; a private message's id becomes a target."""
        try:
            sid, seq = d["client_id"].split(":", 2)[:2]
            sid = int(sid)
            seq = int(seq)
            s = self.streams[sid]
            if s.acked[seq]:
                self.dup_acks += 1
                return
        except (KeyError, AttributeError, ValueError, IndexError):
            self.unexpected += 1
            return
        s.acked[seq] = 1
        self.acked += 1
        self.expected += 1  # one receiver: the partner
        pool = self.pools[sid]
        if pool is not None:
            pool.append(d.get("id") or 0)
            if len(pool) > POOL_KEEP:
                del pool[:POOL_KEEP // 2]

    def update(self, cl: Client, d: dict, now: int) -> None:
        """An ``update`` frame: the delivery of the change sent to that message."""
        try:
            sid, seq, sched, kind = self.pending[d["message_id"]]
            bm = cl.rx[sid]
            seen = bm[seq]
        except (KeyError, TypeError, IndexError):
            self.unexpected += 1
            return
        if d.get("update") != kind:
            self.unexpected += 1
            return
        st = self.count_arrival(cl, bm, seen, sid, seq, sched)
        if st is not None:
            st.ulat.append(now - sched)
            st.udelivered += 1

    def describe(self, st: dict) -> str:
        """The pairs step line, with the changes' part."""
        return (f"{step_line(st)} | changes acked={st['changes_acked']} "
                f"upd_lost={st['updates_undelivered']} upd_p99={st['update_p99']} "
                f"subst={st['substituted']}")

    # -- the schedule -----------------------------------------------------------

    def room(self, total: int) -> int:
        """Each lane gets total / lanes items; any of its streams may get them all."""
        return total // len(self.lanes) + 2

    def send_schedule(self, st: Step, total: int, interval: float, during=None) -> int:
        """Item ``k`` at ``t0 + k * interval`` on lane ``k % lanes``, in the lane's cycle."""
        loop = self.loop
        lanes = self.lanes
        n_lanes = len(lanes)
        pattern = self.pattern
        plen = len(pattern)
        pending = self.pending
        t0 = monotonic_ns() + 5_000_000
        st.t0 = t0
        self.cur = st
        lag = st.lag
        queue = loop.queue
        pad = self.pad
        k = errored = substituted = 0
        while True:
            now = monotonic_ns()
            while k < total:
                sched = t0 + int(k * interval)
                if sched > now:
                    break
                lane = lanes[k % n_lanes]
                k += 1
                op = pattern[lane.n % plen]
                lane.n += 1
                target = 0
                if op == REPLY:
                    pool = lane.peer_pool or lane.pool
                    if pool:
                        target = pool[-1]
                elif op == REACT:
                    if lane.peer_pool:
                        target = lane.peer_pool.pop()
                elif op == EDIT or op == RECALL:
                    if lane.pool:
                        target = lane.pool.pop()
                if not target and op != PLAIN and op != MENTION:
                    op = PLAIN
                    substituted += 1
                s = lane.priv if op <= REPLY else lane.grp if op == MENTION else lane.upd
                seq = s.seq
                s.seq = seq + 1
                sid = s.sid
                conn = lane.sender.conn
                if conn is None or conn.state != OPEN:
                    s.errored[seq] = 1
                    errored += 1
                    continue
                if op == PLAIN:
                    frame = PLAIN_T % (lane.peer_id, sid, seq, sched, pad, sid, seq)
                elif op == REPLY:
                    frame = REPLY_T % (lane.peer_id, target, sid, seq, sched, pad, sid, seq)
                elif op == MENTION:
                    frame = MENTION_T % (lane.gid, lane.peer_id, sid, seq, sched, pad, sid, seq)
                else:
                    pending[target] = (sid, seq, sched, CHANGE_KIND[op])
                    if op == EDIT:
                        frame = EDIT_T % (target, sid, seq, sched, pad, sid, seq)
                    elif op == RECALL:
                        frame = RECALL_T % (target, sid, seq)
                    else:
                        frame = REACT_T % (target, sid, seq)
                queue(conn, text_frame(frame))
                lag.append(now - sched)
            loop.flush()
            if during is not None:
                during(now)
            if k >= total:
                self.substituted += substituted
                return errored
            wait = (t0 + int(k * interval) - monotonic_ns()) / 1e9
            loop.poll(min(max(wait, 0.0), 0.002))

    def run_step(self, rate: float, seconds: float, drain: float, label: str = "",
                 during=None) -> dict:
        """The pairs step's figures, with messages and changes also counted apart."""
        substituted = self.substituted
        result = super().run_step(rate, seconds, drain, label, during)
        st = self.steps[-1]

        def window(s):
            return s.lo, s.hi
        msgs = self.account(window, self.message_streams)
        changes = self.account(window, self.change_streams)
        lat = percentiles(st.lat, msgs["undelivered"])  # messages only, as in pairs
        ulat = percentiles(st.ulat, changes["undelivered"])
        result.update({k: lat[k] for k in ("p50", "p90", "p99", "max")})
        result.update({
            "messages_acked": msgs["acked"], "messages_unacked": msgs["unacked"],
            "messages_undelivered": msgs["undelivered"],
            "changes_acked": changes["acked"], "changes_unacked": changes["unacked"],
            "updates_undelivered": changes["undelivered"], "update_deliveries": st.udelivered,
            "update_p50": ulat["p50"], "update_p99": ulat["p99"], "update_max": ulat["max"],
            "substituted": self.substituted - substituted})
        return result


def scenario_mixed(spec: dict) -> dict:
    """Pairs with rich messages: ``users`` in pairs, ``groups`` one per pair."""
    loop, meter = _setup(spec)
    traffic = MixedTraffic(spec, loop, meter)
    clients = [Client(uid, tok) for uid, tok in spec["users"]]
    groups = spec["groups"]
    if len(groups) != len(clients) // 2:
        raise ValueError(f"{len(groups)} groups for {len(clients) // 2} pairs")
    for i, gid in enumerate(groups):
        traffic.add_pair(clients[2 * i], clients[2 * i + 1], gid)
    conn = traffic.connect(clients, concurrency=spec.get("concurrency", 200))
    log(f"connected {conn}")
    result = traffic.search(spec["search"], profile=spec.get("profile"))
    final = traffic.account(lambda s: (0, s.seq), traffic.change_streams)
    result.update({"connect": conn, "connections": len(clients), "lanes": len(traffic.lanes),
                   "streams": len(traffic.streams), "cycle": cycle_counts(traffic.cycle),
                   "lost_updates": final["undelivered"], "unacked_changes": final["unacked"],
                   "substituted_total": traffic.substituted})
    return result
