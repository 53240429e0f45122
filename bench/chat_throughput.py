"""Chat throughput benchmark: Parley's `/ws/chat/` against a bare Channels echo, same process.

Usage (from the project root)::

    .venv/bin/python bench/chat_throughput.py [--clients 50] [--seconds 10] [--warmup 2]
                                              [--backend sqlite|postgres|both] [--json out.json]
                                              [--server-env KEY=VALUE ...]

For each backend a daphne process serves `bench.asgi:application` (Parley's routes plus
`/ws/echo/`) with the local assistant at 0 ms per chunk, rate limits raised out of the way and
a generated knowledge base whose one matching section composes a ~100-word answer. One client
process (asyncio + `websockets`) then runs N concurrent connections through three phases, each
with a warm-up followed by a measured window:

1. echo       - send a frame, wait for it to come back: round trips/s and latency.
2. chat       - `message` -> `ack`, `reply.start`, one `reply.delta`, `reply.end`
                (LOCAL_CHUNK_WORDS=0: the whole reply is one chunk): turns/s and latency from
                send to `reply.end`; every ack must precede its `reply.start` and every reply
                must end `complete`.
3. floor      - `/ws/floor/` (bench/floor.py): per message one hand-written INSERT committed
                in one database unit, then the same four frames with a fixed reply; no ORM,
                no checks, no search, no channel layer. The least a durable turn costs here.
4. streaming  - the same as chat with LOCAL_CHUNK_WORDS=1 (one chunk per word, ~100 per reply; the
                server is restarted): replies/s, delta frames/s and words/s. The server
                coalesces deltas into at most one channel-layer message per 50 ms per reply.

After each chat phase the database is checked: the visitor messages stored must be exactly the
ones the clients got an `ack` for, and every assistant message must be `complete`.

Backends: `sqlite` (a fresh migrated temp file, in-memory channel layer, local-memory cache) and
`postgres` (database `parley_bench` dropped and re-created at postgres://postgres@127.0.0.1:5432,
Redis db 14 flushed, channel-layer prefix `bench`); `postgres` is skipped with a message when
either service is unreachable.

The client shares the machine with the server, so absolute rates depend on the host; the
turns/echo ratio and the server CPU time per turn (read from /proc) are the robust figures.
Exit status: 0 when every check passed, 1 when a durability or protocol check failed (the
throughput target is reported, not enforced). See docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from websockets.asyncio.client import ClientConnection, connect

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = ROOT / ".venv" / "bin"
PYTHON = VENV_BIN / "python"
DAPHNE = VENV_BIN / "daphne"

POSTGRES_ADMIN_URL = "postgres://postgres@127.0.0.1:5432/postgres"
POSTGRES_DATABASE = "parley_bench"
POSTGRES_URL = f"postgres://postgres@127.0.0.1:5432/{POSTGRES_DATABASE}"
REDIS_URL = "redis://127.0.0.1:6379/14"

TARGET_RATIO = 0.25  # Postgres+Redis turns/s must be at least this share of echo round trips/s
REPLY_WORDS = 100  # words in the composed answer of the benchmark section
QUESTION = "Tell me about the zephyr quokka throughput benchmark"
TURN_TIMEOUT_S = 30.0  # one round trip or turn; a hang fails the client instead of the run
SERVER_START_TIMEOUT_S = 30.0
CONNECT_TIMEOUT_S = 30.0  # opening all the clients of a phase
CLK_TCK = os.sysconf("SC_CLK_TCK")
HUGE = "100000000"
FLOOR_PREFIX = "floor-"  # client ids of the floor phase, checked apart from the chat turns


# --- knowledge base -------------------------------------------------------------------------
_BODY_TEXT = (
    "steady packets travel across the loopback wire while the server stores every visitor "
    "message before it answers and then streams the reply back word by word to each tab"
)


def write_knowledge_base(directory: Path) -> int:
    """Write the benchmark knowledge base into `directory`; return the answer's word count.

    One section answers QUESTION; forty filler sections with their own vocabulary give its
    terms a high BM25 weight, so it passes the relevance gates and is the only hit. The local
    assistant answers `**<title>**\\n\\n<text>\\n\\nSources: <document> › <title>`; the text is
    sized so that answer has REPLY_WORDS words (whitespace-separated, as the provider chunks).
    """
    directory.mkdir(parents=True, exist_ok=True)
    document, title = "Throughput benchmark", "Zephyr quokka throughput"
    overhead = 2 * len(title.split()) + len(document.split()) + 2  # "Sources:" and the label separator
    vocabulary = _BODY_TEXT.split()
    body = [vocabulary[i % len(vocabulary)] for i in range(REPLY_WORDS - overhead)]
    body[-1] += "."
    (directory / "benchmark.md").write_text(f"# {document}\n\n## {title}\n\n{' '.join(body).capitalize()}\n")
    filler = ["# Filler topics\n"]
    for number in range(40):
        words = " ".join(f"{stem}{number}" for stem in ("alder", "birch", "cedar", "dune", "ember", "fjord"))
        filler.append(f"## Filler topic {number}\n\nThe {words} notes are unrelated to anything asked.\n")
    (directory / "filler.md").write_text("\n".join(filler))
    return REPLY_WORDS


# --- measurements ---------------------------------------------------------------------------
def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of one process (all its threads) from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime: fields 14 and 15


def services_cpu_seconds(names: tuple[str, ...] = ("postgres", "redis-server")) -> float:
    """CPU seconds of every running Postgres and Redis process (0 where /proc says nothing)."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
        except OSError:
            continue
        name = raw[raw.find("(") + 1 : raw.rfind(")")]
        if name in names:
            fields = raw.rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / CLK_TCK
    return total


def redis_command_calls(url: str) -> int:
    """Commands the Redis server has executed so far (all clients: INFO commandstats)."""
    import redis

    client = redis.Redis.from_url(url, socket_timeout=3)
    try:
        return sum(int(stat["calls"]) for stat in client.info("commandstats").values())
    finally:
        client.close()


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Counters at one instant: CPU seconds of the server, Postgres+Redis and this client."""

    at: float
    server: float
    services: float
    client: float
    redis_calls: int | None


@dataclass(frozen=True, slots=True)
class Probe:
    """What to read at the edges of a measured window."""

    server_pid: int
    redis_url: str | None = None

    def snapshot(self) -> Snapshot:
        """Read every counter now."""
        return Snapshot(
            at=time.monotonic(),
            server=process_cpu_seconds(self.server_pid),
            services=services_cpu_seconds(),
            client=time.process_time(),
            redis_calls=redis_command_calls(self.redis_url) if self.redis_url else None,
        )


@dataclass(slots=True)
class Sample:
    """One completed round trip (echo) or turn (chat); times are time.monotonic()."""

    sent: float
    done: float
    acked: float | None = None
    deltas: int = 0
    words: int = 0


def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile (`share` in 0..1) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(share * len(ordered) + 0.5)))
    return ordered[rank - 1]


@dataclass(slots=True)
class PhaseResult:
    """What one phase measured inside its window."""

    name: str
    clients: int
    window_s: float
    operations: int
    rate: float
    p50_ms: float
    p99_ms: float
    ack_p50_ms: float | None
    deltas: int
    words: int
    server_cpu_s: float
    services_cpu_s: float
    client_cpu_s: float
    redis_calls: int | None
    problems: dict[str, int] = field(default_factory=dict)

    @property
    def server_cpu_ms_per_op(self) -> float:
        """Server CPU milliseconds per round trip or turn."""
        return 1000 * self.server_cpu_s / self.operations if self.operations else float("nan")

    @property
    def services_cpu_ms_per_op(self) -> float:
        """Postgres+Redis CPU milliseconds per round trip or turn."""
        return 1000 * self.services_cpu_s / self.operations if self.operations else float("nan")

    @property
    def redis_calls_per_op(self) -> float | None:
        """Redis commands per round trip or turn (None without Redis)."""
        if self.redis_calls is None or not self.operations:
            return None
        return self.redis_calls / self.operations


def summarise(
    name: str, clients: int, samples: list[Sample], start: Snapshot, end: Snapshot, problems: Counter[str]
) -> PhaseResult:
    """Keep the samples that completed inside the window and reduce them to figures."""
    inside = [s for s in samples if start.at <= s.done <= end.at]
    window = end.at - start.at
    latencies = [1000 * (s.done - s.sent) for s in inside] or [float("nan")]
    acks = [1000 * (s.acked - s.sent) for s in inside if s.acked is not None]
    redis_calls = None
    if start.redis_calls is not None and end.redis_calls is not None:
        redis_calls = end.redis_calls - start.redis_calls
    return PhaseResult(
        name=name,
        clients=clients,
        window_s=window,
        operations=len(inside),
        rate=len(inside) / window,
        p50_ms=percentile(latencies, 0.50),
        p99_ms=percentile(latencies, 0.99),
        ack_p50_ms=percentile(acks, 0.50) if acks else None,
        deltas=sum(s.deltas for s in inside),
        words=sum(s.words for s in inside),
        server_cpu_s=end.server - start.server,
        services_cpu_s=end.services - start.services,
        client_cpu_s=end.client - start.client,
        redis_calls=redis_calls,
        problems=dict(problems),
    )


# --- clients --------------------------------------------------------------------------------
class ProtocolProblem(Exception):
    """The server answered something the protocol does not allow."""


class BenchClient(Protocol):
    """One connection that can perform one measured operation at a time."""

    connection: ClientConnection

    async def step(self) -> Sample:
        """Do one round trip or turn and time it."""
        ...


async def open_connection(url: str) -> ClientConnection:
    """A websocket without compression or keep-alive pings (they would only add noise)."""
    return await connect(url, compression=None, ping_interval=None, open_timeout=10, close_timeout=2)


async def receive_json(connection: ClientConnection) -> dict[str, Any]:
    """The next frame, decoded; a timeout or a close raises."""
    async with asyncio.timeout(TURN_TIMEOUT_S):
        raw = await connection.recv()
    return json.loads(raw)


class EchoClient:
    """Sends a chat-sized frame to `/ws/echo/` and waits for the same text back."""

    def __init__(self, connection: ClientConnection, index: int) -> None:
        self.connection = connection
        self.payload = json.dumps({"type": "message", "text": QUESTION, "client_id": f"echo-{index}-{uuid.uuid4()}"})

    async def step(self) -> Sample:
        """One round trip."""
        sent = time.monotonic()
        await self.connection.send(self.payload)
        async with asyncio.timeout(TURN_TIMEOUT_S):
            echoed = await self.connection.recv()
        if echoed != self.payload:
            raise ProtocolProblem("echo returned different text")
        return Sample(sent=sent, done=time.monotonic())


class FloorClient:
    """Sends chat `message` frames to `/ws/floor/` and reads the four frames of each turn."""

    def __init__(self, connection: ClientConnection, label: str, acked: set[str]) -> None:
        self.connection = connection
        self.label = label
        self.acked = acked
        self.turns = 0

    async def step(self) -> Sample:
        """One turn: ack, reply.start, reply.delta, reply.end."""
        self.turns += 1
        client_id = f"{FLOOR_PREFIX}{self.label}-{self.turns}-{uuid.uuid4().hex[:12]}"
        sample = Sample(sent=time.monotonic(), done=0.0)
        await self.connection.send(json.dumps({"type": "message", "text": QUESTION, "client_id": client_id}))
        kinds = []
        for _ in range(4):
            frame = await receive_json(self.connection)
            kinds.append(frame.get("type"))
            if frame.get("type") == "ack":
                sample.acked = time.monotonic()
                self.acked.add(client_id)
        if kinds != ["ack", "reply.start", "reply.delta", "reply.end"]:
            raise ProtocolProblem(f"floor frames {kinds}")
        sample.done = time.monotonic()
        sample.deltas = 1
        return sample


class ChatClient:
    """One visitor session on `/ws/chat/` that asks QUESTION again and again."""

    def __init__(self, connection: ClientConnection, label: str, acked: set[str]) -> None:
        self.connection = connection
        self.label = label
        self.acked = acked
        self.turns = 0

    @classmethod
    async def open(cls, url: str, label: str, acked: set[str]) -> ChatClient:
        """Connect and say hello (a new session each)."""
        connection = await open_connection(url)
        await connection.send(json.dumps({"type": "hello"}))
        welcome = await receive_json(connection)
        if welcome.get("type") != "welcome" or not welcome.get("session_id") or not welcome.get("token"):
            raise ProtocolProblem(f"expected welcome with session_id and token, got {welcome.get('type')!r}")
        return cls(connection, label, acked)

    async def step(self) -> Sample:
        """One turn: send a message, read until `reply.end`, checking the frame order."""
        self.turns += 1
        client_id = f"{self.label}-{self.turns}-{uuid.uuid4().hex[:12]}"
        sample = Sample(sent=time.monotonic(), done=0.0)
        await self.connection.send(json.dumps({"type": "message", "text": QUESTION, "client_id": client_id}))
        user_seq: int | None = None
        started = False
        text: list[str] = []
        while True:
            frame = await receive_json(self.connection)
            kind = frame.get("type")
            if kind == "ack":
                if frame.get("client_id") != client_id:
                    raise ProtocolProblem("ack for another client_id")
                sample.acked, user_seq = time.monotonic(), frame["seq"]
                self.acked.add(client_id)
            elif kind == "reply.start":
                if user_seq is None:
                    raise ProtocolProblem("reply.start before ack")
                if frame.get("reply_to") != user_seq:
                    raise ProtocolProblem("reply.start for another message")
                started = True
            elif kind == "reply.delta":
                if not started:
                    raise ProtocolProblem("reply.delta before reply.start")
                sample.deltas += 1
                text.append(frame["text"])
            elif kind == "reply.end":
                if not started:
                    raise ProtocolProblem("reply.end before reply.start")
                if frame.get("status") != "complete":
                    raise ProtocolProblem(f"reply.end status {frame.get('status')!r}")
                sample.done = time.monotonic()
                sample.words = len("".join(text).split())
                return sample
            elif kind == "message":
                raise ProtocolProblem("own message frame echoed back (it is for other tabs only)")
            elif kind == "error":
                raise ProtocolProblem(f"error frame {frame.get('code')}: {frame.get('detail')}")
            else:
                raise ProtocolProblem(f"unexpected frame {kind!r}")


async def _client_loop(client: BenchClient, stop_at: float, samples: list[Sample], problems: Counter[str]) -> None:
    """Operate back to back until `stop_at`; the operation in flight then finishes."""
    while time.monotonic() < stop_at:
        try:
            samples.append(await client.step())
        except Exception as exc:  # a protocol problem, a timeout or a dropped connection: recorded
            problems[f"{type(exc).__name__}: {exc}"] += 1
            return


async def _window(start_at: float, end_at: float, probe: Probe) -> tuple[Snapshot, Snapshot]:
    """Snapshots at the start and the end of the measured window (their times define it)."""
    await asyncio.sleep(max(0.0, start_at - time.monotonic()))
    start = probe.snapshot()
    await asyncio.sleep(max(0.0, end_at - time.monotonic()))
    return start, probe.snapshot()


async def run_phase(
    name: str,
    open_client: Callable[[int], Any],
    *,
    clients: int,
    warmup_s: float,
    seconds: float,
    probe: Probe,
) -> PhaseResult:
    """Open `clients` connections, run them back to back, measure the window after the warm-up."""
    problems: Counter[str] = Counter()
    samples: list[Sample] = []
    async with asyncio.timeout(CONNECT_TIMEOUT_S):
        opened: list[BenchClient] = list(await asyncio.gather(*(open_client(i) for i in range(clients))))
    try:
        begin = time.monotonic()
        start_at, end_at = begin + warmup_s, begin + warmup_s + seconds
        window = asyncio.create_task(_window(start_at, end_at, probe))
        try:
            # Clients finish the operation in flight after end_at; this bounds a stuck one.
            async with asyncio.timeout(warmup_s + seconds + TURN_TIMEOUT_S + 5):
                await asyncio.gather(*(_client_loop(client, end_at, samples, problems) for client in opened))
        except TimeoutError:
            problems["phase deadline passed: clients still waiting were cancelled"] += 1
        start, end = await window
    finally:
        await asyncio.gather(*(client.connection.close() for client in opened), return_exceptions=True)
    return summarise(name, clients, samples, start, end, problems)


# --- server and databases -------------------------------------------------------------------
def free_port() -> int:
    """An unused TCP port on the loopback interface."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def base_env(knowledge_dir: Path) -> dict[str, str]:
    """The process environment shared by migrate and daphne (backend variables come on top)."""
    dropped = {"DATABASE_URL", "REDIS_URL", "SQLITE_PATH", "KNOWLEDGE_DIR", "DJANGO_SETTINGS_MODULE"}
    env = {key: value for key, value in os.environ.items() if key not in dropped}
    env.update(
        PARLEY_DOTENV="0",
        PARLEY_ENV="test",
        DEBUG="0",
        LOG_LEVEL="warning",
        PYTHONUNBUFFERED="1",
        LOCAL_TOKEN_DELAY_MS="0",
        KNOWLEDGE_DIR=str(knowledge_dir),
        CHAT_RATE_LIMIT_PER_MINUTE=HUGE,
        CHAT_RATE_LIMIT_BURST=HUGE,
        CHAT_IP_RATE_LIMIT_PER_MINUTE=HUGE,
        # Per-connection frame limit (600/min by default) would throttle 10+ turns/s per client.
        CHAT_FRAME_RATE_LIMIT_PER_MINUTE=HUGE,
        MAX_CONNECTIONS_PER_IP="1000",
    )
    return env


def migrate(env: dict[str, str]) -> None:
    """`manage.py migrate` against the backend `env` points at."""
    subprocess.run(
        [str(PYTHON), "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True, timeout=180
    )


class DaphneServer:
    """A daphne process serving `bench.asgi:application` (or `application`) on a free port."""

    def __init__(self, env: dict[str, str], log_path: Path, application: str = "bench.asgi:application") -> None:
        self.env = env
        self.log_path = log_path
        self.application = application
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        """The daphne process id."""
        assert self.process is not None
        return self.process.pid

    def url(self, path: str) -> str:
        """A ws:// URL on this server."""
        return f"ws://127.0.0.1:{self.port}{path}"

    def __enter__(self) -> DaphneServer:
        command = [
            str(DAPHNE),
            "-b",
            "127.0.0.1",
            "-p",
            str(self.port),
            "--websocket-max-message-size",
            "65536",
            "--websocket-max-frame-size",
            "65536",
            self.application,
        ]
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(command, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        try:
            self._wait_healthy()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _wait_healthy(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"daphne exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"daphne was not healthy within {SERVER_START_TIMEOUT_S:.0f} s:\n{self.log_tail()}")
            time.sleep(0.1)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 10 s."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)

    def log_tail(self, lines: int = 30) -> str:
        """The end of the server log."""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def log_errors(log_path: Path) -> Counter[str]:
    """ERROR records of a server log, by message (timestamp and logger cut off)."""
    if not log_path.exists():
        return Counter()
    lines = log_path.read_text(errors="replace").splitlines()
    return Counter(line.split(" ERROR ", 1)[1] for line in lines if " ERROR " in line)


@dataclass(slots=True)
class Durability:
    """The database against the acks the clients received."""

    acked: int
    stored: int
    missing: int
    unacknowledged: int
    assistant_statuses: dict[str, int]

    @property
    def ok(self) -> bool:
        """Every ack is stored, nothing else is, and every reply is complete."""
        incomplete = sum(count for status, count in self.assistant_statuses.items() if status != "complete")
        return (
            self.missing == 0
            and self.unacknowledged == 0
            and incomplete == 0
            and sum(self.assistant_statuses.values()) == self.stored
        )


def check_durability(connection: Any, acked: set[str]) -> Durability:
    """Compare stored visitor messages with `acked` over a DB-API connection (sqlite3 or psycopg).

    The floor phase's messages (client ids starting with FLOOR_PREFIX, no reply rows) are
    checked on their own by `floor_missing`.
    """
    rows = connection.execute(
        f"SELECT client_id FROM assistant_chatmessage WHERE role = 'user' AND client_id NOT LIKE '{FLOOR_PREFIX}%'"
    ).fetchall()
    stored = {row[0] for row in rows}
    statuses = connection.execute(
        "SELECT status, COUNT(*) FROM assistant_chatmessage WHERE role = 'assistant' GROUP BY status"
    ).fetchall()
    return Durability(
        acked=len(acked),
        stored=len(rows),
        missing=len(acked - stored),
        unacknowledged=len(stored - acked),
        assistant_statuses={status: count for status, count in statuses},
    )


def floor_missing(connection: Any, acked: set[str]) -> int:
    """Floor-phase messages acked but not stored, plus stored but never acked."""
    rows = connection.execute(
        f"SELECT client_id FROM assistant_chatmessage WHERE client_id LIKE '{FLOOR_PREFIX}%'"
    ).fetchall()
    stored = {row[0] for row in rows}
    return len(acked ^ stored) + (len(rows) - len(stored))


class BackendUnavailable(Exception):
    """The backend's services cannot be reached; it is skipped."""


class Backend(Protocol):
    """Where a benchmark run stores its data."""

    key: str
    label: str

    def prepare(self, workdir: Path) -> dict[str, str]:
        """Create a fresh, empty store; return the environment variables that select it."""
        ...

    def durability(self, acked: set[str]) -> Durability:
        """Check the stored messages against the acks."""
        ...

    def floor_durability(self, acked: set[str]) -> int:
        """How many floor-phase messages break durability (see `floor_missing`)."""
        ...

    def settings_note(self) -> str:
        """How durable a commit is with this backend's configuration."""
        ...


class SqliteBackend:
    """A fresh SQLite file; in-memory channel layer and local-memory cache."""

    key, label = "sqlite", "SQLite"

    def __init__(self) -> None:
        self.path: Path | None = None

    def prepare(self, workdir: Path) -> dict[str, str]:
        """A new database file in the run's temp dir."""
        self.path = workdir / "bench.sqlite3"
        return {"SQLITE_PATH": str(self.path)}

    def durability(self, acked: set[str]) -> Durability:
        """Read the file directly."""
        assert self.path is not None
        with contextlib.closing(sqlite3.connect(self.path, timeout=30)) as connection:
            return check_durability(connection, acked)

    def floor_durability(self, acked: set[str]) -> int:
        """Read the file directly."""
        assert self.path is not None
        with contextlib.closing(sqlite3.connect(self.path, timeout=30)) as connection:
            return floor_missing(connection, acked)

    def settings_note(self) -> str:
        """The app opens SQLite in WAL mode with synchronous=NORMAL (project/settings.py)."""
        return "WAL, synchronous=NORMAL"


class PostgresBackend:
    """Database `parley_bench` on the local Postgres; Redis db 14 for the layer and the cache."""

    key, label = "postgres", "Postgres+Redis"

    def prepare(self, workdir: Path) -> dict[str, str]:
        """Drop and create the database, flush the Redis db; BackendUnavailable when unreachable."""
        try:
            import psycopg
            import redis
        except ImportError as exc:
            raise BackendUnavailable(f"{exc.name} is not installed in this environment") from exc
        try:
            with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=3) as admin:
                admin.execute(f"DROP DATABASE IF EXISTS {POSTGRES_DATABASE} WITH (FORCE)")
                admin.execute(f"CREATE DATABASE {POSTGRES_DATABASE}")
        except psycopg.OperationalError as exc:
            raise BackendUnavailable(f"Postgres at {POSTGRES_ADMIN_URL} is unreachable: {exc}") from exc
        try:
            client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3, socket_timeout=3)
            client.flushdb()
            client.close()
        except redis.RedisError as exc:
            raise BackendUnavailable(f"Redis at {REDIS_URL} is unreachable: {exc}") from exc
        return {
            "DATABASE_URL": POSTGRES_URL,
            "REDIS_URL": REDIS_URL,
            "CHANNEL_LAYER_PREFIX": "bench",
            "CACHE_KEY_PREFIX": "bench",
        }

    def durability(self, acked: set[str]) -> Durability:
        """Query the benchmark database."""
        import psycopg

        with psycopg.connect(POSTGRES_URL, connect_timeout=5) as connection:
            return check_durability(connection, acked)

    def floor_durability(self, acked: set[str]) -> int:
        """Query the benchmark database."""
        import psycopg

        with psycopg.connect(POSTGRES_URL, connect_timeout=5) as connection:
            return floor_missing(connection, acked)

    def settings_note(self) -> str:
        """The server's commit durability settings."""
        import psycopg

        with psycopg.connect(POSTGRES_URL, connect_timeout=5) as connection:
            values = [
                f"{name}={connection.execute(f'SHOW {name}').fetchone()[0]}"  # type: ignore[index]
                for name in ("synchronous_commit", "fsync")
            ]
        return ", ".join(values)


# --- one backend ----------------------------------------------------------------------------
@dataclass(slots=True)
class BackendResult:
    """Everything measured on one backend."""

    backend: str
    durability_settings: str
    echo: PhaseResult
    chat: PhaseResult
    stream: PhaseResult
    floor: PhaseResult
    durability: list[Durability]
    floor_broken: int
    server_log: str
    server_errors: dict[str, int]

    @property
    def ratio(self) -> float:
        """Chat turns/s as a share of echo round trips/s."""
        return self.chat.rate / self.echo.rate if self.echo.rate else float("nan")

    @property
    def durable(self) -> bool:
        """Every durability check passed."""
        return all(check.ok for check in self.durability) and self.floor_broken == 0

    @property
    def problems(self) -> int:
        """Protocol problems seen by the clients in any phase."""
        return sum(sum(phase.problems.values()) for phase in (self.echo, self.chat, self.stream, self.floor))


def run_backend(backend: Backend, args: argparse.Namespace) -> BackendResult:
    """Prepare the backend, then run echo and chat on one server and streaming on a second."""
    with tempfile.TemporaryDirectory(prefix="parley-bench-") as tmp:
        workdir = Path(tmp)
        write_knowledge_base(workdir / "knowledge")
        env = base_env(workdir / "knowledge") | backend.prepare(workdir)
        env.update(item.split("=", 1) for item in args.server_env)
        redis_url = env.get("REDIS_URL")
        print(f"[{backend.label}] migrating a fresh database…", flush=True)
        migrate(env)
        log_path = Path(tempfile.gettempdir()) / f"parley-bench-{backend.key}-daphne.log"
        log_path.write_text("")  # kept after the run for inspection
        acked: set[str] = set()
        floor_acked: set[str] = set()
        checks: list[Durability] = []

        def phase(name: str, server: DaphneServer, opener: Callable[[int], Any]) -> PhaseResult:
            print(
                f"[{backend.label}] {name}: {args.clients} clients, {args.warmup:g} s warm-up + {args.seconds:g} s…",
                flush=True,
            )
            result = asyncio.run(
                run_phase(
                    name,
                    opener,
                    clients=args.clients,
                    warmup_s=args.warmup,
                    seconds=args.seconds,
                    probe=Probe(server.pid, redis_url),
                )
            )
            print(
                f"[{backend.label}] {name}: {result.operations} in {result.window_s:.1f} s = "
                f"{result.rate:.0f}/s, p50 {result.p50_ms:.1f} ms, p99 {result.p99_ms:.1f} ms"
                + (f", {sum(result.problems.values())} problems" if result.problems else ""),
                flush=True,
            )
            return result

        with DaphneServer(env | {"LOCAL_CHUNK_WORDS": "0"}, log_path) as server:
            echo = phase("echo", server, lambda i: _open_echo(server.url("/ws/echo/"), i))
            chat = phase(
                "chat (1 chunk)", server, lambda i: ChatClient.open(server.url("/ws/chat/"), f"chat-{i}", acked)
            )
            floor = phase(
                "floor (1 INSERT + 4 frames)",
                server,
                lambda i: _open_floor(server.url("/ws/floor/"), f"{i}", floor_acked),
            )
        checks.append(backend.durability(acked))
        floor_broken = backend.floor_durability(floor_acked)
        with DaphneServer(env | {"LOCAL_CHUNK_WORDS": "1"}, log_path) as server:
            stream = phase(
                "streaming (~100 chunks)",
                server,
                lambda i: ChatClient.open(server.url("/ws/chat/"), f"stream-{i}", acked),
            )
        checks.append(backend.durability(acked))
        return BackendResult(
            backend=backend.label,
            durability_settings=backend.settings_note(),
            echo=echo,
            chat=chat,
            stream=stream,
            floor=floor,
            durability=checks,
            floor_broken=floor_broken,
            server_log=str(log_path),
            server_errors=dict(log_errors(log_path)),
        )


async def _open_echo(url: str, index: int) -> EchoClient:
    return EchoClient(await open_connection(url), index)


async def _open_floor(url: str, label: str, acked: set[str]) -> FloorClient:
    return FloorClient(await open_connection(url), label, acked)


# --- report ---------------------------------------------------------------------------------
def _fmt(value: float | None, digits: int = 0) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:,.{digits}f}"


def report_rows(result: BackendResult) -> dict[str, str]:
    """The table rows for one backend."""
    echo, chat, stream, floor = result.echo, result.chat, result.stream, result.floor
    replies = stream.operations or 1
    return {
        "echo round trips/s": _fmt(echo.rate),
        "echo p50 / p99 (ms)": f"{_fmt(echo.p50_ms, 1)} / {_fmt(echo.p99_ms, 1)}",
        "echo server CPU (ms/round trip)": _fmt(echo.server_cpu_ms_per_op, 3),
        "echo server / client CPU (% of a core)": f"{_fmt(100 * echo.server_cpu_s / echo.window_s)} / "
        f"{_fmt(100 * echo.client_cpu_s / echo.window_s)}",
        "chat turns/s (1-chunk replies)": _fmt(chat.rate),
        "ratio turns/s : echo rt/s": _fmt(result.ratio, 3),
        "ratio by server CPU (echo ms/rt ÷ ms/turn)": _fmt(echo.server_cpu_ms_per_op / chat.server_cpu_ms_per_op, 3),
        "turn p50 / p99 (ms, send→reply.end)": f"{_fmt(chat.p50_ms, 1)} / {_fmt(chat.p99_ms, 1)}",
        "ack p50 (ms, send→ack)": _fmt(chat.ack_p50_ms, 1),
        "chat server CPU (ms/turn)": _fmt(chat.server_cpu_ms_per_op, 2),
        "chat server / client CPU (% of a core)": f"{_fmt(100 * chat.server_cpu_s / chat.window_s)} / "
        f"{_fmt(100 * chat.client_cpu_s / chat.window_s)}",
        "chat Postgres+Redis CPU (ms/turn)": _fmt(chat.services_cpu_ms_per_op, 2),
        "chat Redis commands / turn": _fmt(chat.redis_calls_per_op, 1),
        "floor turns/s (1 INSERT + 4 frames)": _fmt(floor.rate),
        "ratio floor : echo rt/s": _fmt(floor.rate / echo.rate if echo.rate else float("nan"), 3),
        "floor server CPU (ms/turn)": _fmt(floor.server_cpu_ms_per_op, 2),
        "chat turns/s : floor turns/s": _fmt(chat.rate / floor.rate if floor.rate else float("nan"), 2),
        "streaming replies/s": _fmt(stream.rate),
        "streaming delta frames/s": _fmt(stream.deltas / stream.window_s),
        "streaming words (chunks)/s": _fmt(stream.words / stream.window_s),
        "words (chunks) / reply": _fmt(stream.words / replies, 1),
        "delta frames / reply": _fmt(stream.deltas / replies, 2),
        "streaming p50 / p99 (ms)": f"{_fmt(stream.p50_ms, 1)} / {_fmt(stream.p99_ms, 1)}",
        "streaming server CPU (ms/reply)": _fmt(stream.server_cpu_ms_per_op, 2),
        "durability (acked = stored, complete)": (
            ("OK" if result.durable else "FAIL") + f" ({result.durability[-1].stored:,} msgs)"
        ),
        "commit durability": result.durability_settings,
        "client protocol problems": str(result.problems),
        "server log ERROR records": str(sum(result.server_errors.values())),
    }


def print_report(results: dict[str, BackendResult | str], clients: int) -> None:
    """Side-by-side table, details of any failure, and the target check."""
    print(f"\nParley chat throughput — {clients} clients, {os.cpu_count()} CPUs shared by client and server\n")
    columns = {name: report_rows(r) if isinstance(r, BackendResult) else {} for name, r in results.items()}
    labels = next((list(rows) for rows in columns.values() if rows), [])
    width = max((len(label) for label in labels), default=10) + 2
    headers = [r.backend if isinstance(r, BackendResult) else name for name, r in results.items()]
    col = max([24, *(len(value) + 2 for rows in columns.values() for value in rows.values())])
    if labels:
        print("".ljust(width) + "".join(header.rjust(col) for header in headers))
    for label in labels:
        print(label.ljust(width) + "".join(columns[name].get(label, "skipped").rjust(col) for name in results))
    for name, result in results.items():
        if isinstance(result, str):
            print(f"\n{name}: skipped — {result}")
            continue
        for phase in (result.echo, result.chat, result.stream, result.floor):
            for problem, count in phase.problems.items():
                print(f"{result.backend} {phase.name}: {count} × {problem}")
        for message, count in result.server_errors.items():
            print(f"{result.backend} server: {count} × ERROR {message} (see {result.server_log})")
        for check in result.durability:
            if not check.ok:
                print(f"{result.backend}: durability FAIL — {check}")
        if result.floor_broken:
            print(f"{result.backend}: floor durability FAIL — {result.floor_broken} messages acked ≠ stored")
    postgres = results.get("postgres")
    if isinstance(postgres, BackendResult):
        met = postgres.ratio >= TARGET_RATIO and postgres.durable
        print(
            f"\nTarget (Postgres+Redis): turns/s ≥ {TARGET_RATIO} × echo round trips/s with every message durable "
            f"before its ack → ratio {postgres.ratio:.3f}, durability {'OK' if postgres.durable else 'FAIL'}: "
            f"{'MET' if met else 'NOT MET'}"
        )


def add_server_env_option(parser: argparse.ArgumentParser) -> None:
    """`--server-env KEY=VALUE`, shared by the benchmarks: settings experiments without edits."""
    parser.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra environment for migrate and the servers, for experiments (repeatable)",
    )


def check_server_env(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuse a `--server-env` value that is not KEY=VALUE."""
    if any("=" not in item for item in args.server_env):
        parser.error("--server-env takes KEY=VALUE")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=50, help="concurrent websocket clients (default 50)")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured window per phase (default 10)")
    parser.add_argument("--warmup", type=float, default=2.0, help="warm-up before each window (default 2)")
    parser.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--json", type=Path, help="also write the raw results to this file")
    add_server_env_option(parser)
    args = parser.parse_args(argv)
    check_server_env(parser, args)
    if not 1 <= args.clients <= 1000 or not 0 < args.seconds <= 600 or not 0 <= args.warmup <= 60:
        parser.error("expected 1 ≤ clients ≤ 1000, 0 < seconds ≤ 600, 0 ≤ warmup ≤ 60")
    return args


@contextlib.contextmanager
def _timed(label: str) -> Iterator[None]:
    started = time.monotonic()
    yield
    print(f"{label} took {time.monotonic() - started:.0f} s", flush=True)


def main(argv: list[str] | None = None) -> int:
    """Run the selected backends and print the report."""
    args = parse_args(argv)
    backends: list[Backend] = []
    if args.backend in {"sqlite", "both"}:
        backends.append(SqliteBackend())
    if args.backend in {"postgres", "both"}:
        backends.append(PostgresBackend())
    results: dict[str, BackendResult | str] = {}
    with _timed("benchmark"):
        for backend in backends:
            try:
                results[backend.key] = run_backend(backend, args)
            except BackendUnavailable as exc:
                print(f"[{backend.label}] skipped: {exc}", flush=True)
                results[backend.key] = str(exc)
    print_report(results, args.clients)
    if args.json:
        raw = {
            key: asdict(value) if isinstance(value, BackendResult) else {"skipped": value}
            for key, value in results.items()
        }
        args.json.write_text(json.dumps(raw, indent=2))
    measured = [result for result in results.values() if isinstance(result, BackendResult)]
    return 0 if all(result.durable and result.problems == 0 for result in measured) else 1


if __name__ == "__main__":
    sys.exit(main())
