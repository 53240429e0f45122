"""Shared machinery of the benchmarks: servers, databases, clients, measurements, options.

Every benchmark (`chat_throughput.py`, `provider_overhead.py`, `analytics_scale.py`,
`dashboard_scale.py`, `abuse.py`) drives daphne processes from a client process on the same
machine; this is what they have in common:

- the benchmark knowledge base, whose one matching section answers QUESTION with REPLY_WORDS words;
- CPU readings from /proc (the server, Postgres + Redis, this client) around measured windows;
- websocket clients: a chat visitor that asks QUESTION again and again, checking the frame
  order, and `run_phase`, which runs N of them back to back and measures a window after a warm-up;
- the server: `base_env` (rate limits out of the way), `migrate`, `DaphneServer`, `log_errors`;
- the backends: a fresh SQLite file, or database `parley_bench` on the local Postgres with
  Redis db 14 (`BackendUnavailable` when unreachable), and the durability check of stored
  messages against the acks the clients received;
- the report helpers and the `--server-env KEY=VALUE` option.

Each benchmark script is run as `python bench/<name>.py`; they import this as `bench.harness`.
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
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
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

REPLY_WORDS = 100  # words in the composed answer of the benchmark section
QUESTION = "Tell me about the zephyr quokka throughput benchmark"
TURN_TIMEOUT_S = 30.0  # one round trip or turn; a hang fails the client instead of the run
SERVER_START_TIMEOUT_S = 30.0
CONNECT_TIMEOUT_S = 30.0  # opening all the clients of a phase
CLK_TCK = os.sysconf("SC_CLK_TCK")
HUGE = "100000000"
FLOOR_PREFIX = "floor-"  # client ids of chat_throughput's floor phase, checked apart from the chat turns


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
        # New conversations per address (100 an hour by default): the benchmarks open thousands.
        CHAT_SESSIONS_PER_IP_PER_HOUR=HUGE,
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
    checked on their own by `chat_throughput.floor_missing`.
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


class BackendUnavailable(Exception):
    """The backend's services cannot be reached; it is skipped."""


class Backend(Protocol):
    """Where a benchmark run stores its data."""

    key: str
    label: str

    def prepare(self, workdir: Path) -> dict[str, str]:
        """Create a fresh, empty store; return the environment variables that select it."""
        ...

    def connect(self) -> contextlib.AbstractContextManager[Any]:
        """A DB-API connection to the store (sqlite3 or psycopg), closed on exit."""
        ...

    def durability(self, acked: set[str]) -> Durability:
        """Check the stored messages against the acks."""
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

    def connect(self) -> contextlib.AbstractContextManager[Any]:
        """The file, read directly."""
        assert self.path is not None
        return contextlib.closing(sqlite3.connect(self.path, timeout=30))

    def durability(self, acked: set[str]) -> Durability:
        """Read the file directly."""
        with self.connect() as connection:
            return check_durability(connection, acked)

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

    def connect(self) -> contextlib.AbstractContextManager[Any]:
        """A connection to the benchmark database."""
        import psycopg

        return psycopg.connect(POSTGRES_URL, connect_timeout=5)

    def durability(self, acked: set[str]) -> Durability:
        """Query the benchmark database."""
        with self.connect() as connection:
            return check_durability(connection, acked)

    def settings_note(self) -> str:
        """The server's commit durability settings."""
        with self.connect() as connection:
            values = [
                f"{name}={connection.execute(f'SHOW {name}').fetchone()[0]}" for name in ("synchronous_commit", "fsync")
            ]
        return ", ".join(values)


# --- options and report helpers -------------------------------------------------------------
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


def fmt(value: float | None, digits: int = 0) -> str:
    """A figure for a report table: thousands separated, "-" when missing."""
    return "-" if value is None or math.isnan(value) else f"{value:,.{digits}f}"


@contextlib.contextmanager
def timed(label: str) -> Iterator[None]:
    """Print how long the block took."""
    started = time.monotonic()
    yield
    print(f"{label} took {time.monotonic() - started:.0f} s", flush=True)
