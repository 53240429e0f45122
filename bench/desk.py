"""Agent desk benchmark: visitors answered by people at the desk, beside AI chat turns, one process.

Usage (from the project root)::

    .venv/bin/python bench/desk.py [--visitors 200] [--agents 10] [--interval 2] [--ai-clients 20]
                                   [--seconds 10] [--warmup 2] [--backend sqlite|postgres] [--json out.json]

One daphne process serves `project.asgi:application` (rate limits out of the way, the local
assistant at 0 ms per chunk). The client process then:

1. **AI alone**: `--ai-clients` visitors ask QUESTION back to back (the chat benchmark's turn):
   AI turns/s with nothing else running. The baseline of the same run.
2. **setup**: `--agents` people (users in "Support agents", logged in through Django's test
   client in a `manage.py shell`) open `/ws/desk/`, switch available and say hello; `--visitors`
   visitors say hello, ask for a person (`handoff`) and are claimed, round robin, by the desks.
3. **desk alone**: every visitor sends a message every `--interval` seconds (jittered); the desk
   that has the conversation answers each one as soon as its `message` frame arrives. Measured:
   visitor `message` sent → desk `message` frame received, and desk `message` sent → visitor
   `message` (role `agent`) received.
4. **desk + AI**: phase 3 and phase 1 at once: both latencies again, and AI turns/s beside the
   desk load, as a ratio to phase 1.

Checks: every visitor message the server acked reached its desk exactly once, every agent
message reached its visitor exactly once, and the database holds exactly the acked messages.
Target (issue 15): both p99 ≤ 50 ms, nothing lost or duplicated. Results: docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from websockets.asyncio.client import ClientConnection, connect

from bench.harness import (
    PYTHON,
    ROOT,
    Backend,
    ChatClient,
    DaphneServer,
    PostgresBackend,
    Probe,
    SqliteBackend,
    base_env,
    fmt,
    log_errors,
    migrate,
    percentile,
    run_phase,
    write_knowledge_base,
)

LOGIN_SCRIPT = """
import json
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import Client
group = Group.objects.get(name="Support agents")
cookies = []
for index in range({agents}):
    user = get_user_model().objects.create_user(f"agent{{index}}", password="x", first_name=f"Agent {{index}}")
    user.groups.add(group)
    client = Client()
    client.force_login(user)
    cookies.append(client.cookies["sessionid"].value)
print("COOKIES=" + json.dumps(cookies))
"""


@dataclass(slots=True)
class Latencies:
    """Send → receive times (ms) of one measured window, and what arrived more than once."""

    to_desk: list[float] = field(default_factory=list)
    to_visitor: list[float] = field(default_factory=list)


@dataclass(slots=True)
class Ledger:
    """Every message sent and seen, for the exactly-once checks and the latencies."""

    visitor_sent: dict[str, float] = field(default_factory=dict)  # client_id -> sent at
    visitor_acked: set[str] = field(default_factory=set)
    desk_seen: Counter[str] = field(default_factory=Counter)
    agent_sent: dict[str, float] = field(default_factory=dict)  # desk client_id -> sent at
    agent_acked: set[str] = field(default_factory=set)
    visitor_seen: Counter[str] = field(default_factory=Counter)
    problems: Counter[str] = field(default_factory=Counter)
    window: tuple[float, float] | None = None
    latencies: Latencies = field(default_factory=Latencies)

    def in_window(self, sent: float) -> bool:
        return self.window is not None and self.window[0] <= sent < self.window[1]


async def recv(connection: ClientConnection, timeout: float = 30) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        return json.loads(await connection.recv())


async def until(connection: ClientConnection, kind: str) -> dict[str, Any]:
    while True:
        frame = await recv(connection)
        if frame["type"] == kind:
            return frame


class Desk:
    """One agent: answers each visitor message of its conversations at once."""

    def __init__(self, connection: ClientConnection, index: int, ledger: Ledger) -> None:
        self.connection, self.index, self.ledger = connection, index, ledger
        self.sent = 0

    async def run(self) -> None:
        ledger = self.ledger
        while True:
            frame = json.loads(await self.connection.recv())
            kind = frame.get("type")
            if kind == "message" and frame.get("role") == "user" and frame.get("client_id", "").startswith("v-"):
                now = time.monotonic()
                client_id = frame["client_id"]
                ledger.desk_seen[client_id] += 1
                sent = ledger.visitor_sent.get(client_id)
                if sent is not None and ledger.in_window(sent):
                    ledger.latencies.to_desk.append((now - sent) * 1000)
                await self.answer(frame["session_id"], client_id)
            elif kind == "ack":
                ledger.agent_acked.add(frame["client_id"])
            elif kind == "error":
                ledger.problems[f"desk error {frame.get('code')}: {frame.get('detail')}"] += 1

    async def answer(self, session_id: str, visitor_client_id: str) -> None:
        self.sent += 1
        client_id = f"a{self.index}-{self.sent}"
        self.ledger.agent_sent[client_id] = time.monotonic()
        text = f"Answer {client_id} to {visitor_client_id}"
        await self.connection.send(
            json.dumps({"type": "message", "session_id": session_id, "text": text, "client_id": client_id})
        )


class Visitor:
    """One visitor a person answers: a message every `interval` seconds (jittered)."""

    def __init__(self, connection: ClientConnection, index: int, session_id: str, ledger: Ledger) -> None:
        self.connection, self.index, self.session_id, self.ledger = connection, index, session_id, ledger
        self.sent = 0

    async def read(self) -> None:
        ledger = self.ledger
        while True:
            frame = json.loads(await self.connection.recv())
            kind = frame.get("type")
            if kind == "ack":
                ledger.visitor_acked.add(frame["client_id"])
            elif kind == "message" and frame.get("role") == "agent":
                now = time.monotonic()
                agent_client_id = frame["text"].split()[1]
                ledger.visitor_seen[agent_client_id] += 1
                sent = ledger.agent_sent.get(agent_client_id)
                if sent is not None and ledger.in_window(sent):
                    ledger.latencies.to_visitor.append((now - sent) * 1000)
            elif kind == "error":
                ledger.problems[f"visitor error {frame.get('code')}: {frame.get('detail')}"] += 1
            elif kind in ("reply.start", "reply.delta", "reply.end"):
                ledger.problems["an AI reply in a conversation a person has"] += 1

    async def talk(self, stop_at: float, interval: float) -> None:
        await asyncio.sleep(random.uniform(0, interval))
        while time.monotonic() < stop_at:
            self.sent += 1
            client_id = f"v-{self.index}-{self.sent}"
            self.ledger.visitor_sent[client_id] = time.monotonic()
            await self.connection.send(json.dumps({"type": "message", "text": "Any news?", "client_id": client_id}))
            await asyncio.sleep(interval * random.uniform(0.5, 1.5))


def login_cookies(env: dict[str, str], agents: int) -> list[str]:
    """Agents in the "Support agents" group, logged in: their session cookies."""
    output = subprocess.run(
        [str(PYTHON), "manage.py", "shell", "-c", LOGIN_SCRIPT.format(agents=agents)],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    line = next(line for line in output.splitlines() if line.startswith("COOKIES="))
    return json.loads(line.removeprefix("COOKIES="))


async def open_desks(server: DaphneServer, cookies: list[str], ledger: Ledger) -> list[Desk]:
    desks = []
    origin = f"http://127.0.0.1:{server.port}"
    for index, cookie in enumerate(cookies):
        connection = await connect(
            server.url("/ws/desk/"),
            additional_headers={"Origin": origin, "Cookie": f"sessionid={cookie}"},
            compression=None,
            ping_interval=None,
            open_timeout=10,
        )
        await connection.send(json.dumps({"type": "availability", "available": True}))
        await until(connection, "availability")
        await connection.send(json.dumps({"type": "hello"}))
        await until(connection, "welcome")
        desks.append(Desk(connection, index, ledger))
    return desks


async def open_visitors(server: DaphneServer, desks: list[Desk], count: int, ledger: Ledger) -> list[Visitor]:
    async def one(index: int) -> Visitor:
        connection = await connect(server.url("/ws/chat/"), compression=None, ping_interval=None, open_timeout=10)
        await connection.send(json.dumps({"type": "hello"}))
        session_id = (await until(connection, "welcome"))["session_id"]
        await connection.send(json.dumps({"type": "handoff", "reason": "benchmark"}))
        status = await until(connection, "handoff.status")
        if status["state"] != "waiting":
            raise RuntimeError(f"visitor {index}: handoff.status {status['state']!r}, expected waiting")
        return Visitor(connection, index, session_id, ledger)

    visitors = list(await asyncio.gather(*(one(i) for i in range(count))))
    for visitor in visitors:  # round robin; each desk reads its claim.ack (and the conversation)
        desk = desks[visitor.index % len(desks)]
        await desk.connection.send(json.dumps({"type": "claim", "session_id": visitor.session_id}))
        await until(desk.connection, "claim.ack")
        await until(visitor.connection, "handoff.status")
    return visitors


@dataclass(slots=True)
class Window:
    name: str
    to_desk: list[float]
    to_visitor: list[float]
    ai_turns_per_s: float | None
    server_cpu_share: float


def latency_row(values: list[float]) -> str:
    if not values:
        return "no samples"
    return f"p50 {fmt(percentile(values, 0.5), 1)} · p99 {fmt(percentile(values, 0.99), 1)} · n {len(values)}"


async def desk_window(
    name: str, visitors: list[Visitor], ledger: Ledger, args: argparse.Namespace, probe: Probe, ai: bool, server: Any
) -> Window:
    ledger.latencies = Latencies()
    begin = time.monotonic()
    ledger.window = (begin + args.warmup, begin + args.warmup + args.seconds)
    stop_at = ledger.window[1]
    ai_result = None
    talkers = asyncio.gather(*(visitor.talk(stop_at, args.interval) for visitor in visitors))
    start = probe.snapshot()
    if ai:
        acked: set[str] = set()
        ai_result = await run_phase(
            "ai+desk",
            lambda i: ChatClient.open(server.url("/ws/chat/"), f"ai-{i}", acked),
            clients=args.ai_clients,
            warmup_s=args.warmup,
            seconds=args.seconds,
            probe=probe,
        )
    await talkers
    await asyncio.sleep(1.0)  # answers in flight arrive
    end = probe.snapshot()
    share = (end.server - start.server) / max(1e-9, end.at - start.at)
    return Window(
        name,
        list(ledger.latencies.to_desk),
        list(ledger.latencies.to_visitor),
        ai_result.rate if ai_result is not None else None,
        share,
    )


async def run(args: argparse.Namespace, backend: Backend, workdir: Path) -> dict[str, Any]:
    knowledge = workdir / "knowledge"
    write_knowledge_base(knowledge)
    env = base_env(knowledge) | backend.prepare(workdir) | {"DESK_FRAME_RATE_LIMIT_PER_MINUTE": "60000"}
    migrate(env)
    cookies = login_cookies(env, args.agents)
    log = workdir / "server.log"
    ledger = Ledger()
    with DaphneServer(env, log, application="project.asgi:application") as server:
        probe = Probe(server.pid)
        acked: set[str] = set()
        alone = await run_phase(
            "ai alone",
            lambda i: ChatClient.open(server.url("/ws/chat/"), f"base-{i}", acked),
            clients=args.ai_clients,
            warmup_s=args.warmup,
            seconds=args.seconds,
            probe=probe,
        )
        desks = await open_desks(server, cookies, ledger)
        visitors = await open_visitors(server, desks, args.visitors, ledger)
        readers = [asyncio.create_task(desk.run()) for desk in desks]
        readers += [asyncio.create_task(visitor.read()) for visitor in visitors]
        windows = [
            await desk_window("desk alone", visitors, ledger, args, probe, False, server),
            await desk_window("desk + AI", visitors, ledger, args, probe, True, server),
        ]
        await asyncio.sleep(2.0)
        for reader in readers:
            reader.cancel()
        for connection in [d.connection for d in desks] + [v.connection for v in visitors]:
            await connection.close()
    lost_to_desk = sum(1 for client_id in ledger.visitor_acked if ledger.desk_seen[client_id] == 0)
    twice_to_desk = sum(1 for count in ledger.desk_seen.values() if count > 1)
    lost_to_visitor = sum(1 for client_id in ledger.agent_acked if ledger.visitor_seen[client_id] == 0)
    twice_to_visitor = sum(1 for count in ledger.visitor_seen.values() if count > 1)
    with backend.connect() as connection:
        rows = connection.execute(
            "SELECT role, COUNT(*) FROM assistant_chatmessage WHERE client_id LIKE 'v-%%' OR role = 'agent' "
            "GROUP BY role"
            if backend.key == "postgres"
            else "SELECT role, COUNT(*) FROM assistant_chatmessage WHERE client_id LIKE 'v-%' OR role = 'agent' "
            "GROUP BY role"
        ).fetchall()
    stored = dict(rows)
    return {
        "backend": backend.label,
        "ai_alone_turns_per_s": alone.rate,
        "windows": windows,
        "visitor_acked": len(ledger.visitor_acked),
        "agent_acked": len(ledger.agent_acked),
        "stored_user": stored.get("user", 0),
        "stored_agent": stored.get("agent", 0),
        "lost_to_desk": lost_to_desk,
        "twice_to_desk": twice_to_desk,
        "lost_to_visitor": lost_to_visitor,
        "twice_to_visitor": twice_to_visitor,
        "problems": dict(ledger.problems),
        "server_errors": dict(log_errors(log)),
    }


def report(result: dict[str, Any], args: argparse.Namespace) -> bool:
    print(f"\n{result['backend']}: {args.visitors} visitors, {args.agents} desks, a message every {args.interval} s")
    print(f"  AI turns/s alone ({args.ai_clients} clients): {fmt(result['ai_alone_turns_per_s'], 1)}")
    ok = True
    for window in result["windows"]:
        print(f"  {window.name}: server CPU {fmt(window.server_cpu_share * 100)} % of a core")
        print(f"    visitor message → desk (ms): {latency_row(window.to_desk)}")
        print(f"    agent message → visitor (ms): {latency_row(window.to_visitor)}")
        if window.ai_turns_per_s is not None:
            ratio = window.ai_turns_per_s / max(1e-9, result["ai_alone_turns_per_s"])
            print(f"    AI turns/s beside the desk: {fmt(window.ai_turns_per_s, 1)} ({fmt(ratio, 2)} of alone)")
        for values in (window.to_desk, window.to_visitor):
            if not values or percentile(values, 0.99) > 50:
                ok = False
    checks = (
        f"  acked: visitor {result['visitor_acked']}, agent {result['agent_acked']}; stored: "
        f"user {result['stored_user']}, agent {result['stored_agent']}; lost → desk {result['lost_to_desk']}, "
        f"twice → desk {result['twice_to_desk']}, lost → visitor {result['lost_to_visitor']}, "
        f"twice → visitor {result['twice_to_visitor']}"
    )
    print(checks)
    if result["problems"] or result["server_errors"]:
        print(f"  problems: {result['problems']}  server errors: {result['server_errors']}")
    exact = (
        result["lost_to_desk"] == result["twice_to_desk"] == result["lost_to_visitor"] == 0
        and result["twice_to_visitor"] == 0
        and result["stored_user"] == result["visitor_acked"]
        and result["stored_agent"] == result["agent_acked"]
        and not result["problems"]
    )
    print(f"  target p99 ≤ 50 ms: {'met' if ok else 'NOT met'}; exactly once: {'yes' if exact else 'NO'}")
    return exact


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--visitors", type=int, default=200)
    parser.add_argument("--agents", type=int, default=10)
    parser.add_argument("--interval", type=float, default=2.0, help="seconds between a visitor's messages (mean)")
    parser.add_argument("--ai-clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    backend: Backend = SqliteBackend() if args.backend == "sqlite" else PostgresBackend()
    with tempfile.TemporaryDirectory(prefix="parley-desk-bench-") as tmp:
        result = asyncio.run(run(args, backend, Path(tmp)))
    exact = report(result, args)
    if args.json:
        result["windows"] = [dataclasses.asdict(window) for window in result["windows"]]
        args.json.write_text(json.dumps(result, default=str, indent=2))
    return 0 if exact else 1


if __name__ == "__main__":
    raise SystemExit(main())
