"""The load generator: runs one scenario against a running server, writes its figures as JSON.

    taskset -c 1 python -m bench.loadgen SPEC.json OUT.json

``bench/run.py`` writes the spec (server address, users and tokens, sizes) and
reads the result. Progress goes to stderr.

Open loop: in the rate scenarios message ``k`` of a step is scheduled at
``t0 + k / rate`` whatever the replies, and its latency is measured from that
scheduled time to the moment the recipient's socket delivered the ``message``
frame, so a server (or a load generator) that falls behind shows it as latency.
Each message carries ``<stream>:<seq>:<scheduled ns>:<padding>`` as its content
and ``<stream>:<seq>`` as its ``client_id``; a stream is one sender to one
destination (a user or a group), and every receiver keeps a bitmap per stream,
which counts duplicates, out-of-order arrivals and (against the acks) losses.
"""
from __future__ import annotations

import http.client
import json
import math
import os
import random
import subprocess
import sys
from time import monotonic, monotonic_ns, sleep

import orjson

from .procstat import CpuMeter, rss_bytes
from .wsclient import CLOSED, OPEN, Conn, Loop, text_frame

loads = orjson.loads
PING = text_frame(b'{"type":0}')

NONCE = os.urandom(6).hex().encode()
SEND_TEMPLATE = (b'{"type":%d,"recipient_id":%d,"content":"%d:%d:%d:%s",'
                 b'"client_id":"%d:%d:' + NONCE + b'"}')
# The client_id ends with a nonce of this process: the server keeps client_ids unique
# per sender for good (a resend is acked, not delivered), so ids must never repeat.


def log(message: str) -> None:
    """Progress, on stderr (stdout is left alone)."""
    print(f"[loadgen] {message}", file=sys.stderr, flush=True)


def percentiles(lat_ns: list[int], missing: int = 0) -> dict:
    """p50/p90/p99/max in milliseconds; ``missing`` deliveries count as infinitely late.

    A percentile that falls on a missing delivery is None (shown as "undelivered").
    """
    n = len(lat_ns) + missing
    if n == 0:
        return {"p50": None, "p90": None, "p99": None, "max": None, "count": 0}
    lat_ns.sort()

    def pick(p: float):
        i = max(0, math.ceil(p * n) - 1)
        return round(lat_ns[i] / 1e6, 3) if i < len(lat_ns) else None

    top = None if missing or not lat_ns else round(lat_ns[-1] / 1e6, 3)
    return {"p50": pick(0.50), "p90": pick(0.90), "p99": pick(0.99), "max": top,
            "count": len(lat_ns)}


def ws_path(spec: dict, uid: int, token: str, groups=()) -> str:
    """The /ws URL path: a real token for our server, the user id for the bare relay."""
    if spec["mode"] == "relay":
        path = f"/ws?token={uid}"
        if groups:
            path += "&groups=" + ",".join(str(g) for g in groups)
        return path
    return f"/ws?token={token}"


class Client:
    """One logical user: what it has received, per stream (survives reconnects)."""

    __slots__ = ("uid", "token", "groups", "conn", "rx", "last", "seen", "hello_last_id",
                 "synced_at", "retries", "next_try", "ready")

    def __init__(self, uid: int, token: str, groups=()) -> None:
        self.uid = uid
        self.token = token
        self.groups = tuple(groups)
        self.conn: Conn | None = None
        self.rx: dict[int, bytearray] = {}
        self.last: dict[int, int] = {}
        self.seen = 0
        self.hello_last_id = 0
        self.synced_at = 0
        self.retries = 0
        self.next_try = 0
        self.ready = False


class Stream:
    """One sender to one destination, with its own sequence numbers."""

    __slots__ = ("sid", "sender", "kind", "target", "receivers", "seq", "acked", "errored",
                 "lo", "hi")

    def __init__(self, sid: int, sender: Client, kind: int, target: int,
                 receivers: list[Client]) -> None:
        self.sid = sid
        self.sender = sender
        self.kind = kind
        self.target = target
        self.receivers = receivers
        self.seq = 0
        self.acked = bytearray()
        self.errored = bytearray()
        self.lo = self.hi = 0
        for r in receivers:
            r.rx[sid] = bytearray()


class Step:
    """One interval of the schedule at one rate."""

    __slots__ = ("rate", "seconds", "t0", "lat", "lag", "delivered", "label", "ulat",
                 "udelivered")

    def __init__(self, rate: float, seconds: float, label: str) -> None:
        self.rate = rate
        self.seconds = seconds
        self.t0 = 0
        self.lat: list[int] = []
        self.lag: list[int] = []
        self.delivered = 0
        self.label = label
        self.ulat: list[int] = []  # update frames (the mixed scenario), apart from messages
        self.udelivered = 0


class Traffic:
    """Connection handler and bookkeeping for the message scenarios."""

    def __init__(self, spec: dict, loop: Loop, meter: CpuMeter) -> None:
        self.spec = spec
        self.loop = loop
        self.meter = meter
        self.relay = spec["mode"] == "relay"
        self.relay_ping = spec["scenario"] != "idle"
        self.pad = b"x" * max(1, int(spec.get("content_len", 64)) - 36)
        self.streams: list[Stream] = []
        self.steps: list[Step] = []
        self.cur: Step | None = None
        self.sent = self.acked = self.errored = 0
        self.expected = self.delivered = 0
        self.dups = self.ooo = self.unexpected = self.bad_frames = self.dup_acks = 0
        self.errors: dict[str, int] = {}
        self.ready = 0
        self.closed = 0
        self.close_reasons: dict[str, int] = {}
        self.other: dict[str, int] = {}

    # -- connection handler -------------------------------------------------

    def on_open(self, conn: Conn, now: int) -> None:
        if self.relay:
            if self.relay_ping:
                # The relay says nothing after the 101: a pong proves its handler is running
                # (and has registered the user and groups).
                self.loop.queue(conn, PING)
            else:  # idle sockets: no frame at all (a pong would be compressed, which
                # allocates the deflate state an idle browser connection does not have)
                conn.t_ready = now
                conn.cl.ready = True
                self.ready += 1

    def pong(self, conn: Conn, now: int) -> None:
        cl = conn.cl
        if self.relay and cl is not None and not cl.ready and conn.t_ready == 0:
            conn.t_ready = now
            cl.ready = True
            self.ready += 1

    def on_close(self, conn: Conn, reason: str) -> None:
        self.closed += 1
        key = reason.split(":")[0]
        self.close_reasons[key] = self.close_reasons.get(key, 0) + 1
        if conn.cl is not None and conn.cl.ready:
            conn.cl.ready = False

    def on_text(self, conn: Conn, payload: bytes, now: int) -> None:
        try:
            d = loads(payload)
            kind = d["kind"]
        except Exception:
            self.bad_frames += 1
            return
        self.on_frame(conn, kind, d, now)

    def on_frame(self, conn: Conn, kind: str, d: dict, now: int) -> None:
        """One decoded server frame."""
        if kind == "message":
            self.delivery(conn.cl, d, now)
        elif kind == "ack":
            self.ack(d.get("client_id"))
        elif kind == "hello":
            self.hello(conn, d, now)
        elif kind == "error":
            self.error(d)
        elif kind == "pong":
            self.pong(conn, now)
        else:
            self.other[kind] = self.other.get(kind, 0) + 1

    def hello(self, conn: Conn, d: dict, now: int, adopt: bool = True) -> None:
        """``adopt``: take the hello's ``last_id`` as seen (a first connection only: after a
        reconnect the client syncs from the largest id it has itself seen)."""
        conn.t_ready = now
        conn.cl.ready = True
        conn.cl.hello_last_id = d.get("last_id") or 0
        if adopt:
            conn.cl.seen = max(conn.cl.seen, conn.cl.hello_last_id)
        self.ready += 1

    def ack(self, cid) -> None:
        try:
            sid, seq = cid.split(":", 2)[:2]
            s = self.streams[int(sid)]
            seq = int(seq)
            if s.acked[seq]:
                self.dup_acks += 1
                return
        except (AttributeError, ValueError, IndexError):
            self.unexpected += 1
            return
        s.acked[seq] = 1
        self.acked += 1
        self.expected += len(s.receivers)

    def error(self, d: dict) -> None:
        code = str(d.get("error") or d.get("code"))
        self.errors[code] = self.errors.get(code, 0) + 1
        ref = d.get("ref")
        if isinstance(ref, str) and ":" in ref:
            sid, seq = ref.split(":", 2)[:2]
            try:
                s = self.streams[int(sid)]
                if not s.errored[int(seq)]:
                    s.errored[int(seq)] = 1
                    self.errored += 1
            except (ValueError, IndexError):
                pass

    def delivery(self, cl: Client, d: dict, now: int) -> None:
        try:
            sid, seq, sched, _ = d["content"].split(":", 3)
            sid = int(sid)
            seq = int(seq)
            sched = int(sched)
            bm = cl.rx[sid]
            seen = bm[seq]
        except (KeyError, ValueError, IndexError, AttributeError, TypeError):
            self.unexpected += 1
            return
        st = self.count_arrival(cl, bm, seen, sid, seq, sched)
        if st is not None:
            st.lat.append(now - sched)
            st.delivered += 1

    def count_arrival(self, cl: Client, bm, seen: int, sid: int, seq: int,
                      sched: int) -> Step | None:
        """Count one arrival of stream ``sid``'s item ``seq`` (duplicate, order); the step
        it was scheduled in, or None for a duplicate or one before the first step."""
        if seen:
            self.dups += 1
            return None
        bm[seq] = 1
        self.delivered += 1
        if seq < cl.last.get(sid, -1):
            self.ooo += 1
        else:
            cl.last[sid] = seq
        st = self.cur
        if st is None or sched < st.t0:
            st = self.step_for(sched)
        return st

    def step_for(self, sched: int) -> Step | None:
        for st in reversed(self.steps):
            if sched >= st.t0:
                return st
        return None

    # -- connecting ---------------------------------------------------------

    def connect(self, clients: list[Client], concurrency: int = 500, deflate: bool = False,
                timeout: float = 120, settle: float = 1.0) -> dict:
        """Open one connection per client (at most ``concurrency`` handshakes at once)."""
        loop = self.loop
        todo = list(reversed(clients))
        want = self.ready + len(clients)
        closed0 = self.closed
        t0 = monotonic_ns()
        deadline = monotonic() + timeout
        while True:
            while todo and loop.opening < concurrency:
                cl = todo.pop()
                cl.conn = Conn(cl.uid, ws_path(self.spec, cl.uid, cl.token, cl.groups), self,
                               deflate=deflate, cl=cl)
                loop.open(cl.conn)
            loop.poll(0.005)
            failed = self.closed - closed0
            if self.ready + failed >= want and not todo:
                break
            if monotonic() > deadline:
                log(f"connect timed out: {self.ready}/{want} ready")
                break
        last = max((c.conn.t_ready for c in clients if c.conn and c.conn.t_ready), default=t0)
        end = monotonic() + settle
        while monotonic() < end:  # let subscriptions and registrations finish
            loop.poll(0.01)
        seconds = (last - t0) / 1e9
        ok = sum(1 for c in clients if c.conn and c.conn.state == OPEN and c.ready)
        return {"clients": len(clients), "connected": ok, "failed": len(clients) - ok,
                "seconds": round(seconds, 3),
                "rate_per_s": round(ok / seconds, 1) if seconds > 0 else None,
                "deflate_negotiated": sum(1 for c in clients
                                          if c.conn and c.conn.inflater is not None)}

    # -- the schedule -------------------------------------------------------

    def quiet(self) -> bool:
        """Every send answered and every acked message delivered."""
        return self.acked + self.errored >= self.sent and self.delivered >= self.expected

    def settle(self, seconds: float) -> None:
        """Keep reading until quiet or ``seconds`` have passed."""
        deadline = monotonic() + seconds
        while not self.quiet() and monotonic() < deadline:
            self.loop.poll(0.005)

    def _counts(self) -> dict:
        return {"dups": self.dups, "ooo": self.ooo, "unexpected": self.unexpected,
                "bad_frames": self.bad_frames, "closed": self.closed,
                "errors": sum(self.errors.values()), "errors_by_code": dict(self.errors)}

    def room(self, total: int) -> int:
        """Bitmap room each stream needs for a step of ``total`` sends (round-robin)."""
        return total // len(self.streams) + 2

    def run_step(self, rate: float, seconds: float, drain: float, label: str = "",
                 during=None) -> dict:
        """Send at ``rate`` messages a second for ``seconds``, then drain; the step's figures."""
        loop = self.loop
        streams = self.streams
        n_streams = len(streams)
        total = max(1, int(rate * seconds))
        per = self.room(total)
        for s in streams:
            s.lo = s.seq
            s.acked.extend(bytes(per))
            s.errored.extend(bytes(per))
            sid = s.sid
            for r in s.receivers:
                r.rx[sid].extend(bytes(per))
        st = Step(rate, seconds, label)
        self.steps.append(st)
        before = self._counts()
        self.meter.start()
        errored = self.send_schedule(st, total, 1e9 / rate, during)
        self.sent += total
        if errored:
            self.errored += errored
            self.errors["not_connected"] = self.errors.get("not_connected", 0) + errored
        for s in streams:
            s.hi = s.seq
        drain_deadline = monotonic() + drain
        while not self.quiet() and monotonic() < drain_deadline:
            loop.poll(0.005)
        cpu = self.meter.read()
        after = self._counts()
        acct = self.account(lambda s: (s.lo, s.hi))
        delta = {k: after[k] - before[k] for k in ("dups", "ooo", "unexpected", "bad_frames",
                                                   "closed", "errors")}
        errors_by_code = {k: v - before["errors_by_code"].get(k, 0)
                          for k, v in after["errors_by_code"].items()
                          if v - before["errors_by_code"].get(k, 0)}
        lat = percentiles(st.lat, acct["undelivered"])
        lags = percentiles(st.lag)
        receivers = sum(len(s.receivers) for s in streams) / n_streams
        result = {
            "label": label, "rate": round(rate, 1), "seconds": seconds, "sent": total,
            "acked": acct["acked"], "unacked": acct["unacked"],
            "undelivered": acct["undelivered"], "deliveries": st.delivered,
            "msgs_per_s": round(acct["acked"] / seconds, 1),
            "deliveries_per_s": round(st.delivered / seconds, 1),
            "receivers_per_msg": round(receivers, 2),
            **{k: lat[k] for k in ("p50", "p90", "p99", "max")},
            "send_lag_p99_ms": lags["p99"], "send_lag_max_ms": lags["max"],
            **delta, "errors_by_code": errors_by_code, "cpu": cpu,
        }
        limit = self.spec.get("p99_ms", 100)
        result["clean"] = bool(
            result["p99"] is not None and result["p99"] <= limit and acct["undelivered"] == 0
            and acct["unacked"] == 0 and delta["errors"] == 0 and delta["dups"] == 0
            and delta["ooo"] == 0 and delta["closed"] == 0 and delta["unexpected"] == 0)
        result["loadgen_bound"] = bool(cpu["loadgen"] >= 0.9 and (result["send_lag_p99_ms"]
                                                                   or 0) > 10)
        self.cur = None
        return result

    def send_schedule(self, st: Step, total: int, interval: float, during=None) -> int:
        """Send message ``k`` at ``t0 + k * interval``, round-robin over the streams; the
        number that could not be sent (no open connection)."""
        loop = self.loop
        streams = self.streams
        n_streams = len(streams)
        t0 = monotonic_ns() + 5_000_000
        st.t0 = t0
        self.cur = st
        lag = st.lag
        queue = loop.queue
        pad = self.pad
        k = 0
        errored = 0
        while True:
            now = monotonic_ns()
            while k < total:
                sched = t0 + int(k * interval)
                if sched > now:
                    break
                s = streams[k % n_streams]
                seq = s.seq
                s.seq = seq + 1
                sid = s.sid
                conn = s.sender.conn
                if conn is not None and conn.state == OPEN:
                    queue(conn, text_frame(SEND_TEMPLATE % (s.kind, s.target, sid, seq, sched,
                                                            pad, sid, seq)))
                    lag.append(now - sched)
                else:
                    s.errored[seq] = 1
                    errored += 1
                k += 1
            loop.flush()
            if during is not None:
                during(now)
            if k >= total:
                return errored
            wait = (t0 + int(k * interval) - monotonic_ns()) / 1e9
            loop.poll(min(max(wait, 0.0), 0.002))

    def account(self, window, streams=None) -> dict:
        """Acked, unanswered and acked-but-undelivered messages over each stream's window
        (of every stream, or of ``streams``)."""
        acked = unacked = undelivered = 0
        for s in self.streams if streams is None else streams:
            lo, hi = window(s)
            if hi <= lo:
                continue
            a = int.from_bytes(s.acked[lo:hi], "little")
            e = int.from_bytes(s.errored[lo:hi], "little")
            na = a.bit_count()
            acked += na
            unacked += (hi - lo) - (a | e).bit_count()
            if na:
                sid = s.sid
                for r in s.receivers:
                    undelivered += (a & ~int.from_bytes(r.rx[sid][lo:hi], "little")).bit_count()
        return {"acked": acked, "unacked": unacked, "undelivered": undelivered}

    def describe(self, st: dict) -> str:
        """A step's line of progress."""
        return step_line(st)

    def search(self, p: dict, profile=None) -> dict:
        """Step the rate up until a step is not clean, then bisect; the highest clean step."""
        rate = float(p["start"])
        steps: list[dict] = []
        good = bad = None
        if p.get("warm_seconds"):  # processes just started: their first seconds, not counted
            log(self.describe(self.run_step(rate / 2, p["warm_seconds"], p["drain_seconds"],
                                            label="warm")))
            self.settle(5)
        while rate <= p["max_rate"]:
            st = self.run_step(rate, p["step_seconds"], p["drain_seconds"], label="step")
            steps.append(st)
            log(self.describe(st))
            if st["clean"]:
                good = st
                rate *= p["factor"]
            else:
                bad = st
                break
        # Not even the first rate was clean: step down until one is.
        floor = p.get("min_rate", p["start"] / 40)
        while good is None and bad is not None and rate / p["factor"] >= floor:
            rate /= p["factor"]
            self.settle(30)
            st = self.run_step(rate, p["step_seconds"], p["drain_seconds"], label="down")
            steps.append(st)
            log(self.describe(st))
            if st["clean"]:
                good = st
            else:
                bad = st
        for _ in range(p.get("bisect", 2)):
            if good is None or bad is None:
                break
            self.settle(30)
            mid = round(math.sqrt(good["rate"] * bad["rate"]), -1 if good["rate"] > 200 else 0)
            if mid <= good["rate"] or mid >= bad["rate"]:
                break
            st = self.run_step(mid, p["step_seconds"], p["drain_seconds"], label="bisect")
            steps.append(st)
            log(self.describe(st))
            if st["clean"]:
                good = st
            else:
                bad = st
        self.settle(15)
        prof = None
        if profile and good is not None and profile.get("seconds"):
            prof = run_profile(self, good["rate"], profile, p)
            self.settle(15)
        self.settle(10)
        final = self.account(lambda s: (0, s.seq))
        return {"steps": steps, "best": good, "first_failure": bad,
                "lost": final["undelivered"], "unacked_total": final["unacked"],
                "dups_total": self.dups, "ooo_total": self.ooo,
                "errors_total": dict(self.errors), "closed_total": self.closed,
                "close_reasons": dict(self.close_reasons), "other_frames": dict(self.other),
                "profile": prof}


def step_line(st: dict) -> str:
    def ms(v):
        return "undelivered" if v is None else f"{v:.1f}"
    return (f"{st['label']:6} rate={st['rate']:>8} acked/s={st['msgs_per_s']:>9} "
            f"deliv/s={st['deliveries_per_s']:>9} p50={ms(st['p50'])} p99={ms(st['p99'])} "
            f"max={ms(st['max'])} lost={st['undelivered']} unacked={st['unacked']} "
            f"err={st['errors']} lag99={st['send_lag_p99_ms']} cpu={st['cpu']} "
            f"{'clean' if st['clean'] else 'NOT CLEAN'}")


def run_profile(traffic: Traffic, rate: float, profile: dict, p: dict) -> dict:
    """A fixed-rate step at the best clean rate while py-spy samples the server worker."""
    pid = traffic.spec["server_workers"][0]
    seconds = float(profile["seconds"])
    procs = []
    started = {}

    def start_spy(now):
        if started:
            return
        started["t"] = now
        for fmt, path in (("raw", profile["raw"]), ("flamegraph", profile["svg"])):
            procs.append(subprocess.Popen(
                [profile["py_spy"], "record", "--pid", str(pid), "--duration",
                 str(max(1, int(seconds - 2))), "--rate", "100", "--nonblocking",
                 "--format", fmt, "-o", path],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))

    log(f"profiling the server worker {pid} at {rate} msgs/s for {seconds:.0f} s")
    st = traffic.run_step(rate, seconds, p["drain_seconds"], label="profile", during=start_spy)
    log(step_line(st))
    errors = []
    for proc in procs:
        try:
            _, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            err = b"timeout"
        if proc.returncode:
            errors.append(err.decode(errors="replace")[-500:])
    return {"rate": rate, "step": st, "raw": profile["raw"], "svg": profile["svg"],
            "errors": errors}


# -- scenarios ----------------------------------------------------------------


def _setup(spec: dict):
    loop = Loop(spec["host"], spec["port"], kernel_stamps=spec.get("kernel_stamps", True))
    meter = CpuMeter({"server": spec.get("server_pids", []),
                      **{k: v for k, v in spec.get("aux_pids", {}).items()}})
    return loop, meter


def _pairs_connected(spec: dict):
    """Pairs of users, a stream each way, every client connected: (loop, traffic, clients,
    connect figures)."""
    loop, meter = _setup(spec)
    traffic = Traffic(spec, loop, meter)
    clients = [Client(uid, tok) for uid, tok in spec["users"]]
    for i in range(0, len(clients) - 1, 2):
        a, b = clients[i], clients[i + 1]
        traffic.streams.append(Stream(len(traffic.streams), a, 1, b.uid, [b]))
        traffic.streams.append(Stream(len(traffic.streams), b, 1, a.uid, [a]))
    conn = traffic.connect(clients, concurrency=spec.get("concurrency", 200))
    log(f"connected {conn}")
    return loop, traffic, clients, conn


def scenario_pairs(spec: dict) -> dict:
    """Private messages between users who follow each other, both ways."""
    loop, traffic, clients, conn = _pairs_connected(spec)
    result = traffic.search(spec["search"], profile=spec.get("profile"))
    result["connect"] = conn
    result["streams"] = len(traffic.streams)
    result["connections"] = len(clients)
    return result


def scenario_steady(spec: dict) -> dict:
    """Pairs traffic at one fixed rate for one long step, while something else loads the
    server (the uploads scenario): touches ``ready_file`` once connected (and waits
    ``lead`` seconds for the other load to start), ``stop_file`` when the step is over."""
    loop, traffic, clients, conn = _pairs_connected(spec)
    open(spec["ready_file"], "w").close()
    lead = monotonic() + spec.get("lead", 2)  # the uploads get going first
    while monotonic() < lead:
        loop.poll(0.005)
    step = traffic.run_step(spec["rate"], spec["seconds"], spec.get("drain_seconds", 4),
                            label="steady")
    open(spec["stop_file"], "w").close()
    log(step_line(step))
    return {"step": step, "connect": conn, "streams": len(traffic.streams),
            "connections": len(clients), "lost": step["undelivered"]}


def scenario_group(spec: dict) -> dict:
    """Messages to one group: every member is connected, a few of them send."""
    loop, meter = _setup(spec)
    traffic = Traffic(spec, loop, meter)
    gid = spec["group_id"]
    clients = [Client(uid, tok, groups=(gid,)) for uid, tok in spec["members"]]
    for cl in clients[:spec["senders"]]:
        receivers = [c for c in clients if c is not cl]
        traffic.streams.append(Stream(len(traffic.streams), cl, 4, gid, receivers))
    conn = traffic.connect(clients, concurrency=spec.get("concurrency", 200))
    log(f"connected {conn}")
    result = traffic.search(spec["search"])
    result["connect"] = conn
    result["members"] = len(clients)
    result["senders"] = len(traffic.streams)
    return result


def _server_rss(spec: dict) -> int:
    return sum(rss_bytes(p) for p in spec["server_workers"])


def scenario_idle(spec: dict) -> dict:
    """Idle sockets in growing tiers on one server: connect rate, server memory per connection.

    After a warm-up (100 connections opened and closed, so that lazy imports and
    caches are paid for), the worker's RSS is read; then the tiers are filled one
    after the other (1,000, then 4,000 more to 5,000, ...), and after each the RSS
    again: (RSS - RSS before) / connections open.
    """
    loop, meter = _setup(spec)
    traffic = Traffic(spec, loop, meter)
    users = spec["users"]
    deflate = spec.get("deflate", True)
    warm = [Client(uid, tok) for uid, tok in users[:spec.get("warm", 100)]]
    traffic.connect(warm, concurrency=100, deflate=deflate)
    for cl in warm:
        if cl.conn.state != CLOSED:
            loop.close(cl.conn, abort=False)
    end = monotonic() + 2
    while monotonic() < end:
        loop.poll(0.05)
    sleep(1)
    rss0 = _server_rss(spec)
    clients = [Client(uid, tok) for uid, tok in users]
    tiers = {}
    done = 0
    for n in spec["tiers"]:
        batch = clients[done:n]
        meter.start()
        conn = traffic.connect(batch, concurrency=spec.get("concurrency", 500), deflate=deflate,
                               timeout=spec.get("timeout", 600), settle=spec.get("settle", 3))
        cpu = meter.read()
        done = n
        rss = _server_rss(spec)
        open_now = sum(1 for c in clients[:n] if c.conn and c.conn.state == OPEN)
        tiers[n] = {"n": n, "connect": conn, "cpu_connect": cpu, "rss_before": rss0,
                    "rss_after": rss, "open": open_now,
                    "bytes_per_conn": round((rss - rss0) / max(1, open_now)),
                    "kib_per_conn": round((rss - rss0) / max(1, open_now) / 1024, 1)}
        log(f"idle tier {n}: {open_now} open, {tiers[n]['kib_per_conn']} KiB/conn, "
            f"{conn['rate_per_s']} connects/s, cpu={cpu}")
    closed0 = traffic.closed
    end = monotonic() + spec.get("hold", 5)
    while monotonic() < end:
        loop.poll(0.05)
    still = sum(1 for c in clients if c.conn and c.conn.state == OPEN)
    for t in tiers.values():
        t["open_at_end"] = still if t["n"] == done else t["open"]
    result = {"tiers": tiers, "rss_after_hold": _server_rss(spec),
              "closed_during_hold": traffic.closed - closed0, "open_at_end": still,
              "close_reasons": dict(traffic.close_reasons)}
    for cl in clients:
        if cl.conn and cl.conn.state != CLOSED:
            loop.close(cl.conn, abort=True)
    return result


class StormTraffic(Traffic):
    """Traffic that also reconnects dropped clients and syncs them."""

    def __init__(self, spec, loop, meter) -> None:
        super().__init__(spec, loop, meter)
        self.reconnecting = False
        self.t_drop = 0
        self.synced = 0
        self.sync_pages = 0
        self.sync_messages = 0
        self.retry_queue: list[Client] = []
        self.retries = 0
        self.sync_retry: list[tuple[int, Client]] = []
        self.sync_retries = 0
        self.storm_clients: set[int] = set()
        self.ids: dict[tuple[int, int], int] = {}  # (stream, seq) -> message id, from acks
        self.since: dict[int, int] = {}  # user id -> since_id of its first sync
        self.hello_at: dict[int, int] = {}

    def ack(self, cid, mid=None) -> None:
        super().ack(cid)
        try:
            sid, seq = cid.split(":", 2)[:2]
            self.ids[(int(sid), int(seq))] = mid
        except (AttributeError, ValueError):
            pass

    def lost_examples(self, limit: int = 20) -> list[dict]:
        """Acked messages a storm client never got: for the server's engineers."""
        out = []
        for s in self.streams:
            for r in s.receivers:
                bm = r.rx[s.sid]
                for seq in range(s.seq):
                    if s.acked[seq] and not bm[seq]:
                        out.append({"recipient": r.uid, "sender": s.sender.uid, "seq": seq,
                                    "id": self.ids.get((s.sid, seq)),
                                    "since_id": self.since.get(r.uid),
                                    "hello_s": round((self.hello_at.get(r.uid, 0) - self.t_drop)
                                                     / 1e9, 3),
                                    "synced_s": round((r.synced_at - self.t_drop) / 1e9, 3)
                                    if r.synced_at else None})
                        if len(out) >= limit:
                            return out
        return out

    def on_frame(self, conn: Conn, kind: str, d: dict, now: int) -> None:
        """One decoded server frame; also the storm's hello -> sync -> synced round."""
        cl = conn.cl
        if kind == "message":
            mid = d.get("id") or 0
            if mid > cl.seen:
                cl.seen = mid
            self.delivery(cl, d, now)
        elif kind == "ack":
            self.ack(d.get("client_id"), d.get("id"))
        elif kind == "hello":
            self.hello(conn, d, now, adopt=not self.reconnecting)
            if self.reconnecting and cl.uid in self.storm_clients:
                self.hello_at[cl.uid] = now
                self.since.setdefault(cl.uid, cl.seen)
                self.loop.queue(conn, text_frame(orjson.dumps(
                    {"type": 7, "since_id": cl.seen, "limit": 1000})))
        elif kind == "sync":
            self.sync_pages += 1
            top = cl.seen
            for m in d.get("messages", ()):
                self.sync_messages += 1
                if m.get("id", 0) > top:
                    top = m["id"]
                if m.get("sender_id") != cl.uid:
                    self.delivery(cl, m, now)
            cl.seen = top
            if d.get("has_more"):
                self.loop.queue(conn, text_frame(orjson.dumps(
                    {"type": 7, "since_id": cl.seen, "limit": 1000})))
            elif not cl.synced_at:
                cl.synced_at = now
                self.synced += 1
        elif kind == "error":
            self.error(d)
            if d.get("ref") == 7 and self.reconnecting and cl.uid in self.storm_clients \
                    and not cl.synced_at:
                # 503 to a sync: a careful client retries after a moment (docs/protocol.md 3.6).
                self.sync_retries += 1
                self.sync_retry.append((now + int(random.uniform(0.1, 0.3) * 1e9), cl))
        elif kind == "pong":
            self.pong(conn, now)
        else:
            self.other[kind] = self.other.get(kind, 0) + 1

    def send_sync(self, cl: Client) -> None:
        if cl.conn is not None and cl.conn.state == OPEN:
            self.loop.queue(cl.conn, text_frame(orjson.dumps(
                {"type": 7, "since_id": cl.seen, "limit": 1000})))

    def on_close(self, conn: Conn, reason: str) -> None:
        super().on_close(conn, reason)
        cl = conn.cl
        if self.reconnecting and cl.uid in self.storm_clients and not cl.synced_at:
            # A real client backs off a little, with jitter, and tries again.
            cl.retries += 1
            self.retries += 1
            cl.next_try = monotonic_ns() + int(random.uniform(0.05, 0.25) * 1e9 * min(
                cl.retries, 8))
            self.retry_queue.append(cl)

    def reopen(self, cl: Client) -> None:
        cl.conn = Conn(cl.uid, ws_path(self.spec, cl.uid, cl.token), self, cl=cl)
        self.loop.open(cl.conn)

    def tend(self, now: int) -> None:
        """Retry failed reconnects and refused syncs whose back-off has passed."""
        if self.sync_retry:
            due = [cl for t, cl in self.sync_retry if t <= now]
            if due:
                self.sync_retry = [(t, cl) for t, cl in self.sync_retry if t > now]
                for cl in due:
                    self.send_sync(cl)
        if self.retry_queue:
            due = [c for c in self.retry_queue if c.next_try <= now]
            if due:
                self.retry_queue = [c for c in self.retry_queue if c.next_try > now]
                for cl in due:
                    self.reopen(cl)


def scenario_storm(spec: dict) -> dict:
    """Clients dropped at once reconnect and sync while messages keep arriving for them."""
    loop, meter = _setup(spec)
    traffic = StormTraffic(spec, loop, meter)
    storm = [Client(uid, tok) for uid, tok in spec["storm_users"]]
    writers = [Client(uid, tok) for uid, tok in spec["writers"]]
    traffic.storm_clients = {c.uid for c in storm}
    per_writer = len(storm) // len(writers)
    for j, w in enumerate(writers):
        for t in storm[j * per_writer:(j + 1) * per_writer]:
            traffic.streams.append(Stream(len(traffic.streams), w, 1, t.uid, [t]))
    conn = traffic.connect(storm + writers, concurrency=spec.get("concurrency", 500))
    log(f"connected {conn}")
    rate = spec["rate"]
    warm = traffic.run_step(rate, spec["warm_seconds"], 3, label="before")
    log(step_line(warm))
    traffic.settle(10)
    # Drop every storm client at once (TCP reset, as a network failure would) and
    # reconnect them all immediately, while the writers go on sending.
    traffic.reconnecting = True
    t_drop = traffic.t_drop = monotonic_ns()
    for cl in storm:
        cl.synced_at = 0
        cl.ready = False
        loop.close(cl.conn, abort=True)
    for cl in storm:
        cl.retries = 0
        traffic.reopen(cl)
    log(f"dropped and reconnecting {len(storm)} clients")
    meter.start()
    during = traffic.run_step(rate, spec["down_seconds"], 0, label="during",
                              during=traffic.tend)
    deadline = monotonic() + spec.get("timeout", 60)
    t_complete = None
    while monotonic() < deadline:
        loop.poll(0.005)
        traffic.tend(monotonic_ns())
        if traffic.synced >= len(storm) and traffic.quiet():
            t_complete = monotonic_ns()
            break
    cpu = meter.read()
    acct = traffic.account(lambda s: (0, s.seq))
    back = [c.conn.t_ready for c in storm if c.conn and c.conn.t_ready and c.ready]
    synced = [c.synced_at for c in storm if c.synced_at]

    def secs(t):
        return round((t - t_drop) / 1e9, 3) if t else None

    result = {
        "clients": len(storm), "writers": len(writers), "rate": rate,
        "connect": conn, "before": warm, "during_sent": during["sent"],
        "back": len(back), "synced": len(synced),
        "all_back_s": secs(max(back)) if len(back) == len(storm) else None,
        "all_synced_s": secs(max(synced)) if len(synced) == len(storm) else None,
        "complete_s": secs(t_complete),
        "p50_back_s": secs(sorted(back)[len(back) // 2]) if back else None,
        "retries": traffic.retries, "sync_retries": traffic.sync_retries,
        "sync_pages": traffic.sync_pages,
        "sync_messages": traffic.sync_messages,
        "lost": acct["undelivered"], "unacked": acct["unacked"],
        "dups_before_dedup": traffic.dups, "errors": dict(traffic.errors),
        "lost_examples": traffic.lost_examples() if acct["undelivered"] else [],
        "close_reasons": dict(traffic.close_reasons), "cpu": cpu,
    }
    log(f"storm back={result['all_back_s']}s synced={result['all_synced_s']}s "
        f"complete={result['complete_s']}s lost={result['lost']} retries={traffic.retries}")
    return result


class HistoryClient:
    """One connection asking for pages of one conversation, one request at a time."""

    def __init__(self, spec: dict) -> None:
        self.spec = spec
        self.lat: list[int] = []
        self.sizes: list[int] = []
        self.errors = 0
        self.t_sent = 0
        self.waiting = False
        self.ready = False

    def on_open(self, conn, now):
        pass

    def on_close(self, conn, reason):
        self.errors += 1
        self.waiting = False

    def on_text(self, conn, payload, now):
        d = loads(payload)
        kind = d.get("kind")
        if kind == "hello":
            self.ready = True
        elif kind == "history" and self.waiting:
            self.lat.append(now - self.t_sent)
            self.sizes.append(len(d.get("messages", ())))
            self.waiting = False
        elif kind == "error":
            self.errors += 1
            self.waiting = False


def scenario_history(spec: dict) -> dict:
    """Pages of 50 of one conversation in a table of 1,000,000 messages: WS and HTTP."""
    loop, meter = _setup(spec)
    hc = HistoryClient(spec)
    uid, token = spec["user"]
    conn = Conn(uid, f"/ws?token={token}", hc)
    loop.open(conn)
    deadline = monotonic() + 30
    while not hc.ready and monotonic() < deadline:
        loop.poll(0.01)
    rng = random.Random(7)
    lo, hi = spec["first_id"], spec["last_id"]
    limit = spec.get("limit", 50)
    meter.start()
    for i in range(spec["pages"]):
        frame = {"type": 3, "recipient_id": spec["peer_id"], "limit": limit}
        if i % 10:  # one request in ten asks for the newest page
            frame["before_id"] = rng.randint(lo + limit * 3, hi)
        hc.t_sent = monotonic_ns()
        hc.waiting = True
        loop.send_now(conn, text_frame(orjson.dumps(frame)))
        while hc.waiting:
            loop.poll(1.0)
    cpu_ws = meter.read()
    ws = percentiles(hc.lat)
    ws["short_pages"] = sum(1 for s in hc.sizes if s != limit)
    ws["errors"] = hc.errors
    ws["cpu"] = cpu_ws
    loop.close(conn, abort=False)
    # The same over HTTP (GET /api/messages/<id>), one keep-alive connection.
    web = http.client.HTTPConnection(spec["host"], spec["port"], timeout=30)
    headers = {"Authorization": f"Bearer {token}"}
    lat = []
    errors = 0
    for i in range(spec["http_pages"]):
        path = f"/api/messages/{spec['peer_id']}?limit={limit}"
        if i % 10:
            path += f"&before_id={rng.randint(lo + limit * 3, hi)}"
        t = monotonic_ns()
        web.request("GET", path, headers=headers)
        resp = web.getresponse()
        body = resp.read()
        lat.append(monotonic_ns() - t)
        if resp.status != 200 or len(orjson.loads(body)["messages"]) != limit:
            errors += 1
    web.close()
    hp = percentiles(lat)
    hp["errors"] = errors
    log(f"history ws p50={ws['p50']} p99={ws['p99']} max={ws['max']} | http p50={hp['p50']} "
        f"p99={hp['p99']}")
    return {"ws": ws, "http": hp, "pages": spec["pages"], "limit": limit,
            "conversation_messages": spec.get("conversation_messages"),
            "table_messages": spec.get("table_messages")}


def scenario_mixed(spec: dict) -> dict:
    """Pairs traffic with replies, mentions, edits, recalls and reactions (bench/mixed.py)."""
    from .mixed import scenario_mixed as run  # late: bench.mixed builds on this module
    return run(spec)


SCENARIOS = {"pairs": scenario_pairs, "mixed": scenario_mixed, "steady": scenario_steady,
             "group": scenario_group,
             "idle": scenario_idle, "storm": scenario_storm, "history": scenario_history}


def raise_nofile() -> None:
    """Lift the soft limit on open files to the hard limit (10,000+ sockets)."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    raise_nofile()
    with open(argv[1]) as f:
        spec = json.load(f)
    log(f"scenario {spec['scenario']} mode={spec['mode']} on CPUs "
        f"{sorted(os.sched_getaffinity(0))} -> {spec['host']}:{spec['port']}")
    result = SCENARIOS[spec["scenario"]](spec)
    with open(argv[2], "w") as f:
        json.dump(result, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
