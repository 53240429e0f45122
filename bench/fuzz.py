"""Fuzz a real Parley server with hostile `/ws/chat/` frames (issue 13), 50,000 frames or more.

Usage (from the project root)::

    .venv/bin/python bench/fuzz.py [--frames 50000] [--json out.json]

The same Hypothesis strategies as tests/assistant/test_fuzz_protocol.py (tests/support/frames.py:
every frame type with wrong types, huge numbers, lone surrogates spelled as JSON escapes, NUL,
deep nesting, broken JSON), sent over real websockets to `manage.py serve` (daphne hardened by
project/server.py) on a fresh SQLite database with the offline assistant. Each Hypothesis example
is one connection: maybe a `hello`, up to 40 frames, then a sentinel frame whose answer shows that
every frame before it was handled. The server runs with its defaults except a frame limit and a
sessions-per-IP limit raised out of the way (a fuzzer sends hundreds of frames a second from one
address; those limits have their own tests and bench/abuse.py).

Checked, each with its target: `internal_error` frames (0), connections closed with 1011 or
without a close frame (0), ERROR lines and tracebacks in the server log (0), per-IP connection
slots free afterwards (all MAX_CONNECTIONS_PER_IP accepted), a normal chat turn completes
afterwards, server RSS before and after. Baseline in the same run: the same number of valid
`ping` frames through the same client code, so the fuzz rate is reported as a ratio.
Exit status 0 when every check passed, 1 otherwise. See docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as `python bench/fuzz.py`: make `tests` importable
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
os.environ.setdefault("PARLEY_DOTENV", "0")

import django  # noqa: E402

django.setup()  # the strategies read the protocol's field table

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from websockets.exceptions import ConnectionClosed  # noqa: E402
from websockets.sync.client import connect  # noqa: E402

from tests.support.frames import FRAME, Tally, exchange  # noqa: E402
from tests.support.live import daphne_process  # noqa: E402

PYTHON = Path(sys.executable)
SERVER_ENV = {
    "PARLEY_DOTENV": "0",
    "PARLEY_ENV": "test",
    "DEBUG": "0",
    "LOG_LEVEL": "info",
    "LOCAL_TOKEN_DELAY_MS": "0",
    "CHAT_FRAME_RATE_LIMIT_PER_MINUTE": "10000000",
    "CHAT_FRAME_BURST": "100000",
    "CHAT_SESSIONS_PER_IP_PER_HOUR": "1000000",
    "CHAT_RATE_LIMIT_PER_MINUTE": "100000",
    "CHAT_RATE_LIMIT_BURST": "100000",
    "CHAT_IP_RATE_LIMIT_PER_MINUTE": "1000000",
    "MAX_CONNECTIONS_PER_IP": "20",
}


def fuzz(url: str, target: int) -> Tally:
    """Run Hypothesis examples until `target` frames were sent."""
    tally = Tally()

    @settings(
        max_examples=250,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(frames=st.lists(FRAME, min_size=1, max_size=40), hello_first=st.booleans())
    def example(frames: list[str], hello_first: bool) -> None:
        exchange(url, frames, hello_first, tally)

    while tally.frames < target:
        example()
        print(f"  fuzz: {tally.frames:,} frames, {tally.connections:,} connections", file=sys.stderr)
    return tally


def baseline(url: str, target: int) -> Tally:
    """The same client code with valid `ping` frames only."""
    tally = Tally()
    while tally.frames < target:
        exchange(url, ['{"type":"ping"}'] * 40, True, tally)
    return tally


def rss_mb(pid: int) -> float:
    """Resident memory of a process, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def slots_free(url: str, slots: int) -> int:
    """How many of `slots` simultaneous connections from this IP are accepted and answer `ping`."""
    accepted = 0
    with contextlib.ExitStack() as stack:
        for _ in range(slots):
            ws = stack.enter_context(connect(url, open_timeout=10))
            ws.send('{"type":"ping"}')
            with contextlib.suppress(ConnectionClosed):
                accepted += json.loads(ws.recv(timeout=5))["type"] == "pong"
    return accepted


def chat_turn(url: str) -> float:
    """One normal visitor turn; seconds from `message` to a complete `reply.end`."""
    with connect(url, open_timeout=10) as ws:
        ws.send('{"type":"hello"}')
        while json.loads(ws.recv(timeout=10))["type"] != "welcome":
            pass
        started = time.perf_counter()
        ws.send(json.dumps({"type": "message", "text": "How do I embed the widget?", "client_id": "visitor-1"}))
        while True:
            frame = json.loads(ws.recv(timeout=30))
            if frame["type"] == "reply.end":
                if frame["status"] != "complete":
                    raise RuntimeError(f"the visitor's reply ended {frame['status']}")
                return time.perf_counter() - started


def log_faults(log: Path) -> list[str]:
    """ERROR lines and tracebacks of the server log, each with the line after it (asyncio's detail)."""
    lines = log.read_text(errors="replace").splitlines()
    return [
        " | ".join(lines[index : index + 2])
        for index, line in enumerate(lines)
        if " ERROR " in line or line.startswith("Traceback")
    ]


def run(frames: int) -> dict[str, Any]:
    """Serve, baseline, fuzz, check; the figures."""
    with tempfile.TemporaryDirectory(prefix="parley-fuzz-") as workdir:
        env = {key: value for key, value in os.environ.items() if key not in {"DATABASE_URL", "REDIS_URL"}}
        env.update(SERVER_ENV, SQLITE_PATH=str(Path(workdir) / "fuzz.sqlite3"))
        subprocess.run([str(PYTHON), "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True)
        log = Path(workdir) / "server.log"
        with daphne_process(dict(SERVER_ENV, SQLITE_PATH=env["SQLITE_PATH"]), log=log) as (base, server):
            url = f"{base}/ws/chat/"
            rss_start = rss_mb(server.pid)
            idle_turn = chat_turn(url)
            base_tally = baseline(url, frames)
            rss_baseline = rss_mb(server.pid)
            fuzzed = fuzz(url, frames)
            rss_after = rss_mb(server.pid)
            time.sleep(1)
            slots = slots_free(url, int(SERVER_ENV["MAX_CONNECTIONS_PER_IP"]))
            after_turn = chat_turn(url)
        faults = log_faults(log)
    bad_closes = {code: count for code, count in fuzzed.closes.items() if code not in {"1008", "1009"}}
    return {
        "frames": fuzzed.frames,
        "connections": fuzzed.connections,
        "fuzz_frames_per_s": round(fuzzed.rate),
        "baseline_ping_frames_per_s": round(base_tally.rate),
        "ratio_to_baseline": round(fuzzed.rate / base_tally.rate, 2) if base_tally.rate else None,
        "error_codes": dict((fuzzed.codes - Counter({"invalid_field": fuzzed.connections})).most_common()),
        "closes": dict(fuzzed.closes),
        "internal_errors": len(fuzzed.internal_errors),
        "internal_error_examples": fuzzed.internal_errors[:5],
        "bad_closes": bad_closes,
        "server_log_faults": len(faults),
        "server_log_fault_lines": faults[:10],
        "slots_free": slots,
        "slots": int(SERVER_ENV["MAX_CONNECTIONS_PER_IP"]),
        "rss_mb": {
            "start": round(rss_start, 1),
            "after_baseline": round(rss_baseline, 1),
            "after_fuzz": round(rss_after, 1),
        },
        "visitor_turn_ms": {"before": round(idle_turn * 1000), "after": round(after_turn * 1000)},
    }


def main() -> int:
    """Run, print the figures beside their targets, exit 1 when a check failed."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=50_000, help="fuzzed frames to send (default 50,000)")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    result = run(args.frames)
    checks = [
        ("internal_error frames", result["internal_errors"], "0", result["internal_errors"] == 0),
        ("closes other than 1008/1009", sum(result["bad_closes"].values()), "0", not result["bad_closes"]),
        ("ERROR lines / tracebacks in the log", result["server_log_faults"], "0", result["server_log_faults"] == 0),
        (
            "slots free afterwards",
            f"{result['slots_free']}/{result['slots']}",
            "all",
            result["slots_free"] == result["slots"],
        ),
    ]
    print(f"\nFuzzed {result['frames']:,} frames over {result['connections']:,} connections")
    print(
        f"  rate: {result['fuzz_frames_per_s']:,} frames/s fuzzed, {result['baseline_ping_frames_per_s']:,} "
        f"frames/s valid pings (baseline, same run): ratio {result['ratio_to_baseline']}"
    )
    print(f"  answers: {result['error_codes']}")
    print(f"  server closes: {result['closes'] or 'none'}")
    print(f"  server RSS MB: {result['rss_mb']}; visitor turn ms: {result['visitor_turn_ms']}")
    for name, value, target, ok in checks:
        print(f"  {'ok ' if ok else 'FAIL'} {name}: {value} (target {target})")
    for line in result["server_log_fault_lines"] + result["internal_error_examples"]:
        print(f"    {line}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0 if all(ok for *_, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
