"""Abuse benchmark: issue 13's attacks against one `manage.py serve` process, each figure beside its target.

Usage (from the project root)::

    .venv/bin/python bench/abuse.py [--flood-seconds 30] [--idle-seconds 15] [--settle-seconds 10]
                                    [--attack-connections 20] [--repeats 100] [--handshakes 1000]
                                    [--session-seconds 15] [--event-seconds 10] [--visitors 2]
                                    [--json out.json] [--server-env KEY=VALUE ...]

One `manage.py serve` process (daphne with project/server.py's protocol hardening) runs on the
embedded defaults: a fresh migrated SQLite file, the in-memory channel layer, the offline `local`
assistant at LOCAL_TOKEN_DELAY_MS=20 answering from the benchmarks' knowledge base (bench/harness.py)
(an idle turn takes about 1 s), and every limit at its default. Each role connects from its own
loopback address (the client socket is bound to 127.0.0.N), so the per-IP limits apply per role
without proxy headers: attacker 127.0.0.2, visitor 127.0.0.3, slots 127.0.0.4, half-open
handshakes 127.0.0.5, session creation 127.0.0.6-9. All traffic stays on 127.0.0.0/8 and every
loop ends by itself.

1. Flood (issue item 2). Visitors (`--visitors`, default 2 sessions from 127.0.0.3, each starting a
   turn at most every 3.2 s to stay under CHAT_RATE_LIMIT_PER_MINUTE=20) chat for `--idle-seconds`:
   the idle latency (send `message` -> `reply.end`). Then a separate attacker process opens
   `--attack-connections` raw websockets from 127.0.0.2 and writes `ping` frames as fast as the
   socket takes them (64 per write) for `--flood-seconds`, reconnecting whenever a connection is
   closed; once reading every frame it gets back, once never reading. The visitors keep chatting
   throughout. Server RSS is sampled every 100 ms: baseline (the last 2 s before the flood), peak
   (during it) and after (`--settle-seconds` later). Targets: RSS growth <= 30 MB, RSS after
   within 10 % of the baseline, visitor p50 under flood <= 1.5 x idle p50.
2. Slot exhaustion (item 1). `--repeats` times each: a frame with a lone surrogate key (the raw
   JSON text `{"type":"ping","x\\ud800":1}`); `hello` then a 70,000-byte frame; `hello` resuming a
   stored session followed at once by a TCP reset. After each path, MAX_CONNECTIONS_PER_IP
   connections from that address must all be welcomed (and one more refused with 4429, which
   shows the check can fail). Targets: 0 leaked slots, 0 `internal_error` frames, 0 closes 1011,
   0 ERROR lines in the server log.
3. Half-open handshakes. `--handshakes` TCP connections send an HTTP request head without its
   final blank line and then stay silent; the time until the server closes each is measured from
   its connect (target <= HTTP_HEADER_TIMEOUT_S + 2 s; 76 s before the fix), with the server's RSS
   while they are open and a visitor turn meanwhile (it must complete).
4. Session creation (item 4). For `--session-seconds` each, from its own address with 10
   connections at a time: `hello` alone on fresh connections (target: 0 ChatSession rows);
   `hello` + `message` (rows <= CHAT_SESSIONS_PER_IP_PER_HOUR; the per-IP message window, 60 a
   minute, refuses first); `hello` + `event` (no message limit on that path, so the session limit
   itself is what refuses). Then one session sends `event` frames with 4 KB of data: on one
   connection for `--event-seconds` as fast as allowed (waiting out each `retry_after`), then on
   fresh connections resuming it (each starts with a full event bucket) until `limit_reached`.
   Target: ChatEvent rows <= CHAT_EVENTS_PER_SESSION; bytes written are reported.

About 3.5 minutes with the defaults. CPU seconds of the server, the attacker process and this
process (visitors, sampling) come from /proc. Every target is reported with its figure. Exit status 1
when a protection failed (a leaked slot, an `internal_error` or 1011, an ERROR log line, rows
over a cap, a half-open handshake held past the bound, a visitor who could not chat); the RSS and
latency targets of the flood depend on the machine's load and are reported, not enforced. See
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import multiprocessing
import os
import re
import resource
import socket
import sqlite3
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as `python bench/abuse.py`: make `bench` importable
    sys.path.insert(0, str(ROOT))

from websockets.asyncio.client import ClientConnection, connect  # noqa: E402
from websockets.exceptions import ConnectionClosed  # noqa: E402

from bench.harness import (  # noqa: E402
    QUESTION,
    add_server_env_option,
    check_server_env,
    free_port,
    percentile,
    process_cpu_seconds,
    write_knowledge_base,
)

PYTHON = ROOT / ".venv" / "bin" / "python"
ATTACKER_IP, VISITOR_IP, SLOTS_IP, HANDSHAKE_IP = "127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"
HELLO_IP, MESSAGE_IP, EVENT_SESSION_IP, EVENTS_IP = "127.0.0.6", "127.0.0.7", "127.0.0.8", "127.0.0.9"
#: The settings this benchmark reports against, with their defaults (project/settings.py).
LIMITS = {
    "MAX_CONNECTIONS_PER_IP": 20,
    "HTTP_HEADER_TIMEOUT_S": 10.0,
    "CHAT_SESSIONS_PER_IP_PER_HOUR": 100,
    "CHAT_EVENTS_PER_SESSION": 200,
    "CHAT_FRAME_RATE_LIMIT_PER_MINUTE": 600,
    "CHAT_FRAME_BURST": 60,
}
RSS_GROWTH_TARGET_MB = 30.0
RSS_RETURN_TARGET = 0.10
LATENCY_TARGET_FACTOR = 1.5
HANDSHAKE_SLACK_S = 2.0
#: Targets that depend on the shared machine's load: reported, not enforced by the exit status.
MEASURED_ONLY = ("flood reading: RSS", "flood reading: visitor", "flood not reading: RSS", "flood not reading: visitor")
VISITOR_PACE_S = 3.2  # one turn started per 3.2 s: under CHAT_RATE_LIMIT_PER_MINUTE=20 per connection
SURROGATE_FRAME = '{"type":"ping","x\\ud800":1}'  # the JSON text holds the escape, not the character
OVERSIZE_BYTES = 70_000
EVENT_DATA = {"blob": "x" * 4080}  # 4,092 bytes of JSON: just under MAX_EVENT_DATA_BYTES
TIMEOUT_S = 15.0  # any single client wait; a hang is recorded as a problem, never blocks the run
PING_FRAME = b'{"type":"ping"}'
CLK_TCK = os.sysconf("SC_CLK_TCK")


# --- server ---------------------------------------------------------------------------------
class Server:
    """`manage.py serve` on a free loopback port, its log in a file read incrementally."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env, self.log_path, self.port = env, log_path, free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.log_offset = 0

    @property
    def pid(self) -> int:
        """The server's process id."""
        assert self.process is not None
        return self.process.pid

    def url(self, path: str = "/ws/chat/") -> str:
        """A ws:// URL on this server."""
        return f"ws://127.0.0.1:{self.port}{path}"

    def __enter__(self) -> Server:
        command = [str(PYTHON), "manage.py", "serve", "--host", "127.0.0.1", "--port", str(self.port)]
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(command, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited with {self.process.returncode}; see {self.log_path}")
            healthz = f"http://127.0.0.1:{self.port}/healthz"
            with contextlib.suppress(OSError), urllib.request.urlopen(healthz, timeout=2) as response:
                if response.status == 200:
                    return self
            if time.monotonic() > deadline:
                self.__exit__()
                raise RuntimeError(f"the server was not healthy within 60 s; see {self.log_path}")
            time.sleep(0.2)

    def __exit__(self, *exc_info: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)

    def rss_mb(self) -> float:
        """Resident memory of the server now (VmRSS)."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def open_files_limit(self) -> int:
        """The server's soft limit on open files (/proc/PID/limits)."""
        for line in Path(f"/proc/{self.pid}/limits").read_text().splitlines():
            if line.startswith("Max open files"):
                return int(line.split()[3])
        return -1

    def new_log(self) -> LogCounts:
        """Levels and messages of the log lines written since the last call."""
        with open(self.log_path, "rb") as log:
            log.seek(self.log_offset)
            text = log.read().decode(errors="replace")
        self.log_offset += len(text.encode(errors="replace"))
        return LogCounts.parse(text)


_LOG_LINE = re.compile(r"^\S+ \S+ (WARNING|ERROR|CRITICAL) (\S+): (.*)$")


@dataclass(slots=True)
class LogCounts:
    """WARNING and ERROR lines of a stretch of server log, by message shape (addresses and numbers cut)."""

    warnings: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> LogCounts:
        """Count the records of `text`; a traceback's lines after its record are not records."""
        warnings: Counter[str] = Counter()
        errors: Counter[str] = Counter()
        for line in text.splitlines():
            match = _LOG_LINE.match(line)
            if match is None:
                continue
            shape = re.sub(r"\d+(\.\d+)*", "N", f"{match[2]}: {match[3]}")[:140]
            (warnings if match[1] == "WARNING" else errors)[shape] += 1
        return cls(dict(warnings), dict(errors))

    def count(self, fragment: str) -> int:
        """WARNING lines whose message contains `fragment`."""
        return sum(n for shape, n in self.warnings.items() if fragment in shape)

    @property
    def error_count(self) -> int:
        """ERROR and CRITICAL lines."""
        return sum(self.errors.values())


class RssMonitor:
    """Samples the server's RSS every 100 ms while running (as an asyncio task)."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.samples: list[tuple[float, float]] = []
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> RssMonitor:
        self.task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self.task is not None
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task

    async def _run(self) -> None:
        while True:
            self.samples.append((time.monotonic(), self.server.rss_mb()))
            await asyncio.sleep(0.1)

    def between(self, start: float, end: float) -> list[float]:
        """RSS samples taken in [start, end] (the latest one before `start` if none)."""
        inside = [rss for at, rss in self.samples if start <= at <= end]
        return inside or [rss for at, rss in self.samples if at < start][-1:] or [self.server.rss_mb()]


# --- websocket clients ----------------------------------------------------------------------
async def ws_open(url: str, ip: str) -> ClientConnection:
    """A websocket from loopback address `ip`, without compression or keep-alive pings."""
    return await connect(
        url,
        compression=None,
        ping_interval=None,
        open_timeout=TIMEOUT_S,
        close_timeout=2,
        max_size=None,
        local_addr=(ip, 0),
    )


async def recv_frame(connection: ClientConnection, timeout: float = TIMEOUT_S) -> dict[str, Any]:
    """The next frame, decoded (a close raises ConnectionClosed, a wait beyond `timeout` TimeoutError)."""
    async with asyncio.timeout(timeout):
        return json.loads(await connection.recv())


def close_code(exc: ConnectionClosed) -> int:
    """The close code the server sent (1006 when the connection was dropped without one)."""
    return exc.rcvd.code if exc.rcvd is not None else 1006


@dataclass(slots=True)
class Outcomes:
    """What the server answered across many short connections: frames and close codes, counted."""

    seen: Counter[str] = field(default_factory=Counter)

    def frame(self, frame: dict[str, Any]) -> None:
        """Count one frame (`error` frames by code)."""
        self.seen[f"error {frame.get('code')}" if frame.get("type") == "error" else str(frame.get("type"))] += 1

    def closed(self, code: int) -> None:
        """Count one close by the server."""
        self.seen[f"close {code}"] += 1

    @property
    def internal(self) -> int:
        """`internal_error` frames and closes 1011: the server's own faults."""
        return self.seen["error internal_error"] + self.seen["close 1011"]


async def hello(connection: ClientConnection, outcomes: Outcomes, **fields: Any) -> dict[str, Any]:
    """Send `hello`, return the `welcome` (anything else raises after being counted)."""
    await connection.send(json.dumps({"type": "hello", **fields}))
    frame = await recv_frame(connection)
    outcomes.frame(frame)
    if frame.get("type") != "welcome":
        raise RuntimeError(f"expected welcome, got {frame}")
    return frame


async def until_pong(connection: ClientConnection, outcomes: Outcomes) -> list[dict[str, Any]]:
    """Send `ping`, return the frames that came before its `pong` (each counted)."""
    await connection.send('{"type":"ping"}')
    before = []
    while (frame := await recv_frame(connection))["type"] != "pong":
        outcomes.frame(frame)
        before.append(frame)
    return before


# --- 1. visitors and the flood --------------------------------------------------------------
@dataclass(slots=True)
class Turn:
    """One visitor turn: when its message was sent and how long until `reply.end`."""

    sent: float
    seconds: float


async def visitor(
    url: str, keep_going: Callable[[], bool], turns: list[Turn], problems: Counter[str], label: str
) -> None:
    """One visitor session: a turn at most every VISITOR_PACE_S, the first one always, then while `keep_going()`."""
    try:
        connection = await ws_open(url, VISITOR_IP)
    except Exception as exc:
        problems[f"connect: {type(exc).__name__}: {exc}"] += 1
        return
    outcomes = Outcomes()
    try:
        await hello(connection, outcomes)
        number = 0
        while number == 0 or keep_going():
            now = time.monotonic()
            number += 1
            client_id = f"{label}-{number}-{uuid.uuid4().hex[:8]}"
            text = f"{QUESTION} ({label} turn {number})"
            await connection.send(json.dumps({"type": "message", "text": text, "client_id": client_id}))
            while True:
                frame = await recv_frame(connection, 60)
                if frame["type"] == "error":
                    raise RuntimeError(f"error frame {frame.get('code')}: {frame.get('detail')}")
                if frame["type"] == "reply.end":
                    break
            if frame.get("status") != "complete":
                problems[f"reply.end {frame.get('status')}"] += 1
            turns.append(Turn(now, time.monotonic() - now))
            if keep_going():
                await asyncio.sleep(max(0.0, now + VISITOR_PACE_S - time.monotonic()))
    except Exception as exc:  # recorded; the visitor's figures then cover fewer turns
        problems[f"{type(exc).__name__}: {exc}"[:200]] += 1
    finally:
        await connection.close()


def _ws_key_request(port: int) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET /ws/chat/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()


def _masked(payload: bytes) -> bytes:
    """One client text frame (masked, as RFC 6455 requires), payload under 126 bytes."""
    mask = os.urandom(4)
    return bytes([0x81, 0x80 | len(payload)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


async def _read_until_close(reader: asyncio.StreamReader, stats: Counter[str]) -> int:
    """Read server frames (unmasked), counting them, until a close frame: its code (1006 on EOF)."""
    buffer = b""
    while True:
        try:
            chunk = await reader.read(65536)
        except OSError:  # reset by the server
            return 1006
        if not chunk:
            return 1006
        buffer += chunk
        while len(buffer) >= 2:
            length, start = buffer[1] & 0x7F, 2
            if length == 126:
                if len(buffer) < 4:
                    break
                length, start = struct.unpack("!H", buffer[2:4])[0], 4
            elif length == 127:
                if len(buffer) < 10:
                    break
                length, start = struct.unpack("!Q", buffer[2:10])[0], 10
            if len(buffer) < start + length:
                break
            opcode, payload, buffer = buffer[0] & 0x0F, buffer[start : start + length], buffer[start + length :]
            if opcode == 8:
                return struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
            stats["frames received"] += 1


async def _flood_connection(port: int, stop_at: float, read: bool, stats: Counter[str]) -> None:
    """Connect, handshake, write pings until closed or `stop_at`; reconnect; until `stop_at`."""
    batch = b"".join(_masked(PING_FRAME) for _ in range(64))
    while time.monotonic() < stop_at:
        writer = None
        try:
            async with asyncio.timeout(TIMEOUT_S):
                reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(ATTACKER_IP, 0))
                writer.write(_ws_key_request(port))
                head = await reader.readuntil(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 101"):
                stats["handshake refused"] += 1
                continue
            stats["connections"] += 1
            closed = asyncio.create_task(_read_until_close(reader, stats)) if read else None
            while time.monotonic() < stop_at and not (closed and closed.done()):
                writer.write(batch)
                stats["frames sent"] += 64
                async with asyncio.timeout(5):
                    await writer.drain()
            if closed is not None:
                if closed.done():
                    stats[f"closed {closed.result()}"] += 1
                else:
                    closed.cancel()
        except (OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
            stats[f"dropped ({type(exc).__name__})"] += 1
        finally:
            if writer is not None:
                writer.transport.abort()


def attacker_process(port: int, connections: int, seconds: float, read: bool, results: Connection) -> None:
    """The attacker's process: `connections` flooding loops for `seconds`; sends back its counts and CPU."""

    async def main() -> Counter[str]:
        stats: Counter[str] = Counter()
        stop_at = time.monotonic() + seconds
        await asyncio.gather(*(_flood_connection(port, stop_at, read, stats) for _ in range(connections)))
        return stats

    results.send("started")
    started = time.process_time()
    stats = asyncio.run(main())
    results.send((dict(stats), time.process_time() - started))


@dataclass(slots=True)
class FloodResult:
    """One flood run (reading or not) with the visitors' turns before and during it."""

    reading: bool
    seconds: float
    attacker: dict[str, int]
    closed_1008_logged: int
    dropped_unread_logged: int
    rss_baseline_mb: float
    rss_peak_mb: float
    rss_after_mb: float
    idle_p50_s: float
    idle_p95_s: float
    idle_turns: int
    flood_p50_s: float
    flood_p95_s: float
    flood_turns: int
    cpu_server_pct: float
    cpu_attacker_pct: float
    cpu_bench_pct: float
    visitor_problems: dict[str, int]
    log_errors: dict[str, int]

    @property
    def growth_mb(self) -> float:
        """Peak RSS over the baseline."""
        return self.rss_peak_mb - self.rss_baseline_mb

    @property
    def returned(self) -> float:
        """RSS after the settle time, relative to the baseline (0.05 = 5 % above)."""
        return self.rss_after_mb / self.rss_baseline_mb - 1

    @property
    def slowdown(self) -> float:
        """Visitor p50 under the flood ÷ idle p50."""
        return self.flood_p50_s / self.idle_p50_s


def _p(turns: list[Turn], share: float) -> float:
    return percentile([t.seconds for t in turns], share) if turns else float("nan")


async def flood_phase(server: Server, args: argparse.Namespace, read: bool) -> FloodResult:
    """Idle visitors, then the flood with visitors, then the settle time; RSS throughout."""
    server.new_log()
    turns: list[Turn] = []
    problems: Counter[str] = Counter()
    done = asyncio.Event()  # set when the flood ends: the visitors stop after their turn in flight
    async with RssMonitor(server) as rss:
        visitors = [
            asyncio.create_task(visitor(server.url(), lambda: not done.is_set(), turns, problems, f"v{read:d}{i}"))
            for i in range(args.visitors)
        ]
        await asyncio.sleep(args.idle_seconds)
        context = multiprocessing.get_context("spawn")
        receiver, sender = context.Pipe(duplex=False)
        attacker = context.Process(
            target=attacker_process, args=(server.port, args.attack_connections, args.flood_seconds, read, sender)
        )
        attacker.start()
        # The flood's window starts when the attacker's interpreter is up and ends with its result.
        got = await asyncio.to_thread(receiver.poll, 60)
        if got:
            receiver.recv()
        flood_at = time.monotonic()
        cpu_server, cpu_bench = process_cpu_seconds(server.pid), time.process_time()
        got = got and await asyncio.to_thread(receiver.poll, args.flood_seconds + 3 * TIMEOUT_S)
        stats, cpu_attacker = receiver.recv() if got else ({"no result from the attacker": 1}, float("nan"))
        flood_end = time.monotonic()
        done.set()
        window = flood_end - flood_at
        cpu_server = process_cpu_seconds(server.pid) - cpu_server
        cpu_bench = time.process_time() - cpu_bench
        attacker.join(10)
        if attacker.is_alive():
            attacker.kill()
        await asyncio.gather(*visitors)
        await asyncio.sleep(max(0.0, flood_end + args.settle_seconds - time.monotonic()))
        after = time.monotonic()
    log = server.new_log()
    idle = [t for t in turns if t.sent + t.seconds < flood_at]  # a turn that straddles is in neither
    flooded = [t for t in turns if flood_at <= t.sent <= flood_end]
    before = rss.between(flood_at - 2, flood_at)
    return FloodResult(
        reading=read,
        seconds=window,
        attacker=stats,
        closed_1008_logged=log.count("faster than"),
        dropped_unread_logged=log.count("unread"),
        rss_baseline_mb=sum(before) / len(before),
        rss_peak_mb=max(rss.between(flood_at, flood_end)),
        rss_after_mb=sum(rss.between(after - 1, after)) / len(rss.between(after - 1, after)),
        idle_p50_s=_p(idle, 0.5),
        idle_p95_s=_p(idle, 0.95),
        idle_turns=len(idle),
        flood_p50_s=_p(flooded, 0.5),
        flood_p95_s=_p(flooded, 0.95),
        flood_turns=len(flooded),
        cpu_server_pct=100 * cpu_server / window,
        cpu_attacker_pct=100 * cpu_attacker / window,
        cpu_bench_pct=100 * cpu_bench / window,
        visitor_problems=dict(problems),
        log_errors=log.errors,
    )


# --- 2. slot exhaustion ---------------------------------------------------------------------
@dataclass(slots=True)
class SlotsResult:
    """One formerly leaking path, repeated, and the slot check after it."""

    path: str
    repeats: int
    outcomes: dict[str, int]
    welcomed: int
    limit: int
    extra_refused_4429: bool
    internal_errors: int
    log_errors: dict[str, int]
    warnings_logged: int

    @property
    def leaked(self) -> int:
        """Slots not given back (at least; a full leak shows as `limit`)."""
        return self.limit - self.welcomed


async def _surrogate_once(url: str, outcomes: Outcomes, _resume: dict[str, str]) -> None:
    async with await ws_open(url, SLOTS_IP) as connection:
        await connection.send(SURROGATE_FRAME)
        await until_pong(connection, outcomes)  # the error frame, then the connection still answers


async def _oversize_once(url: str, outcomes: Outcomes, _resume: dict[str, str]) -> None:
    async with await ws_open(url, SLOTS_IP) as connection:
        await hello(connection, outcomes)
        await connection.send('{"type":"ping","pad":"' + "x" * OVERSIZE_BYTES + '"}')
        with contextlib.suppress(ConnectionClosed):
            while True:
                outcomes.frame(await recv_frame(connection))
        outcomes.closed(close_code_of(connection))


def close_code_of(connection: ClientConnection) -> int:
    """The close code the server sent on `connection` (1006 when none)."""
    received = connection.protocol.close_rcvd
    return received.code if received is not None else 1006


async def _abort_once(url: str, outcomes: Outcomes, resume: dict[str, str]) -> None:
    connection = await ws_open(url, SLOTS_IP)
    await connection.send(json.dumps({"type": "hello", **resume}))
    # 0-10 ms later: sometimes before the server reads the hello, sometimes while it handles it.
    await asyncio.sleep(outcomes.seen["aborted"] % 11 / 1000)
    sock = connection.transport.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close = TCP reset
    connection.transport.abort()
    outcomes.seen["aborted"] += 1


async def slot_check(url: str, limit: int) -> tuple[int, bool]:
    """Welcomes out of `limit` simultaneous connections from SLOTS_IP, and whether one more got 4429."""
    connections: list[ClientConnection] = []
    welcomed, outcomes = 0, Outcomes()
    try:
        for _ in range(limit + 1):
            connection = await ws_open(url, SLOTS_IP)
            connections.append(connection)
            try:
                await hello(connection, outcomes)
                welcomed += 1
            except (ConnectionClosed, RuntimeError):
                pass
        extra_refused = close_code_of(connections[-1]) == 4429
        return min(welcomed, limit), extra_refused and welcomed <= limit
    finally:
        await asyncio.gather(*(connection.close() for connection in connections), return_exceptions=True)


async def slots_phase(server: Server, repeats: int, limit: int) -> list[SlotsResult]:
    """Each formerly leaking path `repeats` times, then the slot check."""
    setup = Outcomes()
    async with await ws_open(server.url(), SLOTS_IP) as connection:  # a stored session to resume
        welcome = await hello(connection, setup)
        await connection.send(json.dumps({"type": "message", "text": QUESTION, "client_id": "slots-setup"}))
        while (await recv_frame(connection, 60))["type"] != "reply.end":
            pass
    resume = {"session_id": welcome["session_id"], "token": welcome["token"]}
    paths: dict[str, Callable[[str, Outcomes, dict[str, str]], Awaitable[None]]] = {
        "lone surrogate in a key": _surrogate_once,
        "hello, then a 70,000-byte frame": _oversize_once,
        "hello resuming a session, then TCP reset": _abort_once,
    }
    results = []
    for name, once in paths.items():
        server.new_log()
        outcomes = Outcomes()
        for _ in range(repeats):
            try:
                async with asyncio.timeout(TIMEOUT_S):
                    await once(server.url(), outcomes, resume)
            except ConnectionClosed as exc:
                outcomes.closed(close_code(exc))
            except Exception as exc:
                outcomes.seen[f"{type(exc).__name__}"] += 1
        await asyncio.sleep(1.0)  # the server notices the last hang-up
        welcomed, extra_refused = await slot_check(server.url(), limit)
        log = server.new_log()
        results.append(
            SlotsResult(
                path=name,
                repeats=repeats,
                outcomes=dict(outcomes.seen),
                welcomed=welcomed,
                limit=limit,
                extra_refused_4429=extra_refused,
                internal_errors=outcomes.internal,
                log_errors=log.errors,
                warnings_logged=sum(log.warnings.values()),
            )
        )
        await asyncio.sleep(0.5)
    return results


# --- 3. half-open handshakes ----------------------------------------------------------------
@dataclass(slots=True)
class HandshakeResult:
    """Partial request heads: when the server closed them, its memory, a visitor meanwhile."""

    opened: int
    open_failed: int
    closed: int
    still_open: int
    close_p50_s: float
    close_max_s: float
    timeout_s: float
    rss_before_mb: float
    rss_open_mb: float
    rss_after_mb: float
    visitor_turn_s: float | None
    visitor_problems: dict[str, int]
    fd_limit_client: int
    fd_limit_server: int
    log_errors: dict[str, int]
    warnings_logged: int


async def _half_open(port: int, held: list[float], failed: Counter[str], deadline: float) -> None:
    try:
        async with asyncio.timeout(TIMEOUT_S):
            reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(HANDSHAKE_IP, 0))
    except (OSError, TimeoutError) as exc:
        failed[type(exc).__name__] += 1
        return
    opened = time.monotonic()
    writer.write(f"GET /ws/chat/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n".encode())
    try:
        async with asyncio.timeout(max(0.1, deadline - time.monotonic())):
            while await reader.read(4096):
                pass
        held.append(time.monotonic() - opened)
    except OSError:  # a reset is a close too
        held.append(time.monotonic() - opened)
    except TimeoutError:
        pass
    finally:
        writer.transport.abort()


async def handshake_phase(server: Server, count: int, timeout_s: float) -> HandshakeResult:
    """`count` half-open handshakes, opened 50 at a time, held until the server closes them."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < count + 200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, count + 200), hard))
    server.new_log()
    held: list[float] = []
    failed: Counter[str] = Counter()
    problems: Counter[str] = Counter()
    turns: list[Turn] = []
    rss_before = server.rss_mb()
    deadline = time.monotonic() + timeout_s + 30
    async with RssMonitor(server) as rss:
        tasks = []
        for start in range(0, count, 50):
            tasks += [
                asyncio.create_task(_half_open(server.port, held, failed, deadline))
                for _ in range(min(50, count - start))
            ]
            await asyncio.sleep(0.02)
        opened_at = time.monotonic()
        await asyncio.sleep(0.5)
        await visitor(server.url(), lambda: False, turns, problems, "handshakes")
        await asyncio.gather(*tasks)
        rss_open = max(rss.between(opened_at, opened_at + timeout_s))
    log = server.new_log()
    return HandshakeResult(
        opened=count - sum(failed.values()),
        open_failed=sum(failed.values()),
        closed=len(held),
        still_open=count - sum(failed.values()) - len(held),
        close_p50_s=percentile(held, 0.5) if held else float("nan"),
        close_max_s=max(held, default=float("nan")),
        timeout_s=timeout_s,
        rss_before_mb=rss_before,
        rss_open_mb=rss_open,
        rss_after_mb=server.rss_mb(),
        visitor_turn_s=turns[0].seconds if turns else None,
        visitor_problems=dict(problems),
        fd_limit_client=resource.getrlimit(resource.RLIMIT_NOFILE)[0],
        fd_limit_server=server.open_files_limit(),
        log_errors=log.errors,
        warnings_logged=sum(log.warnings.values()),
    )


# --- 4. session creation --------------------------------------------------------------------
@dataclass(slots=True)
class CreationResult:
    """One way of creating sessions on fresh connections for a while, from one address."""

    name: str
    seconds: float
    attempts: int
    outcomes: dict[str, int]
    rows_written: int
    target_rows: int


@dataclass(slots=True)
class EventsResult:
    """One session's events: on one connection at the allowed rate, then on fresh resuming ones."""

    single_seconds: float
    single_accepted: int
    single_rate_limited: int
    connections: int
    outcomes: dict[str, int]
    rows: int
    data_bytes: int
    target_rows: int


def count_rows(database: Path, sql: str) -> tuple[int, ...]:
    """One row of `sql` against the server's SQLite file (read-only)."""
    with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30)) as connection:
        return tuple(value or 0 for value in connection.execute(sql).fetchone())


async def _create(url: str, ip: str, then: str, outcomes: Outcomes) -> None:
    """One fresh connection: `hello`, then `message` or `event` (or nothing), then hang up."""
    async with await ws_open(url, ip) as connection:
        await hello(connection, outcomes)
        if then == "message":
            await connection.send(json.dumps({"type": "message", "text": "Hello there", "client_id": "c1"}))
            frame = await recv_frame(connection)
            outcomes.frame(frame)
            if frame.get("code") == "rate_limited":
                outcomes.seen["refused: sessions" if "conversations" in frame["detail"] else "refused: messages"] += 1
        elif then == "event":
            await connection.send(json.dumps({"type": "event", "name": "widget_open", "data": {}}))
            before = await until_pong(connection, outcomes)
            if not before:
                outcomes.seen["event stored"] += 1
            elif "conversations" in before[0].get("detail", ""):
                outcomes.seen["refused: sessions"] += 1


async def creation_phase(
    server: Server, database: Path, name: str, ip: str, then: str, seconds: float
) -> CreationResult:
    """10 workers from `ip` open fresh connections back to back for `seconds`."""
    outcomes = Outcomes()
    rows_before = count_rows(database, "SELECT COUNT(*) FROM assistant_chatsession")[0]
    stop_at = time.monotonic() + seconds
    attempts = 0

    async def worker() -> None:
        nonlocal attempts
        while time.monotonic() < stop_at:
            attempts += 1
            try:
                async with asyncio.timeout(TIMEOUT_S):
                    await _create(server.url(), ip, then, outcomes)
            except ConnectionClosed as exc:
                outcomes.closed(close_code(exc))
            except Exception as exc:
                outcomes.seen[type(exc).__name__] += 1

    await asyncio.gather(*(worker() for _ in range(10)))
    await asyncio.sleep(0.5)
    rows = count_rows(database, "SELECT COUNT(*) FROM assistant_chatsession")[0] - rows_before
    target = 0 if then == "hello" else LIMITS["CHAT_SESSIONS_PER_IP_PER_HOUR"]
    return CreationResult(name, seconds, attempts, dict(outcomes.seen), rows, target)


async def events_phase(server: Server, database: Path, seconds: float, limit: int) -> EventsResult:
    """One session's 4 KB events: one connection at the allowed rate, then resuming connections."""
    events_sql = "SELECT COUNT(*), SUM(LENGTH(data)) FROM assistant_chatevent"
    rows_before, bytes_before = count_rows(database, events_sql)  # the hello + event phase's rows
    event = json.dumps({"type": "event", "name": "bench_blob", "data": EVENT_DATA})
    outcomes = Outcomes()
    accepted = refused = 0
    async with await ws_open(server.url(), EVENTS_IP) as connection:
        welcome = await hello(connection, outcomes)
        stop_at = time.monotonic() + seconds
        with contextlib.suppress(ConnectionClosed):  # counted below from the close frame
            while time.monotonic() < stop_at:
                await connection.send(event)
                before = await until_pong(connection, outcomes)
                if not before:
                    accepted += 1
                    continue
                refused += 1
                if before[0].get("code") != "rate_limited":
                    break
                # retry_after is rounded to 0.1 s and can read 0.0 while a retry is still refused.
                wait = max(float(before[0].get("retry_after", 1)), 0.1)
                await asyncio.sleep(min(wait, max(0.0, stop_at - time.monotonic())))
        if connection.protocol.close_rcvd is not None:
            outcomes.closed(connection.protocol.close_rcvd.code)
    resume = {"session_id": welcome["session_id"], "token": welcome["token"]}
    connections, reached = 0, False
    while not reached and connections < 10 * limit:  # bounded even if the cap never came
        connections += 1
        try:
            async with await ws_open(server.url(), EVENTS_IP) as connection:
                await hello(connection, outcomes, **resume)
                while True:
                    await connection.send(event)
                    before = await until_pong(connection, outcomes)
                    if before:  # rate_limited: a fresh connection; anything else ends the attempt
                        reached = before[0].get("code") != "rate_limited"
                        break
        except Exception as exc:
            outcomes.seen[type(exc).__name__] += 1
            break
    await asyncio.sleep(0.5)
    rows, data_bytes = count_rows(database, events_sql)
    rows, data_bytes = rows - rows_before, data_bytes - bytes_before
    return EventsResult(
        single_seconds=seconds,
        single_accepted=accepted,
        single_rate_limited=refused,
        connections=connections,
        outcomes=dict(outcomes.seen),
        rows=rows,
        data_bytes=data_bytes,
        target_rows=limit,
    )


# --- the run --------------------------------------------------------------------------------
@dataclass(slots=True)
class RunResult:
    """Everything one run measured."""

    started: str
    cpus: int | None
    limits: dict[str, float]
    floods: list[FloodResult]
    slots: list[SlotsResult]
    handshakes: HandshakeResult
    creation: list[CreationResult]
    events: EventsResult
    log_warnings: dict[str, int]
    log_errors: dict[str, int]
    server_log: str
    checks: list[tuple[str, str, str, bool]] = field(default_factory=list)


def server_env(workdir: Path, extra: list[str]) -> dict[str, str]:
    """Embedded defaults: SQLite file, in-memory layer, local assistant at 20 ms a token."""
    dropped = {"DATABASE_URL", "REDIS_URL", "SQLITE_PATH", "KNOWLEDGE_DIR", "DJANGO_SETTINGS_MODULE"}
    env = {key: value for key, value in os.environ.items() if key not in dropped and not key.startswith("CHAT_")}
    env.update(
        PARLEY_DOTENV="0",
        PARLEY_ENV="test",
        DEBUG="0",
        LOG_LEVEL="warning",
        PYTHONUNBUFFERED="1",
        AI_PROVIDERS="local",
        LOCAL_TOKEN_DELAY_MS="20",
        KNOWLEDGE_DIR=str(workdir / "knowledge"),
        SQLITE_PATH=str(workdir / "abuse.sqlite3"),
        SHUTDOWN_GRACE_S="0",  # stopped within the 10 s `Server.__exit__` allows, replies or not
    )
    env.update(item.split("=", 1) for item in extra)
    return env


async def run_phases(server: Server, database: Path, args: argparse.Namespace, limits: dict[str, float]) -> RunResult:
    """The four phases in order on one server."""
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    warm: list[Turn] = []
    await visitor(server.url(), lambda: False, warm, Counter(), "warmup")  # first-use costs land here
    floods = []
    for read in (True, False):
        print(
            f"flood ({'reading' if read else 'not reading'}): {args.idle_seconds:g} s idle, "
            f"{args.flood_seconds:g} s flood, {args.settle_seconds:g} s settle…",
            flush=True,
        )
        floods.append(await flood_phase(server, args, read))
    print(f"slot exhaustion: {args.repeats} × 3 paths…", flush=True)
    slots = await slots_phase(server, args.repeats, int(limits["MAX_CONNECTIONS_PER_IP"]))
    print(f"half-open handshakes: {args.handshakes}…", flush=True)
    handshakes = await handshake_phase(server, args.handshakes, limits["HTTP_HEADER_TIMEOUT_S"])
    print(f"session creation: 3 × {args.session_seconds:g} s, then events…", flush=True)
    creation = [
        await creation_phase(server, database, "hello only", HELLO_IP, "hello", args.session_seconds),
        await creation_phase(server, database, "hello + message", MESSAGE_IP, "message", args.session_seconds),
        await creation_phase(server, database, "hello + event", EVENT_SESSION_IP, "event", args.session_seconds),
    ]
    events = await events_phase(server, database, args.event_seconds, int(limits["CHAT_EVENTS_PER_SESSION"]))
    return RunResult(started, os.cpu_count(), limits, floods, slots, handshakes, creation, events, {}, {}, "")


def judge(result: RunResult) -> None:
    """Each target with its figure: (what, target, measured, met)."""
    checks = result.checks
    for flood in result.floods:
        mode = "reading" if flood.reading else "not reading"
        checks += [
            (
                f"flood {mode}: RSS growth",
                f"≤ {RSS_GROWTH_TARGET_MB:g} MB",
                f"{flood.growth_mb:+.1f} MB ({flood.rss_baseline_mb:.1f} → peak {flood.rss_peak_mb:.1f})",
                flood.growth_mb <= RSS_GROWTH_TARGET_MB,
            ),
            (
                f"flood {mode}: RSS after",
                f"within {RSS_RETURN_TARGET:.0%} of baseline",
                f"{flood.rss_after_mb:.1f} MB ({flood.returned:+.1%})",
                abs(flood.returned) <= RSS_RETURN_TARGET,
            ),
            (
                f"flood {mode}: visitor p50",
                f"≤ {LATENCY_TARGET_FACTOR} × idle",
                f"{flood.flood_p50_s:.2f} s vs idle {flood.idle_p50_s:.2f} s ({flood.slowdown:.2f}×)",
                flood.slowdown <= LATENCY_TARGET_FACTOR,
            ),
            (f"flood {mode}: ERROR lines", "0", str(sum(flood.log_errors.values())), not flood.log_errors),
        ]
    for slots in result.slots:
        checks += [
            (
                f"slots after {slots.path}: leaked",
                "0",
                f"{slots.leaked} ({slots.welcomed}/{slots.limit} welcomed, "
                f"21st {'refused 4429' if slots.extra_refused_4429 else 'NOT refused'})",
                slots.leaked == 0 and slots.extra_refused_4429,
            ),
            (
                f"slots after {slots.path}: internal_error / 1011",
                "0",
                str(slots.internal_errors),
                slots.internal_errors == 0,
            ),
            (f"slots after {slots.path}: ERROR lines", "0", str(sum(slots.log_errors.values())), not slots.log_errors),
        ]
    shake = result.handshakes
    limit = shake.timeout_s + HANDSHAKE_SLACK_S
    checks += [
        (
            "half-open handshakes: closed by the server",
            f"all, ≤ {limit:g} s",
            f"{shake.closed}/{shake.opened}, p50 {shake.close_p50_s:.1f} s, max {shake.close_max_s:.1f} s",
            shake.closed == shake.opened and shake.close_max_s <= limit,
        ),
        (
            "half-open handshakes: visitor turn meanwhile",
            "completes",
            "-" if shake.visitor_turn_s is None else f"{shake.visitor_turn_s:.2f} s",
            shake.visitor_turn_s is not None,
        ),
    ]
    for creation in result.creation:
        checks.append(
            (
                f"sessions, {creation.name}: rows",
                f"≤ {creation.target_rows}",
                str(creation.rows_written),
                creation.rows_written <= creation.target_rows,
            )
        )
    events = result.events
    checks.append(
        (
            "events of one session: rows",
            f"≤ {events.target_rows}",
            f"{events.rows} ({events.data_bytes:,} bytes of data)",
            events.rows <= events.target_rows,
        )
    )
    checks.append(
        ("server log: ERROR lines (whole run)", "0", str(sum(result.log_errors.values())), not result.log_errors)
    )


def print_report(result: RunResult) -> None:
    """The figures of each phase, then the targets."""
    print(f"\nParley abuse benchmark — {result.started}, {result.cpus} CPUs shared by server, attacker and visitors")
    for flood in result.floods:
        a = flood.attacker
        print(
            f"\nFlood ({'reading' if flood.reading else 'not reading'} replies), {flood.seconds:.1f} s from "
            f"{ATTACKER_IP}: {a.get('frames sent', 0):,} ping frames written on {a.get('connections', 0):,} "
            f"connections; WARNING lines for 1008 closes: {flood.closed_1008_logged:,} (one per address a minute)"
            + (f", 1008 closes seen by the attacker: {a.get('closed 1008', 0):,}" if flood.reading else "")
            + f"; WARNING lines for unread output: {flood.dropped_unread_logged}"
        )
        print(f"  attacker counts: {a}")
        print(
            f"  RSS MB: baseline {flood.rss_baseline_mb:.1f}, peak {flood.rss_peak_mb:.1f}, "
            f"after {flood.rss_after_mb:.1f}"
        )
        print(
            f"  visitor turn s: idle p50 {flood.idle_p50_s:.2f} / p95 {flood.idle_p95_s:.2f} "
            f"({flood.idle_turns} turns); flood p50 {flood.flood_p50_s:.2f} / p95 {flood.flood_p95_s:.2f} "
            f"({flood.flood_turns} turns)" + (f"; problems {flood.visitor_problems}" if flood.visitor_problems else "")
        )
        print(
            f"  CPU % of a core: server {flood.cpu_server_pct:.0f}, attacker {flood.cpu_attacker_pct:.0f}, "
            f"visitors+sampling {flood.cpu_bench_pct:.0f}"
        )
    print(f"\nSlot exhaustion (MAX_CONNECTIONS_PER_IP {result.limits['MAX_CONNECTIONS_PER_IP']:g}):")
    for slots in result.slots:
        print(
            f"  {slots.path} × {slots.repeats}: {slots.outcomes}; then {slots.welcomed}/{slots.limit} welcomed, "
            f"one more {'refused 4429' if slots.extra_refused_4429 else 'NOT refused'}; "
            f"{slots.warnings_logged} WARNING lines"
        )
    shake = result.handshakes
    print(
        f"\nHalf-open handshakes: {shake.opened} opened ({shake.open_failed} failed to open), "
        f"{shake.closed} closed by the server after p50 {shake.close_p50_s:.1f} s / max {shake.close_max_s:.1f} s "
        f"(HTTP_HEADER_TIMEOUT_S {shake.timeout_s:g}); RSS {shake.rss_before_mb:.1f} → {shake.rss_open_mb:.1f} "
        f"while open → {shake.rss_after_mb:.1f} MB; fd limits client {shake.fd_limit_client}, server "
        f"{shake.fd_limit_server}; visitor turn meanwhile "
        + ("failed" if shake.visitor_turn_s is None else f"{shake.visitor_turn_s:.2f} s")
    )
    print("\nSession creation:")
    for creation in result.creation:
        print(
            f"  {creation.name}, {creation.seconds:g} s: {creation.attempts} connections, {creation.outcomes}; "
            f"ChatSession rows written {creation.rows_written}"
        )
    events = result.events
    print(
        f"  events, one connection {events.single_seconds:g} s: {events.single_accepted} stored, "
        f"{events.single_rate_limited} rate_limited; then {events.connections} resuming connections until "
        f"limit_reached: {events.rows} ChatEvent rows, {events.data_bytes:,} bytes of data"
    )
    if result.log_errors:
        print(f"\nServer ERROR lines: {result.log_errors}")
    print(f"Server WARNING lines by shape: {result.log_warnings}\n(log: {result.server_log})")
    print("\nTargets:")
    width = max(len(check[0]) for check in result.checks) + 2
    for what, target, measured, met in result.checks:
        print(f"  {what.ljust(width)} target {target}: {measured} → {'met' if met else 'NOT MET'}")
    print("(RSS and latency targets are reported; the exit status enforces the others: see the docstring)")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--flood-seconds", type=float, default=30.0, help="each flood (default 30)")
    parser.add_argument("--idle-seconds", type=float, default=15.0, help="idle visitor turns before each flood (15)")
    parser.add_argument("--settle-seconds", type=float, default=10.0, help="after each flood before RSS is read (10)")
    parser.add_argument("--attack-connections", type=int, default=20, help="attacker connections (default 20)")
    parser.add_argument("--visitors", type=int, default=2, help="concurrent visitor sessions (default 2)")
    parser.add_argument("--repeats", type=int, default=100, help="repeats of each leaking path (default 100)")
    parser.add_argument("--handshakes", type=int, default=1000, help="half-open handshakes (default 1000)")
    parser.add_argument("--session-seconds", type=float, default=15.0, help="each session-creation run (15)")
    parser.add_argument("--event-seconds", type=float, default=10.0, help="events on one connection (default 10)")
    parser.add_argument("--json", type=Path, help="also write the raw results to this file")
    add_server_env_option(parser)
    args = parser.parse_args(argv)
    check_server_env(parser, args)
    durations = (args.flood_seconds, args.idle_seconds, args.session_seconds, args.event_seconds)
    if not all(0 < value <= 600 for value in durations) or not 0 <= args.settle_seconds <= 600:
        parser.error("durations must be in (0, 600] seconds")
    if not 1 <= args.attack_connections <= 500 or not 1 <= args.visitors <= 3:
        parser.error("expected 1 ≤ attack-connections ≤ 500 and 1 ≤ visitors ≤ 3 (the per-IP message limit)")
    if not 1 <= args.repeats <= 10_000 or not 1 <= args.handshakes <= 10_000:
        parser.error("expected 1 ≤ repeats ≤ 10000 and 1 ≤ handshakes ≤ 10000")
    return args


def main(argv: list[str] | None = None) -> int:
    """Migrate a fresh database, serve it, run the phases, report."""
    args = parse_args(argv)
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="parley-abuse-") as tmp:
        workdir = Path(tmp)
        write_knowledge_base(workdir / "knowledge")
        env = server_env(workdir, args.server_env)
        limits = {key: float(env.get(key, default)) for key, default in LIMITS.items()}
        print("migrating a fresh SQLite database…", flush=True)
        subprocess.run([str(PYTHON), "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True)
        log_path = Path(tempfile.gettempdir()) / "parley-abuse-server.log"
        log_path.write_text("")  # kept after the run for inspection
        database = workdir / "abuse.sqlite3"
        with Server(env, log_path) as server:
            result = asyncio.run(run_phases(server, database, args, limits))
        whole = LogCounts.parse(log_path.read_text(errors="replace"))
        result.log_warnings, result.log_errors, result.server_log = whole.warnings, whole.errors, str(log_path)
    judge(result)
    print_report(result)
    print(f"\nbenchmark took {time.monotonic() - began:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(asdict(result), indent=2, default=str))
    return 0 if all(met for what, _, _, met in result.checks if not what.startswith(MEASURED_ONLY)) else 1


if __name__ == "__main__":
    sys.exit(main())
