"""Turning a run's JSON into the summary table, the markdown report and the README section."""
from __future__ import annotations

import re
from pathlib import Path

START = "<!-- bench-results:start -->"
END = "<!-- bench-results:end -->"


def _get(d, *keys, default=None):
    for k in keys:
        if not isinstance(d, dict) or k not in d or d[k] is None:
            return default
        d = d[k]
    return d


def _num(v, digits: int = 0) -> str:
    if v is None:
        return "—"
    if isinstance(v, float) and digits:
        return f"{v:,.{digits}f}"
    return f"{round(v):,}"


def _ms(v) -> str:
    return "undelivered" if v is None else f"{v:.1f}"


def _ratio(ours, base, digits: int = 2):
    if ours is None or not base:
        return None
    return round(ours / base, digits)


def best_rate(res) -> float | None:
    """The highest clean rate a rate scenario reached (acked per second), or None."""
    return _get(res, "best", "msgs_per_s")


def ratio(ours, base, digits: int = 2):
    """ours / base, or None when either is missing."""
    return _ratio(ours, base, digits)


def _verdict(ok) -> str:
    return "—" if ok is None else ("PASS" if ok else "FAIL")


def _p99_at(res: dict | None, rate: float) -> float | None:
    """The p99 of the step run at ``rate`` (the first step of a pairs run), if any."""
    for step in (res or {}).get("steps") or []:
        if step.get("rate") is not None and abs(step["rate"] - rate) < 1:
            return step.get("p99")
    return None


def summary(results: dict) -> list[dict]:
    """The headline rows: scenario, metric, ours, baseline, ratio, target, pass."""
    sc = results.get("scenarios", {})
    rows: list[dict] = []

    def add(scenario, metric, ours, base=None, ratio=None, target="", ok=None, unit=""):
        rows.append({"scenario": scenario, "metric": metric, "ours": ours, "baseline": base,
                     "ratio": ratio, "target": target, "pass": ok, "unit": unit})

    pairs = sc.get("pairs", {})
    if pairs:
        ours = pairs.get("ours_1w")
        relay = pairs.get("relay")
        o = _get(ours, "best", "msgs_per_s")
        b = _get(relay, "best", "msgs_per_s")
        lost = _get(ours, "lost")
        if ours:
            add("1. pairs, 1 worker", "msgs/s, p99 < 100 ms, nothing lost", o, b, _ratio(o, b),
                ">= 20,000 msgs/s", (o or 0) >= 20_000 and lost == 0, "msgs/s")
            r = _ratio(o, b)
            add("1. pairs, 1 worker", "ratio to bare relay", r, None, None, ">= 0.6",
                None if r is None else r >= 0.6)
            p99, base99 = _p99_at(ours, 1000), _p99_at(relay, 1000)
            r99 = _ratio(p99, base99)
            add("1. pairs, 1 worker", "p99 at 1,000 msgs/s (ms)", p99, base99, r99,
                "<= 1.5 x relay", None if r99 is None else r99 <= 1.5, "ms")
        if pairs.get("ours_2w"):
            o2 = _get(pairs["ours_2w"], "best", "msgs_per_s")
            add("1. pairs, 2 workers", "msgs/s, p99 < 100 ms, nothing lost", o2, b,
                _ratio(o2, b), "(no target)", None, "msgs/s")
    mixed = _get(sc, "mixed", "ours_1w")
    if mixed:
        m = best_rate(mixed)
        plain = _get(pairs, "ours_1w", "best", "msgs_per_s")
        r = _ratio(m, plain)
        add("1. mixed pairs, 1 worker", "messages+changes/s, p99 < 100 ms, nothing lost", m,
            None, None, "(no target)", None, "/s")
        add("1. mixed pairs, 1 worker", "ratio to plain pairs, 1 worker (same run)", r, None,
            None, ">= 0.8", None if r is None else r >= 0.8 and mixed.get("lost") == 0)
    uploads = _get(sc, "uploads", "ours_1w")
    if uploads:
        step, files = uploads.get("step") or {}, uploads.get("uploads") or {}
        name = (f"1. uploads beside pairs, 1 worker ({files.get('clients')} clients, "
                f"{_cell((files.get('photo_bytes') or 0) / 2**20, 'KiB')} MiB photos)")
        add(name, f"chat p99 at {_num(uploads.get('pairs_rate'))} msgs/s (half of pairs)",
            step.get("p99"), None, None, "< 100 ms, nothing lost",
            step.get("clean", False), "ms")
        add(name, "upload MB/s (photo bytes accepted)", files.get("mb_per_s"), None, None,
            "(no target)", None, "MB/s")
        add(name, "thumbnails made per second", files.get("thumbnails_per_s"), None, None,
            "(no target)", None, "/s")
    for size in (100, 1000):
        g = sc.get(f"group_{size}")
        if not g:
            continue
        for who, label in (("ours_1w", "1 worker"), ("ours_2w", "2 workers")):
            if who not in g:
                continue
            o = _get(g[who], "best", "deliveries_per_s")
            b = _get(g.get("relay"), "best", "deliveries_per_s") if who == "ours_1w" else \
                _get(g.get("relay"), "best", "deliveries_per_s")
            r = _ratio(o, b)
            target = ">= 0.8 x relay" if size == 100 and who == "ours_1w" else "(no target)"
            ok = (None if r is None else r >= 0.8) if target.startswith(">=") else None
            add(f"2. group of {size:,}, {label}", "deliveries/s, p99 < 100 ms, nothing lost",
                o, b, r, target, ok, "deliveries/s")
    for key, metric, unit in (("balanced_pairs", "msgs/s", "msgs/s"),
                              ("balanced_group_100", "deliveries/s", "deliveries/s")):
        bal = _get(sc, key, "ours_3x1w")
        if not bal:
            continue
        name = ("6. pairs" if key == "balanced_pairs" else "6. group of 100") + \
            ", nginx + 3 processes on one core"
        rate = best_rate(bal) if key == "balanced_pairs" else _get(bal, "best", "deliveries_per_s")
        r = bal.get("ratio_to_direct")
        add(name, f"{metric}, p99 < 100 ms, nothing lost; ratio to 1 process direct", rate,
            None, r, ">= 0.7 of direct", None if r is None else r >= 0.7, unit)
        add(name, "bus PUBLISH per message (events and batch notices)",
            bal.get("publish_per_message"), None, None,
            "<= 1 per channel listened to elsewhere", None, "ms")
        if bal.get("notices_per_message") is not None:
            add(name, "of which batch notices (one per committed batch)",
                bal.get("notices_per_message"), None, None, "(no target)", None, "ms")
    idle_keys = sorted((k for k in sc if k.startswith("idle_")), key=lambda k: int(k[5:]))
    for key in idle_keys:
        n = int(key[5:])
        ours, relay = sc[key].get("ours_1w"), sc[key].get("relay")
        o = _get(ours, "kib_per_conn")
        b = _get(relay, "kib_per_conn")
        held = _get(ours, "open_at_end")
        target = "<= 16 KiB each, all held" if n >= 10_000 else "(no target)"
        ok = ((o is not None and o <= 16 and held == n) if n >= 10_000 else None)
        add(f"3. idle {n:,}", "server KiB per connection (deflate offered)", o, b,
            _ratio(o, b), target, ok, "KiB")
        rc = _ratio(_get(ours, "connect", "rate_per_s"), _get(relay, "connect", "rate_per_s"))
        add(f"3. idle {n:,}", "connects/s (handshake + token + hello)",
            _get(ours, "connect", "rate_per_s"), _get(relay, "connect", "rate_per_s"), rc,
            ">= 0.9 x relay, all held" if n >= 10_000 else f"all {n:,} held",
            None if ours is None else held == n and (n < 10_000 or (rc or 0) >= 0.9), "/s")
    storm = _get(sc, "storm", "ours_1w")
    if storm:
        t = storm.get("complete_s")
        ok = t is not None and t <= 4 and storm.get("lost") == 0
        name = f"4. reconnect storm {storm['clients']:,}"
        add(name, "s until all back", storm.get("all_back_s"), None, None, "", None, "s")
        add(name, "s until all synced and caught up", t, None, None, "<= 4 s", ok, "s")
        add(name, "acked messages lost", storm.get("lost"), None, None, "0",
            storm.get("lost") == 0)
    hist = _get(sc, "history", "ours_1w")
    if hist:
        p99 = _get(hist, "ws", "p99")
        add(f"5. history ({_num(hist.get('table_messages'))} rows)", "page of 50, p99 (WS)",
            p99, None, None, "< 5 ms", p99 is not None and p99 < 5, "ms")
    return rows


def _cell(v, unit: str = "") -> str:
    if v is None:
        return "—"
    if isinstance(v, float) and (unit in ("ms", "s", "KiB", "MB/s", "/s") or v < 10):
        return f"{v:,.2f}" if v < 10 else f"{v:,.1f}"
    return _num(v)


def _headline(results: dict) -> list[str]:
    """The title and the table of figures against their targets."""
    lines = [f"### Benchmark results ({results.get('mode')} run, {results.get('started')})", ""]
    lines.append("| Scenario | Metric | Ours | Bare relay | Ratio | Target | Pass |")
    lines.append("| --- | --- | ---: | ---: | ---: | --- | --- |")
    for r in results.get("summary") or summary(results):
        lines.append(f"| {r['scenario']} | {r['metric']} | {_cell(r['ours'], r['unit'])} | "
                     f"{_cell(r['baseline'], r['unit'])} | "
                     f"{'—' if r['ratio'] is None else r['ratio']} | {r['target']} | "
                     f"{_verdict(r['pass'])} |")
    return lines


def _machine_line(results: dict) -> str:
    """Where and on what the run happened."""
    m = results.get("machine", {})
    cfg = results.get("config", {})
    load0 = m.get("loadavg_start") or [0, 0, 0]
    load1 = m.get("loadavg_end") or [0, 0, 0]
    services = cfg.get("services", {})
    return (f"Machine: {m.get('nproc')} CPUs ({m.get('cpu_model')}), "
            f"{m.get('ram_gib')} GiB RAM, Python {m.get('python')}, Linux {m.get('kernel')}, "
            f"MariaDB {m.get('mariadb')}, Redis {m.get('redis')}; commit "
            f"{m.get('git_commit')}{' (+ uncommitted changes)' if m.get('git_dirty') else ''}. "
            f"Server pinned to CPU {cfg.get('server_cpus')}, load generator to CPU "
            f"{cfg.get('client_cpus')}; MariaDB and Redis are shared system services on CPUs "
            f"{', '.join(sorted({c for s in services.values() for c in s.get('cpus', [])}))}. "
            f"{_kernel_words(cfg.get('kernel'))}"
            f"Load average {load0[0]:.2f} at the start, {load1[0]:.2f} at the end.")


def _kernel_words(kernel: dict | None) -> str:
    """The kernel settings of deploy/sysctl.conf as the run had them (older runs: none)."""
    if not kernel:
        return ""
    said = ", ".join(f"{key} {entry.get('now', '?')}"
                     + (f" (wanted {entry['wanted']}: {entry['error']})" if "error" in entry else "")
                     for key, entry in kernel.items())
    return f"Kernel: {said}. "


def brief(results: dict) -> str:
    """The headline table and the machine line (the project README's copy)."""
    return "\n".join(_headline(results) + ["", _machine_line(results)]) + "\n"


def markdown(results: dict) -> str:
    """The report: the headline table, the details, the machine."""
    lines = _headline(results)
    lines += ["", "Latency and correctness at the highest clean rate (ms from the scheduled "
              "send to the recipient's receipt; CPU in cores):", "",
              "| Scenario | Server | Rate | Throughput | p50 | p90 | p99 | max | Lost | Dup | "
              "Out of order | First failing step | Load gen CPU | Server CPU | MariaDB CPU | "
              "Redis CPU |",
              "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- "
              "| ---: | ---: | ---: | ---: |"]
    sc = results.get("scenarios", {})
    for key in ("pairs", "mixed", "group_100", "group_1000"):
        for who, res in sc.get(key, {}).items():
            best = res.get("best") or {}
            bad = res.get("first_failure") or {}
            cpu = best.get("cpu", {})
            fail = "—"
            if bad:
                why = []
                if bad.get("p99") is None or bad["p99"] > 100:
                    why.append(f"p99 {_ms(bad.get('p99'))}")
                for k in ("undelivered", "unacked", "errors", "dups", "ooo", "closed"):
                    if bad.get(k):
                        why.append(f"{k} {bad[k]:,}")
                fail = f"{_num(bad.get('rate'))}/s: " + ", ".join(why) + (
                    f" (load gen {bad['cpu'].get('loadgen')} CPU)" if bad.get("cpu") else "")
            thr = best.get("msgs_per_s") if key in ("pairs", "mixed") else \
                best.get("deliveries_per_s")
            unit = {"pairs": "msgs/s", "mixed": "items/s"}.get(key, "deliveries/s")
            rate_unit = "items/s" if key == "mixed" else "msgs/s"
            lines.append(
                f"| {key} | {who} | {_num(best.get('rate'))} {rate_unit} | {_num(thr)} {unit} | "
                f"{_ms(best.get('p50')) if best else '—'} | {_ms(best.get('p90')) if best else '—'}"
                f" | {_ms(best.get('p99')) if best else '—'} | "
                f"{_ms(best.get('max')) if best else '—'} | {_num(res.get('lost'))} | "
                f"{_num(res.get('dups_total'))} | {_num(res.get('ooo_total'))} | {fail} | "
                f"{cpu.get('loadgen', '—')} | {cpu.get('server', '—')} | "
                f"{cpu.get('mariadb', '—')} | {cpu.get('redis', '—')} |")
    lines += _mixed_lines(_get(sc, "mixed", "ours_1w"))
    idle = [k for k in sc if k.startswith("idle_")]
    if idle:
        lines += ["", "| Idle connections | Server | Connected | Open at end | KiB per connection "
                  "| RSS before -> after | Connects/s (this tier) | deflate negotiated | Load gen CPU "
                  "(connecting) | Server CPU (connecting) |", "| --- | --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: |"]
        for key in sorted(idle, key=lambda k: int(k[5:])):
            for who, r in sc[key].items():
                lines.append(
                    f"| {int(key[5:]):,} | {who} | {_num(r.get('open'))} | "
                    f"{_num(r.get('open_at_end'))} | {r.get('kib_per_conn')} | "
                    f"{r.get('rss_before', 0) / 2**20:.1f} -> {r.get('rss_after', 0) / 2**20:.1f}"
                    f" MiB | {_num(_get(r, 'connect', 'rate_per_s'))} | "
                    f"{_num(_get(r, 'connect', 'deflate_negotiated'))} | "
                    f"{_get(r, 'cpu_connect', 'loadgen', default='—')} | "
                    f"{_get(r, 'cpu_connect', 'server', default='—')} |")
    storm = _get(sc, "storm", "ours_1w")
    if storm:
        lines += ["", f"Reconnect storm: {storm['clients']:,} clients dropped at once (TCP "
                  f"reset) while {storm['writers']} writers send {storm['rate']:,} msgs/s to "
                  f"them: all reconnected after {_cell(storm.get('all_back_s'), 's')} s "
                  f"(median {_cell(storm.get('p50_back_s'), 's')} s), all synced after "
                  f"{_cell(storm.get('all_synced_s'), 's')} s, every acked message received "
                  f"after {_cell(storm.get('complete_s'), 's')} s ({storm.get('back')} back, "
                  f"{storm.get('synced')} synced at the end); lost {storm.get('lost')}, "
                  f"unacked {storm.get('unacked')}, reconnect retries {storm.get('retries')} "
                  f"(refusals: {storm.get('close_reasons') or 'none'}), sync retries "
                  f"{storm.get('sync_retries', 0)}, sync pages {storm.get('sync_pages')}, "
                  f"error frames {storm.get('errors') or 0}, "
                  f"load gen CPU {_get(storm, 'cpu', 'loadgen')}, server CPU "
                  f"{_get(storm, 'cpu', 'server')}."]
    hist = _get(sc, "history", "ours_1w")
    if hist:
        ws, web = hist.get("ws", {}), hist.get("http", {})
        lines += ["", f"History: {_num(hist.get('table_messages'))} messages in the table, "
                  f"{_num(hist.get('conversation_messages'))} in the conversation, pages of "
                  f"{hist.get('limit')} at random cursors, one request at a time: WebSocket "
                  f"p50 {_ms(ws.get('p50'))} / p90 {_ms(ws.get('p90'))} / p99 "
                  f"{_ms(ws.get('p99'))} / max {_ms(ws.get('max'))} ms ({ws.get('count')} "
                  f"pages); HTTP GET p50 {_ms(web.get('p50'))} / p90 {_ms(web.get('p90'))} / "
                  f"p99 {_ms(web.get('p99'))} / max {_ms(web.get('max'))} ms."]
    for key, unit in (("pairs", "msgs/s"), ("mixed", "items/s")):
        prof = _get(sc, key, "ours_1w", "profile")
        if prof and prof.get("top"):
            top = prof["top"]
            lines += ["", f"Server hot spots (py-spy, {key} at {_num(prof.get('rate'))} {unit}, "
                      f"{top['samples']:,} samples, own time):", "",
                      "| Function | Own % | Total % |", "| --- | ---: | ---: |"]
            for fn in top["self"][:15]:
                lines.append(f"| `{fn['name']}` | {fn['self_pct']} | {fn['total_pct']} |")
    servers = results.get("servers", {})
    trouble = {k: v for k, v in servers.items() if v.get("errors") or v.get("worker_timeouts")
               or v.get("worker_boots", 1) > (2 if "2w" in k else 1)}
    if trouble:
        lines += ["", "Server trouble: " + "; ".join(
            f"{k}: {v.get('errors')} error lines, {v.get('worker_timeouts')} worker timeouts, "
            f"{v.get('worker_boots')} worker boots" for k, v in trouble.items())]
    lines += ["", _machine_line(results)]
    return "\n".join(lines) + "\n"


def _mixed_lines(mixed: dict | None) -> list[str]:
    """What the mixed scenario's best step was made of, and how its updates fared."""
    if not mixed:
        return []
    best = mixed.get("best") or {}
    cycle = mixed.get("cycle") or {}
    n = sum(cycle.values()) or 1
    mix = ", ".join(f"{v} {k}" for k, v in cycle.items())
    text = (f"Mixed pairs: each direction repeats a cycle of {n} items ({mix}); items "
            f"(messages + changes) counted together; a change is delivered when the partner "
            f"gets its `update` frame. ")
    if best:
        text += (f"At {_num(best.get('rate'))} items/s: {_num(best.get('messages_acked'))} "
                 f"messages and {_num(best.get('changes_acked'))} changes acked, message p99 "
                 f"{_ms(best.get('p99'))} ms, update p50 {_ms(best.get('update_p50'))} / p99 "
                 f"{_ms(best.get('update_p99'))} ms, updates lost "
                 f"{_num(best.get('updates_undelivered'))}, sent as plain messages for want "
                 f"of an acked target {_num(best.get('substituted'))}. ")
    text += (f"Over the run: updates lost {_num(mixed.get('lost_updates'))}, changes unacked "
             f"{_num(mixed.get('unacked_changes'))}; plain pairs (1 worker) "
             f"{_num(mixed.get('pairs_msgs_per_s'))} msgs/s, ratio "
             f"{mixed.get('ratio_to_pairs') or '—'}.")
    return ["", text]


def update_readme(path: Path, md: str, only_if_marked: bool = False) -> bool:
    """Replace the text between the two markers with ``md`` (append the section if absent)."""
    path = Path(path)
    text = path.read_text() if path.exists() else ""
    block = f"{START}\n{md}{END}"
    if START in text and END in text:
        text = re.sub(re.escape(START) + r".*?" + re.escape(END), lambda _: block, text,
                      flags=re.S)
    elif only_if_marked:
        return False
    else:
        text = text.rstrip() + f"\n\n## Latest results\n\n{block}\n"
    path.write_text(text)
    return True


def pyspy_top(raw_path: str, limit: int = 25) -> dict:
    """Own and total sample shares per function from py-spy's raw (collapsed stack) output."""
    own: dict[str, int] = {}
    total: dict[str, int] = {}
    samples = 0
    for line in Path(raw_path).read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        samples += n
        frames = [_frame_name(f) for f in stack.split(";") if f]
        if not frames:
            continue
        own[frames[-1]] = own.get(frames[-1], 0) + n
        for name in set(frames):
            total[name] = total.get(name, 0) + n
    if not samples:
        return {"samples": 0, "self": [], "total": []}

    def pct(v):
        return round(100 * v / samples, 1)
    by_own = sorted(own.items(), key=lambda kv: -kv[1])[:limit]
    by_total = sorted(total.items(), key=lambda kv: -kv[1])[:limit]
    return {"samples": samples,
            "self": [{"name": k, "self_pct": pct(v), "total_pct": pct(total.get(k, 0))}
                     for k, v in by_own],
            "total": [{"name": k, "total_pct": pct(v), "self_pct": pct(own.get(k, 0))}
                      for k, v in by_total]}


def _frame_name(frame: str) -> str:
    """"send (gevent/_socket3.py:123)" -> "send (gevent/_socket3.py)"; site-packages trimmed."""
    frame = frame.strip()
    m = re.match(r"(.*) \((.*?)(?::\d+)?\)$", frame)
    if not m:
        return frame
    func, path = m.groups()
    path = re.sub(r".*/(site-packages|lib/python3\.\d+)/", "", path)
    path = re.sub(r"^/work/main/", "", path)
    return f"{func} ({path})"
