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
import json
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as `python bench/chat_throughput.py`: make `bench` importable
    sys.path.insert(0, str(ROOT))

from websockets.asyncio.client import ClientConnection  # noqa: E402

from bench.harness import (  # noqa: E402
    FLOOR_PREFIX,
    QUESTION,
    TURN_TIMEOUT_S,
    Backend,
    BackendUnavailable,
    ChatClient,
    DaphneServer,
    Durability,
    PhaseResult,
    PostgresBackend,
    Probe,
    ProtocolProblem,
    Sample,
    SqliteBackend,
    add_server_env_option,
    base_env,
    check_server_env,
    fmt,
    log_errors,
    migrate,
    open_connection,
    receive_json,
    run_phase,
    timed,
    write_knowledge_base,
)

TARGET_RATIO = 0.25  # Postgres+Redis turns/s must be at least this share of echo round trips/s


# --- clients of the echo and floor phases ---------------------------------------------------
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


# --- durability of the floor phase ----------------------------------------------------------
def floor_missing(connection: Any, acked: set[str]) -> int:
    """Floor-phase messages acked but not stored, plus stored but never acked."""
    rows = connection.execute(
        f"SELECT client_id FROM assistant_chatmessage WHERE client_id LIKE '{FLOOR_PREFIX}%'"
    ).fetchall()
    stored = {row[0] for row in rows}
    return len(acked ^ stored) + (len(rows) - len(stored))


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
        with backend.connect() as connection:
            floor_broken = floor_missing(connection, floor_acked)
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
def report_rows(result: BackendResult) -> dict[str, str]:
    """The table rows for one backend."""
    echo, chat, stream, floor = result.echo, result.chat, result.stream, result.floor
    replies = stream.operations or 1
    return {
        "echo round trips/s": fmt(echo.rate),
        "echo p50 / p99 (ms)": f"{fmt(echo.p50_ms, 1)} / {fmt(echo.p99_ms, 1)}",
        "echo server CPU (ms/round trip)": fmt(echo.server_cpu_ms_per_op, 3),
        "echo server / client CPU (% of a core)": f"{fmt(100 * echo.server_cpu_s / echo.window_s)} / "
        f"{fmt(100 * echo.client_cpu_s / echo.window_s)}",
        "chat turns/s (1-chunk replies)": fmt(chat.rate),
        "ratio turns/s : echo rt/s": fmt(result.ratio, 3),
        "ratio by server CPU (echo ms/rt ÷ ms/turn)": fmt(echo.server_cpu_ms_per_op / chat.server_cpu_ms_per_op, 3),
        "turn p50 / p99 (ms, send→reply.end)": f"{fmt(chat.p50_ms, 1)} / {fmt(chat.p99_ms, 1)}",
        "ack p50 (ms, send→ack)": fmt(chat.ack_p50_ms, 1),
        "chat server CPU (ms/turn)": fmt(chat.server_cpu_ms_per_op, 2),
        "chat server / client CPU (% of a core)": f"{fmt(100 * chat.server_cpu_s / chat.window_s)} / "
        f"{fmt(100 * chat.client_cpu_s / chat.window_s)}",
        "chat Postgres+Redis CPU (ms/turn)": fmt(chat.services_cpu_ms_per_op, 2),
        "chat Redis commands / turn": fmt(chat.redis_calls_per_op, 1),
        "floor turns/s (1 INSERT + 4 frames)": fmt(floor.rate),
        "ratio floor : echo rt/s": fmt(floor.rate / echo.rate if echo.rate else float("nan"), 3),
        "floor server CPU (ms/turn)": fmt(floor.server_cpu_ms_per_op, 2),
        "chat turns/s : floor turns/s": fmt(chat.rate / floor.rate if floor.rate else float("nan"), 2),
        "streaming replies/s": fmt(stream.rate),
        "streaming delta frames/s": fmt(stream.deltas / stream.window_s),
        "streaming words (chunks)/s": fmt(stream.words / stream.window_s),
        "words (chunks) / reply": fmt(stream.words / replies, 1),
        "delta frames / reply": fmt(stream.deltas / replies, 2),
        "streaming p50 / p99 (ms)": f"{fmt(stream.p50_ms, 1)} / {fmt(stream.p99_ms, 1)}",
        "streaming server CPU (ms/reply)": fmt(stream.server_cpu_ms_per_op, 2),
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


def main(argv: list[str] | None = None) -> int:
    """Run the selected backends and print the report."""
    args = parse_args(argv)
    backends: list[Backend] = []
    if args.backend in {"sqlite", "both"}:
        backends.append(SqliteBackend())
    if args.backend in {"postgres", "both"}:
        backends.append(PostgresBackend())
    results: dict[str, BackendResult | str] = {}
    with timed("benchmark"):
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
