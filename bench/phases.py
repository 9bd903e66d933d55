"""Where a message's microseconds go on the server: a py-spy profile of the pairs scenario,
split into the send path's phases and scaled by the run's server CPU and rate.

    python -m bench.phases bench/results/profile-pairs-partial.txt --cpu 0.665 --rate 6860

Each sample goes to the first phase (in the order below) one of whose functions is on its
stack; the rest is "other". A phase's share of the samples times the server's CPU
seconds per message gives its microseconds per message (the profile is taken at the
run's best clean rate, whose server CPU the results give).
"""
from __future__ import annotations

import argparse
from pathlib import Path

# (phase, functions whose presence on the stack puts a sample there), most specific first.
PHASES: list[tuple[str, tuple[str, ...]]] = [
    ("search indexer (after the commit)", ("ChatRuntime._index_search",)),
    ("check: lookup round trip and rules", ("MessageCommitter._check_messages",
                                            "BatchChecks.check", "StrangerRule.apply")),
    ("write: ids, INSERT, COMMIT", ("MessageCommitter._write ",)),
    ("answer: acks, frames, local delivery", ("MessageCommitter._answer_and_publish",)),
    ("send: flushing sockets", ("Connection.flush", "DeliveryBatch.flush", "WebSocket.try_send")),
    ("receive: read and parse frames", ("WebSocket.messages", "FrameParser")),
    ("handle: validate and queue a frame", ("FrameHandler.handle",)),
    ("rest of the committer (presence, locks)", ("MessageCommitter.",)),
    ("event loop (gevent hub, waiting)", ("Hub.run",)),
]


def split(raw: Path) -> tuple[dict[str, int], int]:
    """Samples per phase, and all samples."""
    counts: dict[str, int] = {name: 0 for name, _ in PHASES}
    counts["other"] = 0
    total = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = stack.split(";")
        for name, markers in PHASES:
            if any(marker in frame for frame in frames for marker in markers):
                counts[name] += n
                break
        else:
            counts["other"] += n
    return counts, total


def table(raw: Path, cpu: float, rate: float) -> str:
    """The Markdown table: phase, share of samples, microseconds per message."""
    counts, total = split(raw)
    per_message = cpu / rate * 1e6
    lines = [f"| phase | share | µs per message |", "| --- | ---: | ---: |"]
    for name, n in counts.items():
        lines.append(f"| {name} | {100 * n / total:.1f} % | {per_message * n / total:.1f} |")
    lines.append(f"| all (server CPU {cpu} at {rate:,.0f} msgs/s) | 100 % | {per_message:.1f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.phases", description=__doc__.split("\n")[0])
    parser.add_argument("raw", type=Path, help="py-spy's raw output (bench/results/profile-*.txt)")
    parser.add_argument("--cpu", type=float, required=True, help="server CPU (cores) at the rate")
    parser.add_argument("--rate", type=float, required=True, help="messages per second")
    args = parser.parse_args()
    print(table(args.raw, args.cpu, args.rate))


if __name__ == "__main__":
    main()
