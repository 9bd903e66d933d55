"""The benchmark, in one command: ``python -m bench`` (full) or ``python -m bench --quick``.

It builds a database of its own, starts the chat server the production way
(gunicorn, gevent worker, MariaDB, Redis) pinned to one core, and the bare
flask-sock relay the same way, and drives each with the load generator
(``bench/loadgen.py``) pinned to another core. Results: ``bench/results/``
(JSON per run, ``latest.json``, ``results.md``) and the table in
``bench/README.md``. See bench/README.md for what each scenario does.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import types
import urllib.error
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import kernel, procstat, report  # noqa: E402
from bench.fixtures import ApiUser, BenchDB, delete_redis_prefix  # noqa: E402
from bench.mixed import parse_cycle  # noqa: E402
from bench.nginx import Nginx  # noqa: E402
from bench.ports import free_port  # noqa: E402
from bench.privdb import PrivateMariaDB  # noqa: E402

BENCH = ROOT / "bench"
RESULTS = BENCH / "results"
PASSWORD = "bench-password-1234"

# Sizes: the full run (about 20-30 minutes) and --quick (a couple of minutes).
FULL = {
    "pairs_users": 500, "group_sizes": [100, 1000], "group_senders": 50,
    "idle": [1000, 5000, 10000], "storm": 5000, "storm_writers": 50, "storm_rate": 200,
    "storm_warm": 5, "storm_down": 3,
    "history_rows": 1_000_000, "history_every": 10, "history_pages": 2000,
    "history_http_pages": 500,
    "step_seconds": 8, "drain_seconds": 4, "factor": 1.5, "bisect": 2,
    "pairs_start": 1000, "group_start": {100: 20, 1000: 4}, "max_rate": 200_000,
    "profile_seconds": 20, "workers": [1, 2], "idle_hold": 5, "mixed_cycle": "",
    "uploaders": 20, "upload_mib": 5, "upload_seconds": 30, "upload_rate": 5000,
}
QUICK = {
    "pairs_users": 100, "group_sizes": [100], "group_senders": 20,
    "idle": [500, 1000], "storm": 500, "storm_writers": 10, "storm_rate": 100,
    "storm_warm": 2, "storm_down": 2,
    "history_rows": 100_000, "history_every": 10, "history_pages": 300,
    "history_http_pages": 100,
    "step_seconds": 2, "drain_seconds": 2, "factor": 2.0, "bisect": 0,
    "pairs_start": 500, "group_start": {100: 10, 1000: 2}, "max_rate": 200_000,
    "profile_seconds": 6, "workers": [1], "idle_hold": 2, "mixed_cycle": "",
    "uploaders": 20, "upload_mib": 5, "upload_seconds": 8, "upload_rate": 1000,
}
# History last: its bulk insert of a million rows leaves InnoDB flushing dirty pages
# for minutes, which slows every COMMIT (and so every scenario that follows it).
# Mixed right after pairs: its figure is given as a ratio to plain pairs of the same run;
# uploads too: its chat traffic runs at half the plain pairs rate of the same run.
# Balanced after pairs and group: its figures are ratios to one process direct.
SCENARIOS = ("pairs", "mixed", "uploads", "group", "balanced", "idle", "storm", "history")


def relay_users(users: list) -> list:
    """The same users for the bare relay, whose token is the user id (no secret)."""
    return [[u, ""] for u, _ in users]


def say(message: str) -> None:
    print(f"[bench] {message}", flush=True)



def raise_nofile() -> int:
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def sh(*cmd: str) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=20).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


def machine_info() -> dict:
    """What the figures were measured on."""
    model = ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = 0
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal:"):
                mem = int(line.split()[1]) * 1024
    except OSError:
        pass
    dirty = sh("git", "-C", str(ROOT), "status", "--porcelain")
    return {
        "nproc": os.cpu_count(), "cpu_model": model, "ram_gib": round(mem / 2**30, 1),
        "python": platform.python_version(), "kernel": platform.release(),
        "mariadb": sh("mysql", "-uroot", "-h127.0.0.1", "-N", "-e", "SELECT VERSION()"),
        "redis": sh("redis-server", "--version").split(" v=")[-1].split(" ")[0],
        "git_commit": sh("git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"),
        "git_dirty": bool(dirty), "loadavg_start": os.getloadavg(),
    }


class Server:
    """A gunicorn server (the chat server or the bare relay), pinned to the server CPUs."""

    def __init__(self, kind: str, workers: int, env: dict, cpus: str | None, logdir: Path,
                 label: str) -> None:
        self.kind = kind
        self.workers = workers
        self.port = free_port()
        self.cpus = cpus
        self.label = label
        self.log_path = logdir / f"server-{label}.log"
        self.env = {**os.environ, **env, "CHAT_BIND": f"127.0.0.1:{self.port}",
                    "CHAT_WORKERS": str(workers), "PYTHONUNBUFFERED": "1"}
        gunicorn = str(Path(sys.executable).parent / "gunicorn")
        if kind == "chat":
            argv = [gunicorn, "-c", str(ROOT / "deploy" / "gunicorn.conf.py"), "wsgi:app"]
        else:
            argv = [gunicorn, "-c", str(BENCH / "relay_gunicorn.conf.py"), "bench.relay_app:app"]
        self.argv = (["taskset", "-c", cpus] if cpus else []) + argv
        self.proc: subprocess.Popen | None = None
        self.worker_pids: list[int] = []

    def start(self, timeout: float = 60) -> "Server":
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.argv, cwd=ROOT, env=self.env, stdout=log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.label} exited at start:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz",
                                            timeout=2) as r:
                    body = json.loads(r.read())
                workers = procstat.children(self.proc.pid)
                if len(workers) >= self.workers and (self.kind != "chat"
                                                    or body.get("bus") in ("ok", "off")):
                    self.worker_pids = workers
                    time.sleep(1.0 if self.workers > 1 else 0.3)
                    self.worker_pids = procstat.children(self.proc.pid)
                    return self
            except (urllib.error.URLError, OSError, ValueError):
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{self.label} did not start:\n{self.log_tail()}")

    @property
    def pids(self) -> list[int]:
        return [self.proc.pid, *self.worker_pids] if self.proc else []

    def metrics(self) -> dict:
        """The chat server's /metrics counters (one worker's)."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as r:
                text = r.read().decode()
        except (urllib.error.URLError, OSError):
            return {}
        out = {}
        for line in text.splitlines():
            if line.startswith("#") or " " not in line:
                continue
            name, value = line.rsplit(" ", 1)
            if "{" not in name:
                try:
                    out[name] = float(value)
                except ValueError:
                    pass
        return out

    def stop(self) -> dict:
        """SIGTERM (graceful), SIGKILL after 30 s; returns what the log says went wrong."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        return self.log_summary()

    def log_tail(self, size: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-size:]
        except OSError:
            return ""

    def log_summary(self) -> dict:
        """Errors, tracebacks and worker restarts in the server's log."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return {}
        lines = text.splitlines()
        bad = [ln for ln in lines if re.search(r"\b(ERROR|CRITICAL|Traceback)\b", ln)]
        warn = [ln for ln in lines if " WARNING " in ln]
        kinds: dict[str, int] = {}
        for ln in warn:
            m = re.search(r"event=(\w+)", ln)
            key = m.group(1) if m else ln[-80:]
            kinds[key] = kinds.get(key, 0) + 1
        return {"log": str(self.log_path), "errors": len(bad), "error_sample": bad[:5],
                "warnings": kinds,
                "worker_boots": sum(1 for ln in lines if "Booting worker" in ln),
                "worker_timeouts": sum(1 for ln in lines if "WORKER TIMEOUT" in ln)}


class Bench:
    """One run: fixtures, servers, scenarios, results."""

    def __init__(self, args) -> None:
        self.args = args
        self.size = dict(QUICK if args.quick else FULL)
        if args.workers:
            self.size["workers"] = args.workers
        for item in args.set or []:
            key, _, value = item.partition("=")
            if key not in self.size:
                raise SystemExit(f"--set: unknown size {key!r}; one of {sorted(self.size)}")
            self.size[key] = json.loads(value)
            if key == "group_start":
                self.size[key] = {int(k): v for k, v in self.size[key].items()}
        if self.size["mixed_cycle"]:
            try:
                parse_cycle(self.size["mixed_cycle"])
            except ValueError as exc:
                raise SystemExit(f"--set mixed_cycle: {exc}") from None
        ncpu = os.cpu_count() or 1
        if args.no_pin or ncpu < 2:
            self.server_cpus = self.client_cpus = None
        else:
            self.server_cpus, self.client_cpus = args.server_cpus, args.client_cpus
        self.workdir = Path(tempfile.mkdtemp(prefix="chat-bench-"))
        # The database server: the shared one on :3306 with its defaults, or a private
        # mariadbd on deploy/mariadb.cnf (the README's production settings).
        self.private_db = PrivateMariaDB(self.workdir) if args.db == "private" else None
        self.db = BenchDB(args.db_name, port=self.private_db.port if self.private_db else 3306)
        self.db.search_index = not args.no_search_index
        self.redis_url = args.redis_url
        self.prefix = f"chat-bench-{secrets.token_hex(4)}:"
        self.secret = secrets.token_urlsafe(48)
        self.results: dict = {"scenarios": {}, "servers": {}}
        self.aux = {"mariadb": procstat.find_by_name("mariadbd", "mysqld"),
                    "redis": procstat.find_by_name("redis-server")}
        self.only = set(args.only.split(",")) if args.only else set(SCENARIOS)
        self.baseline = not args.no_baseline

    # -- plumbing -------------------------------------------------------------

    def chat_env(self) -> dict:
        return {"CHAT_CONFIG": "production", "SECRET_KEY": self.secret,
                "CHAT_SECURE_COOKIES": "0",
                "DATABASE_URL": self.db.url + (f"&{self.args.db_options}" if self.args.db_options
                                               else ""),
                "REDIS_URL": self.redis_url, "CHAT_REDIS_PREFIX": self.prefix,
                "CHAT_RATE_PER_MINUTE": str(self.args.rate_per_minute),
                "CHAT_SHUTDOWN_GRACE": "3", "CHAT_SEED_DEMO": "0"}

    def settle_database(self) -> None:
        """Before a chat server starts, the database as the first scenario found it: the
        search index caught up (``index_backlog``) and, on the run's own mariadbd, InnoDB's
        dirty pages written back (``settle``). Both are logged and kept in the results
        (``settled``)."""
        t = time.time()
        indexed = self.db.index_backlog()
        dirty, waited = self.db.settle(flush=self.private_db is not None)
        if indexed or waited >= 1:
            say(f"settled: {indexed:,} messages left unindexed by the last scenario indexed, "
                f"{dirty:,} dirty InnoDB pages written back, {time.time() - t:.1f} s")
        self.results.setdefault("settled", []).append(
            {"indexed": indexed, "dirty_pages": dirty, "seconds": round(time.time() - t, 1)})

    def server(self, kind: str, workers: int, label: str) -> Server:
        env = self.chat_env() if kind == "chat" else {}
        if kind == "chat":
            self.settle_database()
        srv = Server(kind, workers, env, self.server_cpus, self.workdir, label)
        say(f"starting {label} ({kind}, {workers} worker{'s' if workers > 1 else ''}) "
            f"on 127.0.0.1:{srv.port}" + (f", CPUs {self.server_cpus}" if self.server_cpus
                                          else ""))
        return srv.start()

    def loadgen(self, name: str, spec: dict, srv: Server) -> dict:
        spec = {"host": "127.0.0.1", "port": srv.port, "mode": "chat" if srv.kind == "chat"
                else "relay", "server_pids": srv.pids, "server_workers": srv.worker_pids,
                "aux_pids": self.aux if srv.kind == "chat" else {}, **spec}
        spec_path = self.workdir / f"spec-{name}.json"
        out_path = self.workdir / f"out-{name}.json"
        spec_path.write_text(json.dumps(spec))
        argv = [sys.executable, "-m", "bench.loadgen", str(spec_path), str(out_path)]
        if self.client_cpus:
            argv = ["taskset", "-c", self.client_cpus] + argv
        proc = subprocess.run(argv, cwd=ROOT)
        if proc.returncode != 0 or not out_path.exists():
            raise RuntimeError(f"load generator failed for {name} (exit {proc.returncode})")
        return json.loads(out_path.read_text())

    def measure(self, kind: str, workers: int, label: str, name: str, spec: dict) -> dict:
        """A fresh server, one load generator run against it, the server stopped."""
        srv = self.server(kind, workers, label)
        try:
            return self.loadgen(name, spec, srv)
        finally:
            self.finish_server(srv)

    def record(self, scenario: str, who: str, result: dict) -> None:
        self.results["scenarios"].setdefault(scenario, {})[who] = result
        self.save(partial=True)

    def finish_server(self, srv: Server, extra: dict | None = None) -> dict:
        info = {"rss_end": sum(procstat.rss_bytes(p) for p in srv.worker_pids)}
        if srv.kind == "chat":
            m = srv.metrics()
            if m:
                info["metrics"] = {k: m[k] for k in ("chat_messages_in_total",
                                                     "chat_commit_batches_total",
                                                     "chat_frames_out_total") if k in m}
        info.update(srv.stop())
        info.update(extra or {})
        self.results["servers"][srv.label] = info
        if info.get("errors") or info.get("worker_timeouts"):
            say(f"{srv.label}: {info.get('errors')} error lines, "
                f"{info.get('worker_timeouts')} worker timeouts; see {info.get('log')}")
        return info

    def search_params(self, start: float) -> dict:
        s = self.size
        return {"start": start, "factor": s["factor"], "max_rate": s["max_rate"],
                "bisect": s["bisect"], "step_seconds": s["step_seconds"],
                "drain_seconds": s["drain_seconds"]}

    # -- the run ----------------------------------------------------------------

    def setup(self) -> None:
        s = self.size
        say(f"database {self.db.name} (dropped and rebuilt by the migrations), Redis "
            f"{self.redis_url} prefix {self.prefix}")
        self.db.recreate()
        # Two users the real way: register, token and follow over the HTTP API.
        srv = self.server("chat", 1, "setup")
        try:
            base = f"http://127.0.0.1:{srv.port}"
            tag = secrets.token_hex(3)
            self.api_users = [ApiUser(base, f"hist_{tag}_{i}", PASSWORD) for i in range(2)]
            self.api_users[0].follow(self.api_users[1])
            self.api_users[1].follow(self.api_users[0])
        finally:
            self.finish_server(srv)
        password_hash = self.db.password_hash_of(self.api_users[0].user_id)
        need = (max(max(s["idle"]), s["storm"]) + s["storm_writers"]
                + s["pairs_users"] * (2 * len(s["workers"]) + 5) + s["uploaders"] + 100
                + (sum(s["group_sizes"]) * (1 + len(s["workers"]))) + 10)
        t = time.time()
        self.db.create_pool(need, password_hash)
        say(f"{need} users with tokens inserted in {time.time() - t:.1f} s")
        # The idle and storm clients share the first block; it also names the
        # filler conversations of the history table.
        self.block = self.db.take(max(max(s["idle"]), s["storm"]))

    def run_history(self) -> None:
        s = self.size
        a, b = self.api_users
        t = time.time()
        info = self.db.fill_history(s["history_rows"], s["history_every"], a.user_id, b.user_id,
                                    filler_base=self.block[0][0])
        say(f"history: {info['table_messages']:,} messages in the table, "
            f"{info['conversation_messages']:,} in the measured conversation "
            f"({time.time() - t:.0f} s to insert, and to index {info['search_indexed']:,} "
            f"for search as search-reindex would)")
        res = self.measure("chat", 1, "chat-history", "history", {
            "scenario": "history", "user": [a.user_id, a.token], "peer_id": b.user_id,
            "pages": s["history_pages"], "http_pages": s["history_http_pages"],
            "limit": 50, **info})
        self.record("history", "ours_1w", res)

    def run_pairs(self) -> None:
        s = self.size
        for workers in s["workers"]:
            users = self.db.take(s["pairs_users"])
            self.db.follow_both_ways([(users[i][0], users[i + 1][0])
                                      for i in range(0, len(users) - 1, 2)])
            res = self.measure("chat", workers, f"chat-pairs-{workers}w", f"pairs-{workers}w", {
                "scenario": "pairs", "users": users, "concurrency": 200,
                "search": self.search_params(s["pairs_start"]),
                "profile": self.profile_spec("pairs") if workers == 1 else None})
            self.read_profile(res)
            self.record("pairs", f"ours_{workers}w", res)
            if workers == 1 and self.baseline:
                self.relay_pairs(users)

    def profile_spec(self, name: str) -> dict | None:
        """Where py-spy's profile of a scenario's best rate goes (None: no profile)."""
        py_spy = shutil.which("py-spy", path=str(Path(sys.executable).parent) + os.pathsep
                              + os.environ.get("PATH", ""))
        if not (self.args.profile and py_spy):
            return None
        return {"seconds": self.size["profile_seconds"], "py_spy": py_spy,
                "raw": str(RESULTS / f"profile-{name}{self.suffix}.txt"),
                "svg": str(RESULTS / f"profile-{name}{self.suffix}.svg")}

    @staticmethod
    def read_profile(res: dict) -> None:
        """The top functions of the profile the load generator had taken, if any."""
        if res.get("profile") and Path(res["profile"]["raw"]).exists():
            res["profile"]["top"] = report.pyspy_top(res["profile"]["raw"])

    def relay_pairs(self, users) -> None:
        s = self.size
        res = self.measure("relay", 1, "relay-pairs", "pairs-relay", {
            "scenario": "pairs", "users": relay_users(users), "concurrency": 200,
            "search": self.search_params(s["pairs_start"])})
        self.record("pairs", "relay", res)

    def run_mixed(self) -> None:
        """Pairs with rich messages on one worker (bench/mixed.py), given as a ratio to plain
        pairs of this run."""
        s = self.size
        users = self.db.take(s["pairs_users"])
        pairs = [(users[i][0], users[i + 1][0]) for i in range(0, len(users) - 1, 2)]
        self.db.follow_both_ways(pairs)
        groups = self.db.create_pair_groups(pairs)
        res = self.measure("chat", 1, "chat-mixed-1w", "mixed-1w", {
            "scenario": "mixed", "users": users, "groups": groups, "concurrency": 200,
            "cycle": s["mixed_cycle"], "search": self.search_params(s["pairs_start"]),
            "profile": self.profile_spec("mixed")})
        self.read_profile(res)
        plain = report.best_rate(self.results["scenarios"].get("pairs", {}).get("ours_1w"))
        res["pairs_msgs_per_s"] = plain
        res["ratio_to_pairs"] = report.ratio(report.best_rate(res), plain)
        say(f"mixed: {report.best_rate(res)} messages+changes/s, plain pairs {plain}/s, "
            f"ratio {res['ratio_to_pairs']}")
        self.record("mixed", "ours_1w", res)

    def run_uploads(self) -> None:
        """20 clients posting 5 MiB photos over and over while pairs traffic runs at half
        the plain pairs rate of this run (bench/uploads.py beside bench/loadgen.py)."""
        s = self.size
        plain = report.best_rate(self.results["scenarios"].get("pairs", {}).get("ours_1w"))
        rate = round(plain / 2) if plain else s["upload_rate"]
        users = self.db.take(s["pairs_users"])
        self.db.follow_both_ways([(users[i][0], users[i + 1][0])
                                  for i in range(0, len(users) - 1, 2)])
        uploaders = self.db.take(s["uploaders"])
        ready, stop = self.workdir / "uploads.ready", self.workdir / "uploads.stop"
        store = self.workdir / "uploads"
        self.settle_database()
        srv = Server("chat", 1, {**self.chat_env(), "CHAT_UPLOAD_DIR": str(store / "files"),
                                 "CHAT_UPLOAD_SPOOL": str(store / "spool")},
                     self.server_cpus, self.workdir, "chat-uploads-1w")
        say(f"starting chat-uploads-1w on 127.0.0.1:{srv.port}; pairs at {rate}/s "
            f"(half of {plain or 'no pairs figure'}), {len(uploaders)} uploaders")
        srv.start()
        extra = {}
        try:
            spec = {"host": "127.0.0.1", "port": srv.port, "users": uploaders,
                    "photo_mib": s["upload_mib"], "seconds": s["upload_seconds"],
                    "ready_file": str(ready), "stop_file": str(stop)}
            spec_path = self.workdir / "spec-uploads.json"
            out_path = self.workdir / "out-uploads.json"
            spec_path.write_text(json.dumps(spec))
            argv = [sys.executable, "-m", "bench.uploads", str(spec_path), str(out_path)]
            if self.client_cpus:
                argv = ["taskset", "-c", self.client_cpus] + argv
            uploading = subprocess.Popen(argv, cwd=ROOT)
            try:
                res = self.loadgen("uploads-pairs", {
                    "scenario": "steady", "users": users, "concurrency": 200, "rate": rate,
                    "seconds": s["upload_seconds"], "drain_seconds": s["drain_seconds"],
                    "ready_file": str(ready), "stop_file": str(stop)}, srv)
            finally:
                stop.touch()
                uploading.wait(300)
            files = json.loads(out_path.read_text()) if out_path.exists() else {}
            extra = {"stored_bytes": sum(f.stat().st_size for f in store.rglob("*")
                                         if f.is_file())}
        finally:
            self.finish_server(srv, extra)
            shutil.rmtree(store, ignore_errors=True)
        res.update({"uploads": files, "pairs_rate": rate, "plain_pairs_msgs_per_s": plain})
        step = res["step"]
        say(f"uploads: pairs at {rate}/s p99 {step['p99']} ms lost {step['undelivered']}; "
            f"{files.get('uploads')} photos, {files.get('mb_per_s')} MB/s, "
            f"{files.get('thumbnails_per_s')} thumbnails/s")
        self.record("uploads", "ours_1w", res)

    def run_group(self) -> None:
        s = self.size
        for size in s["group_sizes"]:
            members = self.db.take(size)
            gid = self.db.create_group(f"bench {size}", [u for u, _ in members])
            spec = {"scenario": "group", "group_id": gid, "members": members,
                    "senders": min(s["group_senders"], size), "concurrency": 200,
                    "search": self.search_params(s["group_start"][size])}
            for workers in ([1] if size > 100 else s["workers"]):
                if workers > 1:
                    members = self.db.take(size)
                    gid = self.db.create_group(f"bench {size} {workers}w",
                                               [u for u, _ in members])
                    spec = {**spec, "group_id": gid, "members": members}
                res = self.measure("chat", workers, f"chat-group{size}-{workers}w",
                                   f"group{size}-{workers}w", spec)
                self.record(f"group_{size}", f"ours_{workers}w", res)
                if workers == 1 and self.baseline:
                    res = self.measure("relay", 1, f"relay-group{size}", f"group{size}-relay",
                                       {**spec, "members": relay_users(members)})
                    self.record(f"group_{size}", "relay", res)

    def run_balanced(self) -> None:
        """Pairs and a group of 100 through nginx (deploy/nginx.conf) in front of three
        one-worker processes, all pinned to the server's CPU together: a check of the cost
        of the balancer and the bus, given as ratios to one process direct (same run), and
        the bus's PUBLISH count per message."""
        s = self.size
        env = {**self.chat_env(), "CHAT_TRUSTED_PROXIES": "1"}
        self.settle_database()
        servers = [Server("chat", 1, env, self.server_cpus, self.workdir, f"chat-balanced-{i}")
                   for i in range(3)]
        for srv in servers:
            srv.start()
        nginx = Nginx([srv.port for srv in servers], cpus=self.server_cpus)
        say(f"nginx on :{nginx.port} in front of {[srv.port for srv in servers]}")
        front = types.SimpleNamespace(port=nginx.port, kind="chat",
                                      pids=[p for srv in servers for p in srv.pids] + nginx.pids(),
                                      worker_pids=[p for srv in servers for p in srv.worker_pids])

        def cpu() -> dict:
            named = {f"chat-{i}": srv.pids for i, srv in enumerate(servers)}
            named["nginx"] = nginx.pids()
            return {k: sum(procstat.cpu_seconds(p) for p in v) for k, v in named.items()}

        def counters() -> tuple[float, float, float]:
            ms = [srv.metrics() for srv in servers]
            return (sum(m.get("chat_bus_published_total", 0) for m in ms),
                    sum(m.get("chat_messages_in_total", 0) for m in ms),
                    sum(m.get("chat_bus_notices_total", 0) for m in ms))

        def through_nginx(label: str, spec: dict, rate_of, direct_key: str, direct) -> dict:
            """One load through the balancer, with its cost and PUBLISH count beside it."""
            published, messages, notices = counters()
            cpu0 = cpu()
            res = self.loadgen(label, spec, front)
            published2, messages2, notices2 = counters()
            res["cpu_seconds_by_process"] = {k: round(v - cpu0[k], 2) for k, v in cpu().items()}
            res.update({direct_key: direct, "ratio_to_direct": report.ratio(rate_of(res), direct),
                        "publish_per_message": round((published2 - published)
                                                     / max(1, messages2 - messages), 3),
                        "notices_per_message": round((notices2 - notices)
                                                     / max(1, messages2 - messages), 3)})
            say(f"{label}: {rate_of(res)}/s, direct {direct}, ratio {res['ratio_to_direct']}, "
                f"PUBLISH per message {res['publish_per_message']} (notices "
                f"{res['notices_per_message']}), "
                f"CPU seconds {res['cpu_seconds_by_process']}")
            return res

        try:
            users = self.db.take(s["pairs_users"])
            self.db.follow_both_ways([(users[i][0], users[i + 1][0])
                                      for i in range(0, len(users) - 1, 2)])
            res = through_nginx("balanced-pairs", {
                "scenario": "pairs", "users": users, "concurrency": 200,
                "search": {**self.search_params(s["pairs_start"]), "warm_seconds": 5}},
                report.best_rate,
                "direct_msgs_per_s",
                report.best_rate(self.results["scenarios"].get("pairs", {}).get("ours_1w")))
            self.record("balanced_pairs", "ours_3x1w", res)
            members = self.db.take(100)
            gid = self.db.create_group("bench balanced", [u for u, _ in members])
            res = through_nginx("balanced-group100", {
                "scenario": "group", "group_id": gid, "members": members,
                "senders": min(s["group_senders"], 100), "concurrency": 200,
                "search": {**self.search_params(s["group_start"][100]), "warm_seconds": 5}},
                _deliveries,
                "direct_deliveries_per_s",
                _deliveries(self.results["scenarios"].get("group_100", {}).get("ours_1w")))
            self.record("balanced_group_100", "ours_3x1w", res)
        finally:
            nginx.stop()
            for srv in servers:
                self.finish_server(srv)

    def run_idle(self) -> None:
        s = self.size
        tiers = sorted(s["idle"])
        users = self.block[:tiers[-1]]
        kinds = [("chat", "ours_1w")] + ([("relay", "relay")] if self.baseline else [])
        for kind, who in kinds:
            res = self.measure(kind, 1, f"{kind}-idle", f"idle-{kind}", {
                "scenario": "idle", "deflate": True, "concurrency": 500, "tiers": tiers,
                "users": users if kind == "chat" else relay_users(users),
                "hold": s["idle_hold"], "settle": 3, "warm": 100})
            for n, tier in res["tiers"].items():
                self.record(f"idle_{n}", who, {**tier, "closed_during_hold":
                                               res["closed_during_hold"] if int(n) == tiers[-1]
                                               else 0})

    def run_storm(self) -> None:
        s = self.size
        storm = self.block[:s["storm"]]
        writers = self.db.take(s["storm_writers"])
        per = len(storm) // len(writers)
        self.db.follow_both_ways([(w[0], t[0]) for j, w in enumerate(writers)
                                  for t in storm[j * per:(j + 1) * per]])
        res = self.measure("chat", 1, "chat-storm", "storm", {
            "scenario": "storm", "storm_users": storm, "writers": writers,
            "rate": s["storm_rate"], "warm_seconds": s["storm_warm"],
            "down_seconds": s["storm_down"], "timeout": 300, "concurrency": 500})
        self.record("storm", "ours_1w", res)

    @property
    def suffix(self) -> str:
        """Quick runs and partial (--only) runs keep their own files: only a complete full
        run replaces the published figures (latest.json, results.md, the README table)."""
        if self.args.quick:
            return "-quick"
        if self.args.db_options or self.size["mixed_cycle"]:  # not the production
            return "-experiment"  # configuration, or not the mix: an experiment
        return "-partial" if self.args.only else ""

    def save(self, partial: bool = False) -> None:
        RESULTS.mkdir(parents=True, exist_ok=True)
        path = RESULTS / f"latest{self.suffix}.json{'.tmp' if partial else ''}"
        path.write_text(json.dumps(self.results, indent=1, default=str))

    def run(self) -> int:
        hard = raise_nofile()
        if self.client_cpus:
            os.sched_setaffinity(0, {int(c) for c in self.client_cpus.split(",")})
        started = datetime.now(timezone.utc)
        self.results.update({
            "started": started.isoformat(timespec="seconds"),
            "mode": ("quick" if self.args.quick else "full") + (
                f", only {self.args.only}" if self.args.only else "") + (
                ", private mariadbd on deploy/mariadb.cnf" if self.private_db else "") + (
                f", DATABASE_URL options {self.args.db_options}" if self.args.db_options else ""),
            "sizes": self.size,
            "machine": machine_info(),
            "config": {"server_cpus": self.server_cpus, "client_cpus": self.client_cpus,
                       "nofile": hard, "database": self.db.name, "redis": self.redis_url,
                       "db_server": ("private mariadbd, deploy/mariadb.cnf" if self.private_db
                                     else "shared MariaDB on :3306, its defaults"),
                       "rate_per_minute": self.args.rate_per_minute,
                       "db_options": self.args.db_options,
                       "services": {name: {"pids": pids, "cpus": [procstat.affinity(p)
                                                                  for p in pids]}
                                    for name, pids in self.aux.items()},
                       "workdir": str(self.workdir)}})
        say(f"{self.results['mode']} run; machine {self.results['machine']['nproc']} CPUs "
            f"{self.results['machine']['cpu_model']}; server CPUs {self.server_cpus}, "
            f"load generator CPUs {self.client_cpus}; logs in {self.workdir}")
        with kernel.raised() as host:  # deploy/sysctl.conf for the run, as the README asks
            self.results["config"]["kernel"] = host
            say(f"kernel settings (deploy/sysctl.conf): {host}")
            try:
                if self.private_db:
                    say(f"private mariadbd on :{self.private_db.port} with deploy/mariadb.cnf")
                    self.private_db.start()
                    self.aux["mariadb"] = [self.private_db.pid]
                self.setup()
                for name in SCENARIOS:
                    if name in self.only:
                        say(f"=== {name} ===")
                        t = time.time()
                        try:
                            getattr(self, f"run_{name}")()
                        except Exception as exc:  # one broken scenario must not cost the others
                            import traceback
                            traceback.print_exc()
                            self.results.setdefault("failures", {})[name] = repr(exc)
                            say(f"=== {name} FAILED: {exc!r}")
                            continue
                        say(f"=== {name} done in {time.time() - t:.0f} s ===")
            finally:
                self.results["finished"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
                self.results["machine"]["loadavg_end"] = os.getloadavg()
                if self.private_db:
                    self.private_db.stop()
                elif not self.args.keep_db:
                    try:
                        self.db.drop()
                    except Exception as exc:  # noqa: BLE001
                        say(f"could not drop {self.db.name}: {exc}")
                try:
                    delete_redis_prefix(self.redis_url, self.prefix)
                except Exception as exc:  # noqa: BLE001
                    say(f"could not clean Redis prefix {self.prefix}: {exc}")
        self.results["summary"] = report.summary(self.results)
        self.save()
        out = RESULTS / f"latest{self.suffix}.json"
        if not self.args.quick:  # a full-size run also keeps its own dated copy
            out = RESULTS / (f"results{self.suffix}-{started.strftime('%Y%m%dT%H%M%SZ')}"
                             ".json")
            out.write_text(json.dumps(self.results, indent=1, default=str))
        (RESULTS / f"latest{self.suffix}.json.tmp").unlink(missing_ok=True)
        md = report.markdown(self.results)
        (RESULTS / f"results{self.suffix}.md").write_text(md)
        if not self.suffix:
            report.update_readme(BENCH / "README.md", md)
            report.update_readme(ROOT / "README.md", report.brief(self.results),
                                     only_if_marked=True)
        say(f"results: {out.relative_to(ROOT)}, bench/results/results{self.suffix}.md")
        print(md)
        return 0


def _deliveries(res) -> float | None:
    """The highest clean deliveries/s of a group scenario, or None."""
    return ((res or {}).get("best") or {}).get("deliveries_per_s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="small sizes, a couple of minutes (for development)")
    parser.add_argument("--only", help=f"comma-separated subset of {','.join(SCENARIOS)}")
    parser.add_argument("--no-baseline", action="store_true", help="skip the bare relay")
    parser.add_argument("--workers", type=lambda v: [int(x) for x in v.split(",")],
                        help="worker counts for the pairs scenario (default 1,2; quick 1)")
    parser.add_argument("--server-cpus", default="0", help="CPUs of the server (taskset)")
    parser.add_argument("--client-cpus", default="1", help="CPUs of the load generator")
    parser.add_argument("--no-pin", action="store_true", help="do not pin with taskset")
    parser.add_argument("--no-profile", dest="profile", action="store_false",
                        help="skip the py-spy profiles of the pairs and mixed scenarios")
    parser.add_argument("--db-name", default="chat_bench")
    parser.add_argument("--db", choices=("shared", "private"), default="shared",
                        help="shared: the MariaDB on :3306 as it is; private: a mariadbd of "
                             "the run's own on deploy/mariadb.cnf (bench/privdb.py)")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/12")
    parser.add_argument("--rate-per-minute", type=int, default=10_000_000,
                        help="CHAT_RATE_PER_MINUTE of the server (the flood limit, raised)")
    parser.add_argument("--no-search-index", action="store_true",
                        help="drop the search index and its triggers after the migrations "
                             "(with --db private, which loads Mroonga: the index's cost)")
    parser.add_argument("--keep-db", action="store_true", help="keep the database afterwards")
    parser.add_argument("--set", action="append", metavar="SIZE=JSON",
                        help="override a size, e.g. --set idle=[2000] --set step_seconds=5")
    parser.add_argument("--db-options", default="",
                        help="extra DATABASE_URL query options for the server, e.g. "
                             "ssl_disabled=true (default: none, as production runs)")
    args = parser.parse_args(argv)
    # A stopped run (kill, timeout) unwinds like Ctrl-C: its servers, nginx and private
    # mariadbd are stopped by the finally blocks, not left running on the server's CPU.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    return Bench(args).run()


if __name__ == "__main__":
    sys.exit(main())
