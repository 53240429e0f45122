"""API turn throughput: blocking `POST /api/v1/conversations/{id}/messages/` beside the websocket's turns.

Usage (from the project root)::

    .venv/bin/python bench/api_turns.py [--clients 20] [--seconds 30] [--warmup 3]
                                        [--backend sqlite|postgres|both] [--no-stream]
                                        [--json out.json] [--server-env KEY=VALUE ...]

One `manage.py serve` process per backend (DEBUG off, the local assistant at 0 ms per chunk and
one chunk per reply, rate limits raised out of the way, the benchmark knowledge base of
`bench.harness` whose one matching section answers with ~100 words). One client process runs the
same number of concurrent clients through each phase, each a warm-up then a measured window:

1. websocket  - `/ws/chat/`: `message` → `ack`, `reply.start`, `reply.delta`, `reply.end` (the
                baseline: `chat_throughput.py`'s durable turn).
2. api        - each client its own conversation (`POST /api/v1/conversations/`), then blocking
                `POST …/messages/` over one keep-alive HTTP/1.1 connection: the 201 arrives once
                the reply is stored. Latency is send → the whole response. With
                --turns-per-conversation N a client starts a new conversation every N turns (a
                turn of a conversation the server has no connection to reloads its analytics
                numbers, every row of it, unless the API's presence lingers: one process only).
3. api-sse    - the same with `Accept: text/event-stream`, read to the end of the stream
                (skipped with --no-stream).

After the phases the database is checked: the visitor messages stored are exactly those the
clients got an `ack` or a 201 for, and every assistant reply is `complete`. Figures are printed
side by side; absolute rates depend on the host (client and server share it): compare the rows.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as `python bench/api_turns.py`: make `bench` importable
    sys.path.insert(0, str(ROOT))

from bench.harness import (  # noqa: E402
    HUGE,
    PYTHON,
    QUESTION,
    TURN_TIMEOUT_S,
    Backend,
    BackendUnavailable,
    ChatClient,
    Durability,
    PhaseResult,
    PostgresBackend,
    Probe,
    ProtocolProblem,
    Sample,
    Snapshot,
    SqliteBackend,
    add_server_env_option,
    base_env,
    check_server_env,
    fmt,
    free_port,
    log_errors,
    migrate,
    percentile,
    summarise,
    timed,
    write_knowledge_base,
)

SERVER_START_TIMEOUT_S = 60.0


# --- the server -----------------------------------------------------------------------------------
class ServeServer:
    """`manage.py serve` on a free loopback port (the production entry point), its log in a file."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env, self.log_path, self.port = env, log_path, free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        """The server's process id."""
        assert self.process is not None
        return self.process.pid

    def __enter__(self) -> ServeServer:
        command = [str(PYTHON), "manage.py", "serve", "--host", "127.0.0.1", "--port", str(self.port)]
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(command, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited with {self.process.returncode}; see {self.log_path}")
            healthz = f"http://127.0.0.1:{self.port}/healthz"
            with contextlib.suppress(OSError), urllib.request.urlopen(healthz, timeout=2) as response:
                if response.status == 200:
                    return self
            if time.monotonic() > deadline:
                self.__exit__()
                raise RuntimeError(f"the server was not healthy within {SERVER_START_TIMEOUT_S:.0f} s")
            time.sleep(0.2)

    def __exit__(self, *exc_info: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


# --- a minimal HTTP/1.1 keep-alive client ----------------------------------------------------------
class HttpConnection:
    """One keep-alive connection: requests one at a time, Content-Length or chunked bodies."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, port: int) -> None:
        self.reader, self.writer, self.port = reader, writer, port

    @classmethod
    async def open(cls, port: int) -> HttpConnection:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer, port)

    async def send(self, method: str, path: str, body: dict[str, Any] | None, headers: dict[str, str]) -> None:
        """Write one request."""
        payload = json.dumps(body).encode() if body is not None else b""
        lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{self.port}", f"Content-Length: {len(payload)}"]
        if body is not None:
            lines.append("Content-Type: application/json")
        lines += [f"{name}: {value}" for name, value in headers.items()]
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + payload)
        await self.writer.drain()

    async def head(self) -> tuple[int, dict[str, str]]:
        """The status and headers of the response."""
        status_line = await self.reader.readline()
        if not status_line:
            raise ConnectionError("the server closed the connection")
        status = int(status_line.split()[1])
        headers: dict[str, str] = {}
        while (line := await self.reader.readline()) not in (b"\r\n", b"\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        return status, headers

    async def chunks(self, headers: dict[str, str]) -> Any:
        """The body, piece by piece (as the server flushed it, for chunked bodies)."""
        if "content-length" in headers:
            yield await self.reader.readexactly(int(headers["content-length"]))
            return
        if headers.get("transfer-encoding", "").lower() != "chunked":
            raise ProtocolProblem("a body without Content-Length on a keep-alive connection")
        while True:
            size = int((await self.reader.readline()).split(b";")[0], 16)
            if size == 0:
                await self.reader.readline()
                return
            data = await self.reader.readexactly(size)
            await self.reader.readline()
            yield data

    async def request(
        self, method: str, path: str, body: dict[str, Any] | None, headers: dict[str, str]
    ) -> tuple[int, bytes]:
        """One whole request and response."""
        await self.send(method, path, body, headers)
        status, response_headers = await self.head()
        data = b"".join([chunk async for chunk in self.chunks(response_headers)])
        return status, data

    async def close(self) -> None:
        """Close the connection (`run_phase` closes every client's)."""
        self.writer.close()
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()


class ApiClient:
    """One visitor on the REST API: its own conversation, blocking (or streamed) turns back to back."""

    def __init__(self, connection: HttpConnection, label: str, acked: set[str], *, stream: bool, length: int) -> None:
        self.connection = connection
        self.path = ""
        self.headers: dict[str, str] = {}
        self.label, self.acked, self.stream, self.length, self.turns = label, acked, stream, length, 0

    @classmethod
    async def open(cls, port: int, label: str, acked: set[str], *, stream: bool, length: int = 0) -> ApiClient:
        """Connect and start a conversation (a new one every `length` turns; 0: one for the whole phase)."""
        client = cls(await HttpConnection.open(port), label, acked, stream=stream, length=length)
        async with asyncio.timeout(TURN_TIMEOUT_S):
            await client.start_conversation()
        return client

    async def start_conversation(self) -> None:
        """`POST /api/v1/conversations/`: its token for the turns that follow."""
        status, body = await self.connection.request("POST", "/api/v1/conversations/", {}, {})
        if status != 201:
            raise ProtocolProblem(f"POST /conversations/ answered {status}: {body[:200]!r}")
        data = json.loads(body)
        self.path = f"/api/v1/conversations/{data['id']}/messages/"
        self.headers = {"Authorization": f"Bearer {data['token']}"}
        if self.stream:
            self.headers["Accept"] = "text/event-stream"

    async def step(self) -> Sample:
        """One turn: send the message; the whole answer (or stream) back (after a new conversation, if due)."""
        sample = Sample(sent=time.monotonic(), done=0.0)
        async with asyncio.timeout(TURN_TIMEOUT_S):
            if self.length and self.turns and self.turns % self.length == 0:
                await self.start_conversation()
            self.turns += 1
            client_id = f"{self.label}-{self.turns}-{uuid.uuid4().hex[:12]}"
            if self.stream:
                await self._streamed(client_id, sample)
            else:
                status, body = await self.connection.request(
                    "POST", self.path, {"text": QUESTION, "client_id": client_id}, self.headers
                )
                if status != 201:
                    raise ProtocolProblem(f"POST …/messages/ answered {status}: {body[:200]!r}")
                turn = json.loads(body)
                if turn["ai_message"]["status"] != "complete" or turn["user_message"]["client_id"] != client_id:
                    raise ProtocolProblem(f"turn not complete: {turn['ai_message']['status']!r}")
                self.acked.add(client_id)
                sample.words = len(turn["ai_message"]["text"].split())
                sample.deltas = 1
        sample.done = time.monotonic()
        return sample

    async def _streamed(self, client_id: str, sample: Sample) -> None:
        await self.connection.send("POST", self.path, {"text": QUESTION, "client_id": client_id}, self.headers)
        status, headers = await self.connection.head()
        if status != 200:
            body = b"".join([chunk async for chunk in self.connection.chunks(headers)])
            raise ProtocolProblem(f"streamed POST answered {status}: {body[:200]!r}")
        buffer, names, text = b"", [], []
        async for chunk in self.connection.chunks(headers):
            buffer += chunk
            while b"\n\n" in buffer:
                block, buffer = buffer.split(b"\n\n", 1)
                lines = block.decode().split("\n")
                if lines[0].startswith(":"):
                    continue
                name, data = lines[0][7:], json.loads(lines[1][6:])
                names.append(name)
                if name == "ack":
                    sample.acked = time.monotonic()
                    self.acked.add(client_id)
                elif name == "reply.delta":
                    sample.deltas += 1
                    text.append(data["text"])
                elif name == "reply.end" and data["status"] != "complete":
                    raise ProtocolProblem(f"reply.end status {data['status']!r}")
        if names[:2] != ["ack", "reply.start"] or names[-1] != "reply.end":
            raise ProtocolProblem(f"stream events {names}")
        sample.words = len("".join(text).split())


# --- phases -------------------------------------------------------------------------------------
@dataclass(slots=True)
class Phase:
    """A phase's figures, with the p95 `PhaseResult` does not keep."""

    result: PhaseResult
    p95_ms: float


async def _client_loop(client: Any, stop_at: float, samples: list[Sample], problems: Counter[str]) -> None:
    while time.monotonic() < stop_at:
        try:
            samples.append(await client.step())
        except Exception as exc:  # a protocol problem, a timeout or a dropped connection: recorded
            problems[f"{type(exc).__name__}: {exc}"] += 1
            return


async def run_phase(
    name: str, opener: Callable[[int], Any], *, clients: int, warmup_s: float, seconds: float, probe: Probe
) -> Phase:
    """Open `clients` clients, run them back to back, measure the window after the warm-up."""
    problems: Counter[str] = Counter()
    samples: list[Sample] = []
    async with asyncio.timeout(60):
        opened = list(await asyncio.gather(*(opener(i) for i in range(clients))))
    try:
        begin = time.monotonic()
        start_at, end_at = begin + warmup_s, begin + warmup_s + seconds
        loops = asyncio.gather(*(_client_loop(client, end_at, samples, problems) for client in opened))
        await asyncio.sleep(max(0.0, start_at - time.monotonic()))
        start: Snapshot = probe.snapshot()
        await asyncio.sleep(max(0.0, end_at - time.monotonic()))
        end: Snapshot = probe.snapshot()
        try:
            async with asyncio.timeout(TURN_TIMEOUT_S + 5):
                await loops
        except TimeoutError:
            problems["phase deadline passed: clients still waiting were cancelled"] += 1
    finally:
        await asyncio.gather(*(client.connection.close() for client in opened), return_exceptions=True)
    result = summarise(name, clients, samples, start, end, problems)
    inside = [1000 * (s.done - s.sent) for s in samples if start.at <= s.done <= end.at]
    return Phase(result=result, p95_ms=percentile(inside, 0.95) if inside else float("nan"))


# --- one backend ----------------------------------------------------------------------------------
@dataclass(slots=True)
class BackendResult:
    """Everything measured on one backend."""

    backend: str
    phases: dict[str, Phase]
    durability: Durability
    server_log: str
    server_errors: dict[str, int]

    @property
    def problems(self) -> int:
        """Protocol problems seen by the clients in any phase."""
        return sum(sum(phase.result.problems.values()) for phase in self.phases.values())


def server_env(knowledge: Path) -> dict[str, str]:
    """`bench.harness.base_env`, the API's limits out of the way too, one chunk per reply."""
    env = base_env(knowledge)
    env.update(API_REQUESTS_PER_IP_PER_MINUTE=HUGE, API_MAX_TURNS_IN_FLIGHT="100000", LOCAL_CHUNK_WORDS="0")
    return env


def run_backend(backend: Backend, args: argparse.Namespace) -> BackendResult:
    """Prepare the backend, then run the phases against one `manage.py serve`."""
    with tempfile.TemporaryDirectory(prefix="parley-bench-api-") as tmp:
        workdir = Path(tmp)
        write_knowledge_base(workdir / "knowledge")
        env = server_env(workdir / "knowledge") | backend.prepare(workdir)
        env.update(item.split("=", 1) for item in args.server_env)
        print(f"[{backend.label}] migrating a fresh database…", flush=True)
        migrate(env)
        log_path = Path(tempfile.gettempdir()) / f"parley-bench-api-{backend.key}.log"
        log_path.write_text("")
        acked: set[str] = set()
        phases: dict[str, Phase] = {}
        length = args.turns_per_conversation
        with ServeServer(env, log_path) as server:
            probe = Probe(server.pid, env.get("REDIS_URL"))
            ws_url = f"ws://127.0.0.1:{server.port}/ws/chat/"
            openers: dict[str, Callable[[int], Any]] = {
                "websocket": lambda i: ChatClient.open(ws_url, f"ws-{i}", acked),
                "api": lambda i: ApiClient.open(server.port, f"api-{i}", acked, stream=False, length=length),
            }
            if args.stream:
                openers["api-sse"] = lambda i: ApiClient.open(
                    server.port, f"sse-{i}", acked, stream=True, length=length
                )
            for name, opener in openers.items():
                print(
                    f"[{backend.label}] {name}: {args.clients} clients, {args.warmup:g} s + {args.seconds:g} s…",
                    flush=True,
                )
                phase = asyncio.run(
                    run_phase(
                        name, opener, clients=args.clients, warmup_s=args.warmup, seconds=args.seconds, probe=probe
                    )
                )
                phases[name] = phase
                result = phase.result
                print(
                    f"[{backend.label}] {name}: {result.operations} turns in {result.window_s:.1f} s = "
                    f"{result.rate:.0f}/s, p50 {result.p50_ms:.1f} ms, p95 {phase.p95_ms:.1f} ms"
                    + (f", {sum(result.problems.values())} problems" if result.problems else ""),
                    flush=True,
                )
        return BackendResult(
            backend=backend.label,
            phases=phases,
            durability=backend.durability(acked),
            server_log=str(log_path),
            server_errors=dict(log_errors(log_path)),
        )


# --- report ---------------------------------------------------------------------------------------
def print_report(results: dict[str, BackendResult | str], args: argparse.Namespace) -> None:
    """One table per backend: each phase's turns/s, latency and server CPU, and the API : websocket ratio."""
    print(
        f"\nParley API turns — {args.clients} clients, {args.seconds:g} s windows, {os.cpu_count()} CPUs shared "
        "by client and server\n"
    )
    for key, result in results.items():
        if isinstance(result, str):
            print(f"{key}: skipped — {result}\n")
            continue
        print(f"{result.backend}")
        header = (
            f"{'phase':<12}{'turns/s':>10}{'p50 ms':>10}{'p95 ms':>10}{'p99 ms':>10}{'CPU ms/turn':>13}{'vs ws':>8}"
        )
        print(header)
        baseline = result.phases["websocket"].result.rate
        for name, phase in result.phases.items():
            r = phase.result
            ratio = r.rate / baseline if baseline else float("nan")
            print(
                f"{name:<12}{fmt(r.rate):>10}{fmt(r.p50_ms, 1):>10}{fmt(phase.p95_ms, 1):>10}{fmt(r.p99_ms, 1):>10}"
                f"{fmt(r.server_cpu_ms_per_op, 2):>13}{fmt(ratio, 2):>8}"
            )
        durability = result.durability
        print(
            f"durability (acked = stored, complete): {'OK' if durability.ok else 'FAIL'} ({durability.stored:,} "
            f"visitor messages); client problems: {result.problems}; server ERROR records: "
            f"{sum(result.server_errors.values())}\n"
        )
        for phase in result.phases.values():
            for problem, count in phase.result.problems.items():
                print(f"  {phase.result.name}: {count} × {problem}")
        for message, count in result.server_errors.items():
            print(f"  server: {count} × ERROR {message} (see {result.server_log})")
        if not durability.ok:
            print(f"  durability FAIL — {durability}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=20, help="concurrent clients per phase (default 20)")
    parser.add_argument("--seconds", type=float, default=30.0, help="measured window per phase (default 30)")
    parser.add_argument("--warmup", type=float, default=3.0, help="warm-up before each window (default 3)")
    parser.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="sqlite")
    parser.add_argument("--no-stream", dest="stream", action="store_false", help="skip the event-stream phase")
    parser.add_argument(
        "--turns-per-conversation",
        type=int,
        default=0,
        help="API clients start a new conversation every N turns (default 0: one per client, as the websocket's)",
    )
    parser.add_argument("--json", type=Path, help="also write the raw results to this file")
    add_server_env_option(parser)
    args = parser.parse_args(argv)
    check_server_env(parser, args)
    if not 1 <= args.clients <= 500 or not 0 < args.seconds <= 600 or not 0 <= args.warmup <= 60:
        parser.error("expected 1 ≤ clients ≤ 500, 0 < seconds ≤ 600, 0 ≤ warmup ≤ 60")
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
    print_report(results, args)
    if args.json:
        raw = {
            key: asdict(value) if isinstance(value, BackendResult) else {"skipped": value}
            for key, value in results.items()
        }
        args.json.write_text(json.dumps(raw, indent=2, default=str))
    measured = [result for result in results.values() if isinstance(result, BackendResult)]
    return 0 if all(result.durability.ok and result.problems == 0 for result in measured) else 1


if __name__ == "__main__":
    sys.exit(main())
