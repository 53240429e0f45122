"""Webhook benchmark: deliveries/s to a local receiver, and the chat's turns/s with delivery on vs off.

Usage (from the project root)::

    .venv/bin/python bench/webhooks.py [--backend sqlite|postgres|both] [--clients 20] [--seconds 8]
                                       [--warmup 2] [--pairs 3] [--events 3000] [--json out.json]
                                       [--server-env KEY=VALUE ...]

A real `manage.py serve` process (DEBUG off, the offline assistant at 0 ms per chunk, rate limits
out of the way; `serve` because it is what starts the dispatcher) and a receiver in its own
process (asyncio HTTP/1.1 on loopback, keep-alive, answering 200 and checking every signature
with `standardwebhooks`). Two phases per backend:

1. deliveries  - N events are written to the outbox while no server runs (one endpoint wanting
                 every type); a server starts and its dispatcher delivers them all. Measured:
                 deliveries/s from the receiver's first to its last request, unordered (no
                 conversation) and ordered (100 conversations: each conversation's events go
                 one after the other).
2. chat A/B    - the chat benchmark's visitors (bench/chat_throughput.py's `ChatClient`: message,
                 ack, reply.start, one reply.delta, reply.end) on one server, in paired windows
                 alternating (off, on), (on, off)...: "off" with the endpoint switched off (the
                 chat writes nothing for webhooks), "on" with it active for every event type and
                 the receiver answering 200 (four deliveries per turn, sent by the same server
                 process). Between windows the outbox drains. Measured: turns/s and server CPU
                 per turn, and the cost of delivery on = 1 - on/off, per pair then averaged.

Exit status: 0 when every delivery arrived once with a valid signature, 1 otherwise (the 3 %
target is reported, not enforced). Figures are in docs/benchmarks.md ("The REST API, webhooks and alerts").
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as `python bench/webhooks.py`: make `bench` importable
    sys.path.insert(0, str(ROOT))

from bench.harness import (  # noqa: E402
    PYTHON,
    Backend,
    BackendUnavailable,
    ChatClient,
    DaphneServer,
    PostgresBackend,
    Probe,
    SqliteBackend,
    add_server_env_option,
    base_env,
    check_server_env,
    fmt,
    free_port,
    log_errors,
    migrate,
    run_phase,
    write_knowledge_base,
)

SECRET = "whsec_" + base64.b64encode(b"parley-webhook-benchmark-secret!").decode()
CONVERSATIONS = 100  # of the ordered deliveries phase


# --- the receiver (its own process) ------------------------------------------------------------
class ReceiverStats:
    """What the receiver counted."""

    def __init__(self) -> None:
        self.requests = 0
        self.ids: set[str] = set()
        self.bad = 0
        self.first_at: float | None = None
        self.last_at: float | None = None
        self.by_type: dict[str, int] = {}

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "unique": len(self.ids),
            "bad_signatures": self.bad,
            "first_at": self.first_at,
            "last_at": self.last_at,
            "by_type": self.by_type,
        }


def receive(port: int) -> None:
    """Serve POSTs on `port` (200, signature checked) and `GET /stats`; `DELETE /stats` resets."""
    from standardwebhooks import Webhook, WebhookVerificationError

    verifier = Webhook(SECRET)
    stats = ReceiverStats()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal stats
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, _path = lines[0].split(" ")[:2]
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        key, value = line.split(":", 1)
                        headers[key.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                reply = b""
                if method == "POST":
                    now = time.time()
                    stats.requests += 1
                    stats.first_at = stats.first_at or now
                    stats.last_at = now
                    try:
                        payload = verifier.verify(body, headers)
                        stats.ids.add(headers["webhook-id"])
                        stats.by_type[payload["type"]] = stats.by_type.get(payload["type"], 0) + 1
                    except WebhookVerificationError:
                        stats.bad += 1
                elif method == "GET":
                    reply = json.dumps(stats.as_dict()).encode()
                elif method == "DELETE":
                    stats = ReceiverStats()
                writer.write(
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
                    + str(len(reply)).encode()
                    + b"\r\n\r\n"
                    + reply
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=512)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


class Receiver:
    """The receiver process, seen from the benchmark."""

    def __init__(self) -> None:
        self.port = free_port()
        self.process = subprocess.Popen([str(PYTHON), __file__, "receive", "--port", str(self.port)], cwd=ROOT)
        deadline = time.monotonic() + 10
        while True:
            try:
                self.stats()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def _call(self, method: str) -> dict[str, Any]:
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}/stats", method=method)
        with urllib.request.urlopen(request, timeout=5) as response:
            body = response.read()
        return json.loads(body) if body else {}

    def stats(self) -> dict[str, Any]:
        return self._call("GET")

    def reset(self) -> None:
        self._call("DELETE")

    def cpu_seconds(self) -> float:
        from bench.harness import process_cpu_seconds

        return process_cpu_seconds(self.process.pid)

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(5)


# --- the server: `manage.py serve` (it starts the dispatcher) ---------------------------------------
class ServeServer(DaphneServer):
    """`manage.py serve` on a free port (the harness's `DaphneServer` runs plain daphne)."""

    def __enter__(self) -> ServeServer:
        command = [str(PYTHON), "manage.py", "serve", "--host", "127.0.0.1", "--port", str(self.port)]
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(command, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        try:
            self._wait_healthy()
        except BaseException:
            self.stop()
            raise
        return self


def django_script(env: dict[str, str], code: str) -> str:
    """Run `code` in a Django process on the benchmark's database; its stdout."""
    prelude = "import django, os; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'project.settings'); django.setup()\n"
    done = subprocess.run(
        [str(PYTHON), "-c", prelude + code], cwd=ROOT, env=env, check=True, timeout=600, capture_output=True, text=True
    )
    return done.stdout


def fill_outbox(env: dict[str, str], events: int, *, conversations: int) -> None:
    """Write `events` webhook events (in transactions of 500), round-robin over `conversations` (0: none)."""
    django_script(
        env,
        f"""
from django.db import transaction
from webhooks import services
for start in range(0, {events}, 500):
    with transaction.atomic():
        for n in range(start, min(start + 500, {events})):
            conversation = f"bench-{{n % {conversations}}}" if {conversations} else None
            services.emit("alert.fired", {{"n": n, "text": "x" * 200}}, conversation_id=conversation)
""",
    )


def outbox_counts(backend: Backend) -> dict[str, int]:
    with backend.connect() as connection:
        rows = connection.execute("SELECT state, COUNT(*) FROM webhooks_webhookdelivery GROUP BY state").fetchall()
    return {state: count for state, count in rows}


def set_endpoint_active(backend: Backend, active: bool) -> None:
    """Switch the benchmark's endpoint on or off, as the admin would (the server sees it within its TTL)."""
    value = ("1" if active else "0") if isinstance(backend, SqliteBackend) else "true" if active else "false"
    with backend.connect() as connection:
        connection.execute(f"UPDATE webhooks_webhookendpoint SET active = {value}")
        connection.commit()


def wait_drained(backend: Backend, timeout: float = 120.0) -> float:
    """Wait until no delivery is pending; how long it took."""
    started = time.monotonic()
    while outbox_counts(backend).get("pending", 0):
        if time.monotonic() - started > timeout:
            raise RuntimeError("the outbox did not drain")
        time.sleep(0.1)
    return time.monotonic() - started


# --- results ------------------------------------------------------------------------------------
@dataclass(slots=True)
class Deliveries:
    """One deliveries phase."""

    name: str
    events: int
    received: int
    unique: int
    bad_signatures: int
    seconds: float
    server_cpu_s: float
    receiver_cpu_s: float

    @property
    def rate(self) -> float:
        return self.received / self.seconds if self.seconds else float("nan")

    @property
    def ok(self) -> bool:
        return self.received == self.unique == self.events and self.bad_signatures == 0


@dataclass(slots=True)
class Window:
    """One chat window of the A/B phase."""

    mode: str  # off | on
    turns: int
    rate: float
    p50_ms: float
    p99_ms: float
    server_cpu_ms_per_turn: float
    deliveries: int
    delivered_in_window: int
    drained_after_s: float
    problems: int


@dataclass(slots=True)
class BackendResult:
    backend: str
    deliveries: list[Deliveries]
    windows: list[Window] = field(default_factory=list)
    server_errors: dict[str, int] = field(default_factory=dict)

    def pairs(self, mode: str = "on") -> list[tuple[Window, Window]]:
        """(off, `mode`) windows, in the order they ran."""
        offs = [w for w in self.windows if w.mode == "off"]
        others = [w for w in self.windows if w.mode == mode]
        return list(zip(offs, others, strict=False))

    def cost(self, mode: str = "on") -> float:
        """1 - mode/off turns/s, per pair, averaged."""
        ratios = [other.rate / off.rate for off, other in self.pairs(mode) if off.rate]
        return 1 - statistics.mean(ratios) if ratios else float("nan")

    def cpu_cost(self, mode: str = "on") -> float:
        """Extra server CPU per turn of `mode` over off, per pair, averaged."""
        ratios = [other.server_cpu_ms_per_turn / off.server_cpu_ms_per_turn for off, other in self.pairs(mode)]
        return statistics.mean(ratios) - 1 if ratios else float("nan")


# --- phases -------------------------------------------------------------------------------------
def deliveries_phase(
    backend: Backend, env: dict[str, str], log_path: Path, receiver: Receiver, *, events: int, conversations: int
) -> Deliveries:
    name = f"{events} events, " + (f"{conversations} conversations (ordered)" if conversations else "unordered")
    print(f"[{backend.label}] deliveries: {name}…", flush=True)
    django_script(
        env,
        "from webhooks.models import WebhookDelivery, WebhookAttempt\n"
        "WebhookAttempt.objects.all().delete(); WebhookDelivery.objects.all().delete()",
    )
    fill_outbox(env, events, conversations=conversations)
    receiver.reset()
    receiver_cpu = receiver.cpu_seconds()
    with ServeServer(env, log_path) as server:
        cpu = Probe(server.pid).snapshot()
        deadline = time.monotonic() + 300
        while receiver.stats()["requests"] < events and time.monotonic() < deadline:
            time.sleep(0.1)
        stats = receiver.stats()
        cpu_after = Probe(server.pid).snapshot()
    seconds = (stats["last_at"] or 0) - (stats["first_at"] or 0)
    result = Deliveries(
        name=name,
        events=events,
        received=stats["requests"],
        unique=stats["unique"],
        bad_signatures=stats["bad_signatures"],
        seconds=seconds,
        server_cpu_s=cpu_after.server - cpu.server,
        receiver_cpu_s=receiver.cpu_seconds() - receiver_cpu,
    )
    print(
        f"[{backend.label}] deliveries: {result.received} in {seconds:.2f} s = {result.rate:.0f}/s"
        f" ({result.server_cpu_s * 1000 / max(1, result.received):.2f} ms server CPU each)",
        flush=True,
    )
    return result


MODES = {
    "off": "endpoint switched off: the chat writes nothing for webhooks",
    "on": "endpoint on for every type, delivered by the server process (the default deployment)",
    "record": "endpoint on, the server only records (WEBHOOK_DELIVER=0): the outbox's cost alone",
}


def chat_phase(
    backend: Backend, env: dict[str, str], log_path: Path, receiver: Receiver, args: argparse.Namespace
) -> list[Window]:
    """Windows in rotating order (off, on), (on, off)…, each on a fresh server started for it."""
    windows: list[Window] = []
    acked: set[str] = set()
    modes = args.modes.split(",")
    order: list[str] = []
    for pair in range(args.pairs):
        order += modes[pair % len(modes) :] + modes[: pair % len(modes)]
    for index, mode in enumerate(order):
        set_endpoint_active(backend, mode != "off")
        server_env = env | {"LOCAL_CHUNK_WORDS": "0", "WEBHOOK_DELIVER": "0" if mode == "record" else "1"}
        receiver.reset()
        with ServeServer(server_env, log_path) as server:
            print(f"[{backend.label}] chat window {index + 1}/{len(order)} ({mode})…", flush=True)
            result = asyncio.run(
                run_phase(
                    f"chat {mode}",
                    lambda i, n=index: ChatClient.open(server.url("/ws/chat/"), f"w{n}-{i}", acked),
                    clients=args.clients,
                    warmup_s=args.warmup,
                    seconds=args.seconds,
                    probe=Probe(server.pid, env.get("REDIS_URL")),
                )
            )
            delivered_in_window = receiver.stats()["requests"]
            drained = wait_drained(backend) if mode == "on" else 0.0
        if mode == "record":
            django_script(env, "from webhooks.models import WebhookDelivery\nWebhookDelivery.objects.all().delete()")
        stats = receiver.stats()
        windows.append(
            Window(
                mode=mode,
                turns=result.operations,
                rate=result.rate,
                p50_ms=result.p50_ms,
                p99_ms=result.p99_ms,
                server_cpu_ms_per_turn=result.server_cpu_ms_per_op,
                deliveries=stats["requests"],
                delivered_in_window=delivered_in_window,
                drained_after_s=drained,
                problems=sum(result.problems.values()),
            )
        )
        print(
            f"[{backend.label}]   {result.rate:.1f} turns/s, p50 {result.p50_ms:.1f} ms, "
            f"{result.server_cpu_ms_per_op:.2f} ms server CPU/turn, {delivered_in_window} delivered by the end of "
            f"the window, {stats['requests']} in all (outbox drained {drained:.1f} s after it)",
            flush=True,
        )
    return windows


def run_backend(backend: Backend, args: argparse.Namespace) -> BackendResult:
    with tempfile.TemporaryDirectory(prefix="parley-bench-webhooks-") as tmp:
        workdir = Path(tmp)
        write_knowledge_base(workdir / "knowledge")
        env = base_env(workdir / "knowledge") | backend.prepare(workdir)
        env.update(WEBHOOK_ALLOW_PRIVATE="1", WEBHOOK_POLL_INTERVAL_S="0.5")
        env.update(item.split("=", 1) for item in args.server_env)
        print(f"[{backend.label}] migrating a fresh database…", flush=True)
        migrate(env)
        log_path = Path(tempfile.gettempdir()) / f"parley-bench-webhooks-{backend.key}.log"
        log_path.write_text("")
        receiver = Receiver()
        try:
            django_script(
                env,
                "from webhooks.models import WebhookEndpoint\n"
                f"WebhookEndpoint.objects.create(url={receiver.url!r}, secret={SECRET!r}, description='bench')",
            )
            deliveries = [
                deliveries_phase(backend, env, log_path, receiver, events=args.events, conversations=0),
                deliveries_phase(backend, env, log_path, receiver, events=args.events, conversations=CONVERSATIONS),
            ]
            result = BackendResult(backend=backend.label, deliveries=deliveries)
            result.windows = chat_phase(backend, env, log_path, receiver, args)
        finally:
            receiver.close()
        result.server_errors = dict(log_errors(log_path))
        return result


# --- report ------------------------------------------------------------------------------------
def print_report(results: list[BackendResult]) -> None:
    for result in results:
        print(f"\n== {result.backend} ==")
        for phase in result.deliveries:
            print(
                f"deliveries, {phase.name}: {fmt(phase.rate)}/s ({phase.received}/{phase.events} received, "
                f"{phase.unique} unique, {phase.bad_signatures} bad signatures; "
                f"{fmt(phase.server_cpu_s * 1000 / max(1, phase.received), 2)} ms server CPU each)"
            )
        print("chat A/B (turns/s, server CPU ms/turn):")
        for window in result.windows:
            print(
                f"  {window.mode:6} {fmt(window.rate, 1):>7} turns/s  {fmt(window.server_cpu_ms_per_turn, 2):>6} ms CPU"
                f"  p50 {fmt(window.p50_ms, 1)} ms  {window.delivered_in_window} delivered in the window,"
                f" {window.deliveries} in all, drained {window.drained_after_s:.1f} s after"
            )
        for mode in [m for m in MODES if m != "off" and any(w.mode == m for w in result.windows)]:
            print(
                f"cost of {mode} vs off: {fmt(100 * result.cost(mode), 1)} % of turns/s (target ≤ 3 %), "
                f"{fmt(100 * result.cpu_cost(mode), 1)} % more server CPU per turn"
            )
        if result.server_errors:
            print(f"server log errors: {result.server_errors}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command")
    receiver = sub.add_parser("receive", help="(internal) run the receiver")
    receiver.add_argument("--port", type=int, required=True)
    parser.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--pairs", type=int, default=3, help="rounds of the modes (each round one window of each)")
    parser.add_argument(
        "--modes", default="off,on", help="comma-separated: " + "; ".join(f"{k} = {v}" for k, v in MODES.items())
    )
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--json", type=Path)
    add_server_env_option(parser)
    args = parser.parse_args(argv)
    check_server_env(parser, args)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.command == "receive":
        receive(args.port)
        return 0
    backends: list[Backend] = []
    if args.backend in ("sqlite", "both"):
        backends.append(SqliteBackend())
    if args.backend in ("postgres", "both"):
        backends.append(PostgresBackend())
    results: list[BackendResult] = []
    for backend in backends:
        try:
            results.append(run_backend(backend, args))
        except BackendUnavailable as exc:
            print(f"[{backend.label}] skipped: {exc}", flush=True)
    print_report(results)
    if args.json:
        args.json.write_text(json.dumps([asdict(result) for result in results], indent=2))
    ok = all(phase.ok for result in results for phase in result.deliveries) and all(
        window.problems == 0 for result in results for window in result.windows
    )
    return 0 if ok else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
