"""Provider overhead benchmark: what Parley adds between an AI vendor's stream and the visitor.

Usage (from the project root)::

    .venv/bin/python bench/provider_overhead.py [--sessions 100] [--tokens 200] [--interval-ms 20]
                                                [--backend sqlite|postgres] [--json out.json]
                                                [--server-env KEY=VALUE ...]

A loopback fake OpenAI-compatible server (`tests/support/fake_vendors.py`, in a process of its
own) streams `--tokens` distinct fixed-width tokens ("t000 ", "t001 ", …) one SSE chunk every
`--interval-ms`, and records when it received each request and when it wrote each token chunk.
`--sessions` concurrent sessions ask it for replies, four ways in turn:

1. baseline     - the `openai` SDK read directly (AsyncOpenAI, max_retries=0, stream=True): what
                  any client of the same fake measures on this machine, Parley not involved;
2. pass-through - Parley (daphne, `/ws/chat/`, AI_PROVIDERS=openai) with CHAT_DELTA_INTERVAL_MS=0:
                  every chunk forwarded as soon as possible;
3. coalesced    - the same with the default CHAT_DELTA_INTERVAL_MS=50: at most one delta frame per
                  50 ms per reply, so up to ~50 ms of per-token delay is there by design;
4. failover     - AI_PROVIDERS=anthropic,openai with Anthropic's base URL on a port that refuses
                  connections, pass-through deltas: every reply must end with provider "openai".

Before the load, one session asks one question alone (the warm-up: a fresh server process's
first-use costs land there and are reported apart). Then each session runs three turns back to
back, the sessions' starts spread evenly over one reply's duration, so ~`--sessions` replies are
streaming at any moment of the middle turn; latency figures come from that middle turn (steady
state, no synchronised burst), the loss checks from every turn. The client recognises each token
by the length of the text received so far, so for every token it has the fake's send time and
its own receive time, both `time.monotonic()` (CLOCK_MONOTONIC, one clock for every process on
Linux):

- added TTFT   = (first text at the client − message sent) − (first token sent − request received)
- delay d_i    = token i received at the client − token i sent by the fake
- added gap g_i = (received_i − received_i−1) − (sent_i − sent_i−1): jitter the path adds per token
- tokens lost  = tokens the fake sent that are not in the client's final text; replies not
                 `complete` are counted apart.

Targets (from the issue): added TTFT p99 ≤ 15 ms and added per-token gap p99 ≤ 5 ms, both judged
on phase 2 as measured (client versus fake; the baseline is shown beside it, not subtracted);
zero tokens lost in every phase; failover adds ≤ 50 ms of TTFT: phase 4's added-TTFT p99 minus
phase 2's, and each reply that met the refusing primary (found in the server's ProviderCall rows)
minus the phase-2 reply of the same session and turn. Targets are reported, not enforced: the
exit status is 1 only for lost tokens, replies not complete, protocol errors or a failover reply
not answered by openai. See docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import multiprocessing
import os
import re
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Protocol

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as `python bench/provider_overhead.py`: make `bench` and `tests` importable
    sys.path.insert(0, str(ROOT))

from websockets.asyncio.client import ClientConnection  # noqa: E402

from bench.harness import (  # noqa: E402
    QUESTION,
    BackendUnavailable,
    DaphneServer,
    PostgresBackend,
    SqliteBackend,
    add_server_env_option,
    base_env,
    check_server_env,
    log_errors,
    migrate,
    open_connection,
    percentile,
    process_cpu_seconds,
    timed,
    write_knowledge_base,
)
from tests.support.fake_vendors import FakeVendor, refused_url  # noqa: E402

TURNS = 3  # per session, back to back
MEASURED_TURN = 1  # the middle one: every session streaming, no ramp-up or ramp-down
WARMUP_TURN = -1  # the one turn asked alone before the load starts
FRAME_TIMEOUT_S = 30.0  # one websocket frame or SDK chunk; a hang fails the turn, not the run
CONNECT_TIMEOUT_S = 30.0
MODEL = "gpt-4.1-mini"  # what Parley asks for by default; the fake echoes any name

TARGET_TTFT_P99_MS = 15.0
TARGET_GAP_P99_MS = 5.0
TARGET_FAILOVER_MS = 50.0

_TAG = re.compile(r"^\[([A-Za-z0-9-]+)\] ")


def make_tokens(count: int) -> list[str]:
    """`count` distinct tokens of one width, so a text length says exactly which tokens arrived."""
    width = max(3, len(str(count - 1)))
    return [f"t{index:0{width}d} " for index in range(count)]


def question(tag: str) -> str:
    """The visitor's text for one turn; the tag finds the fake's request for it."""
    return f"[{tag}] {QUESTION}"


# --- the fake vendor, in a process of its own ------------------------------------------------
@dataclass(frozen=True, slots=True)
class FakeStream:
    """One request the fake answered: when it arrived and when each token chunk was written."""

    tag: str
    received_at: float
    sent_at: list[float]


def _serve_fake(conn: Connection, tokens: list[str], interval_s: float) -> None:
    """Child process: one FakeVendor; answers `collect` with the requests since the last one."""
    vendor = FakeVendor("openai", tokens=tokens, token_interval_s=interval_s, usage=(40, len(tokens), 0)).start()
    conn.send(vendor.base_url)
    shipped = 0
    try:
        while conn.recv() == "collect":
            count = min(len(vendor.requests), len(vendor.chunk_sent_at))
            batch = []
            for index in range(shipped, count):
                request = vendor.requests[index]
                messages = (request.json or {}).get("messages") or [{}]
                content = messages[-1].get("content", "")
                batch.append((content if isinstance(content, str) else "", request.received_at))
            sent = [list(vendor.chunk_sent_at[index]) for index in range(shipped, count)]
            shipped = count
            conn.send((batch, sent, [repr(error) for error in vendor.server_errors]))
    finally:
        vendor.stop()


class FakeProcess:
    """The fake vendor in a child process.

    In-process, the fake's thread and the measuring client would take turns on one GIL (a
    thread waits up to the 5 ms switch interval for it), which would add jitter of the size of
    the per-token target to the client's receive times. A process of its own keeps the two
    apart; CLOCK_MONOTONIC makes its timestamps comparable with ours.
    """

    def __init__(self, tokens: list[str], interval_s: float) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(target=_serve_fake, args=(child, tokens, interval_s), daemon=True)
        self.base_url = ""

    @property
    def pid(self) -> int:
        """The child's process id (for its CPU time)."""
        assert self._process.pid is not None
        return self._process.pid

    def __enter__(self) -> FakeProcess:
        self._process.start()
        if not self._conn.poll(CONNECT_TIMEOUT_S):
            self._process.kill()
            raise RuntimeError("the fake vendor process did not start")
        self.base_url = self._conn.recv()
        return self

    def __exit__(self, *exc_info: object) -> None:
        with contextlib.suppress(OSError):
            self._conn.send("stop")
        self._process.join(10)
        if self._process.is_alive():
            self._process.kill()

    def collect(self) -> tuple[list[FakeStream], list[str]]:
        """Requests received since the previous call, and every handler error so far."""
        self._conn.send("collect")
        batch, sent, errors = self._conn.recv()
        streams = []
        for (content, received_at), sent_at in zip(batch, sent, strict=True):
            match = _TAG.match(content)
            streams.append(FakeStream(match.group(1) if match else "", received_at, sent_at))
        return streams, errors


# --- clients ---------------------------------------------------------------------------------
class ProtocolProblem(Exception):
    """The server answered something the protocol does not allow."""


@dataclass(slots=True)
class Turn:
    """One question and its streamed reply as the client saw it; times are time.monotonic()."""

    tag: str
    session: int
    turn: int
    sent_at: float
    token_len: int
    first_text_at: float | None = None
    arrivals: list[float] = field(default_factory=list)  # receive time of token i, once complete
    parts: list[str] = field(default_factory=list)
    length: int = 0
    frames: int = 0  # delta frames (Parley) or chunks with text (SDK)
    status: str = ""
    provider: str = ""
    message_id: str = ""
    problem: str | None = None

    def receive(self, text: str, now: float) -> None:
        """Append text; every token it completes arrived now."""
        if not text:
            return
        if self.first_text_at is None:
            self.first_text_at = now
        self.parts.append(text)
        self.length += len(text)
        self.frames += 1
        self.arrivals.extend([now] * (self.length // self.token_len - len(self.arrivals)))

    @property
    def text(self) -> str:
        """Everything received."""
        return "".join(self.parts)


class TurnClient(Protocol):
    """One session that can ask one question at a time."""

    async def turn(self, tag: str, session: int, number: int) -> Turn:
        """Ask and read the whole reply."""
        ...

    async def close(self) -> None:
        """Release the connection."""
        ...


class ParleyClient:
    """A visitor on `/ws/chat/`: `hello` once, then `message` → ack, reply.start, deltas, reply.end."""

    def __init__(self, connection: ClientConnection, token_len: int) -> None:
        self.connection = connection
        self.token_len = token_len

    @classmethod
    async def open(cls, url: str, token_len: int) -> ParleyClient:
        """Connect and start a new session."""
        connection = await open_connection(url)
        await connection.send(json.dumps({"type": "hello"}))
        welcome = json.loads(await asyncio.wait_for(connection.recv(), FRAME_TIMEOUT_S))
        if welcome.get("type") != "welcome":
            raise ProtocolProblem(f"expected welcome, got {welcome.get('type')!r}")
        return cls(connection, token_len)

    async def close(self) -> None:
        """Close the websocket."""
        await self.connection.close()

    async def turn(self, tag: str, session: int, number: int) -> Turn:
        """One turn; the receive time is taken before the frame is decoded."""
        client_id = f"{tag}-{uuid.uuid4().hex[:8]}"
        record = Turn(tag=tag, session=session, turn=number, sent_at=time.monotonic(), token_len=self.token_len)
        await self.connection.send(json.dumps({"type": "message", "text": question(tag), "client_id": client_id}))
        acked = started = False
        while True:
            async with asyncio.timeout(FRAME_TIMEOUT_S):
                raw = await self.connection.recv()
            now = time.monotonic()
            frame = json.loads(raw)
            kind = frame.get("type")
            if kind == "reply.delta":
                if not started:
                    raise ProtocolProblem("reply.delta before reply.start")
                record.receive(frame["text"], now)
            elif kind == "ack":
                if frame.get("client_id") != client_id:
                    raise ProtocolProblem("ack for another client_id")
                acked = True
            elif kind == "reply.start":
                if not acked:
                    raise ProtocolProblem("reply.start before ack")
                if started:
                    raise ProtocolProblem("a second reply.start (a replacement reply: the stream broke)")
                started, record.message_id = True, str(frame.get("message_id", ""))
            elif kind == "reply.end":
                if not started:
                    raise ProtocolProblem("reply.end before reply.start")
                record.status, record.provider = str(frame.get("status")), str(frame.get("provider"))
                return record
            elif kind == "error":
                raise ProtocolProblem(f"error frame {frame.get('code')}: {frame.get('detail')}")
            else:
                raise ProtocolProblem(f"unexpected frame {kind!r}")


class SdkClient:
    """The baseline: the same questions read straight from the fake with the `openai` SDK."""

    def __init__(self, client: Any, token_len: int) -> None:
        self.client = client
        self.token_len = token_len

    async def close(self) -> None:
        """Nothing per session: the SDK client (and its pool) is shared, as in Parley."""

    async def turn(self, tag: str, session: int, number: int) -> Turn:
        """One streamed completion; the receive time is taken as the SDK yields each chunk."""
        record = Turn(tag=tag, session=session, turn=number, sent_at=time.monotonic(), token_len=self.token_len)
        stream = await self.client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": question(tag)}],
            stream=True,
            stream_options={"include_usage": True},
        )
        async with stream:
            iterator = aiter(stream)
            while True:
                try:
                    async with asyncio.timeout(FRAME_TIMEOUT_S):
                        chunk = await anext(iterator)
                except StopAsyncIteration:
                    break
                if chunk.choices and chunk.choices[0].delta.content:
                    record.receive(chunk.choices[0].delta.content, time.monotonic())
        record.status, record.provider = "complete", "openai (SDK)"
        return record


@dataclass(frozen=True, slots=True)
class Cpu:
    """CPU seconds of the server, this client process and the fake, at one instant."""

    at: float
    server: float
    client: float
    fake: float

    @classmethod
    def now(cls, server_pid: int | None, fake_pid: int) -> Cpu:
        """Read every counter."""
        server = process_cpu_seconds(server_pid) if server_pid is not None else 0.0
        return cls(time.monotonic(), server, time.process_time(), process_cpu_seconds(fake_pid))


async def drive(
    open_client: Callable[[int], Awaitable[TurnClient]],
    *,
    key: str,
    sessions: int,
    stagger_s: float,
    turn_budget_s: float,
    server_pid: int | None,
    fake_pid: int,
) -> tuple[list[Turn], Cpu, Cpu]:
    """One warm-up turn alone, then TURNS turns per session, session i starting i × stagger_s later.

    The warm-up pays a fresh process's first-use costs (lazy imports and caches, SDK clients,
    the first connection to the fake) so that they are not charged to the measured replies.
    """
    async with asyncio.timeout(CONNECT_TIMEOUT_S):
        clients: list[TurnClient] = list(await asyncio.gather(*(open_client(i) for i in range(sessions + 1))))
    warm, clients = clients[0], clients[1:]
    turns: list[Turn] = []

    async def ask(client: TurnClient, tag: str, index: int, number: int) -> bool:
        sent_at = time.monotonic()
        try:
            async with asyncio.timeout(turn_budget_s):
                turns.append(await client.turn(tag, index, number))
        except Exception as exc:  # a protocol problem, a timeout, a dropped connection: recorded
            turns.append(Turn(tag, index, number, sent_at, 1, problem=f"{type(exc).__name__}: {exc}"))
            return False
        return True

    async def session(index: int, client: TurnClient) -> None:
        await asyncio.sleep(max(0.0, begin + index * stagger_s - time.monotonic()))
        for number in range(TURNS):
            if not await ask(client, f"{key}-{index:03d}-{number}", index, number):
                return

    try:
        await ask(warm, f"{key}-warm-0", -1, WARMUP_TURN)
        start = Cpu.now(server_pid, fake_pid)
        begin = time.monotonic() + 0.1
        await asyncio.gather(*(session(index, client) for index, client in enumerate(clients)))
        end = Cpu.now(server_pid, fake_pid)
    finally:
        await asyncio.gather(*(client.close() for client in [warm, *clients]), return_exceptions=True)
    return turns, start, end


# --- analysis --------------------------------------------------------------------------------
def _pct(values: Sequence[float], share: float) -> float:
    return percentile(list(values), share) if values else float("nan")


@dataclass(slots=True)
class PhaseResult:
    """One phase's figures; times in milliseconds."""

    key: str
    label: str
    replies: int
    measured: int
    tokens_sent: int
    tokens_received: int
    tokens_lost: int
    not_complete: int
    ttft_p50: float
    ttft_p99: float
    client_ttft_p50: float
    fake_ttft_p50: float
    request_p50: float  # message sent → the fake has the request: Parley's work before the vendor call
    request_p99: float
    first_leg_p50: float  # first token written by the fake → its text at the client
    first_leg_p99: float
    delay_p50: float
    delay_p99: float
    delay_min: float
    gap_p50: float
    gap_p99: float
    frames_per_reply: float
    warmup_ttft: float  # added TTFT of the warm-up reply: a fresh server process's first reply
    wall_s: float
    cpu_server: float  # % of one core over the phase
    cpu_client: float
    cpu_fake: float
    server_ms_per_token: float  # CPU over the phase ÷ tokens the fake sent in it
    client_ms_per_token: float
    providers: dict[str, int]
    problems: dict[str, int]
    stalls: list[str]  # the largest added gaps: which reply, which token, when in the phase
    ttft_by_tag: dict[str, float] = field(default_factory=dict, repr=False)

    @property
    def problem_count(self) -> int:
        """Protocol problems, unexplained fake requests and replies that did not complete."""
        return sum(self.problems.values()) + self.not_complete


def analyse(
    key: str, label: str, turns: list[Turn], streams: list[FakeStream], tokens: list[str], start: Cpu, end: Cpu
) -> PhaseResult:
    """Match each turn with the fake's request for it and reduce them to the figures."""
    by_tag: dict[str, list[FakeStream]] = defaultdict(list)
    for stream in streams:
        by_tag[stream.tag].append(stream)
    problems: Counter[str] = Counter()
    width = len(tokens[0])
    sent_total = received_total = lost_total = not_complete = window_tokens = 0
    ttft: dict[str, float] = {}
    client_ttft: list[float] = []
    fake_ttft: list[float] = []
    request_leg: list[float] = []
    first_leg: list[float] = []
    delays: list[float] = []
    gaps: list[float] = []
    worst: list[tuple[float, str]] = []
    frames: list[int] = []
    for turn in turns:
        if turn.problem:
            problems[turn.problem] += 1
        not_complete += turn.status != "complete"
        matches = by_tag.pop(turn.tag, [])
        if not matches:
            if not turn.problem:
                problems["no request for the turn reached the fake"] += 1
            continue
        if len(matches) > 1:
            problems["the fake got more than one request for one turn"] += 1
        stream = matches[-1]
        sent, text = stream.sent_at, turn.text
        got = sum(text[i * width : (i + 1) * width] == tokens[i] for i in range(len(sent)))
        sent_total, received_total, lost_total = (
            sent_total + len(sent),
            received_total + got,
            lost_total + len(sent) - got,
        )
        window_tokens += len(sent) if turn.turn != WARMUP_TURN else 0
        if got == len(sent) and text != "".join(tokens[: len(sent)]):
            problems["reply text has more than the fake sent"] += 1
        if turn.first_text_at is None or not sent or got != len(sent):
            continue
        added = 1000 * ((turn.first_text_at - turn.sent_at) - (sent[0] - stream.received_at))
        ttft[turn.tag] = added
        if turn.turn != MEASURED_TURN:
            continue
        frames.append(turn.frames)
        client_ttft.append(1000 * (turn.first_text_at - turn.sent_at))
        fake_ttft.append(1000 * (sent[0] - stream.received_at))
        request_leg.append(1000 * (stream.received_at - turn.sent_at))
        first_leg.append(1000 * (turn.first_text_at - sent[0]))
        arrivals = turn.arrivals
        delays.extend(1000 * (arrivals[i] - sent[i]) for i in range(len(sent)))
        added_gaps = [1000 * ((arrivals[i] - arrivals[i - 1]) - (sent[i] - sent[i - 1])) for i in range(1, len(sent))]
        gaps.extend(added_gaps)
        index = max(range(len(added_gaps)), key=added_gaps.__getitem__, default=None)
        if index is not None:
            at = arrivals[index + 1] - start.at
            worst.append((added_gaps[index], f"{added_gaps[index]:.0f} ms {turn.tag} token {index + 1} at {at:.2f} s"))
    unasked = sum(len(rest) for rest in by_tag.values())
    if unasked:
        problems[f"fake requests no turn asked for ({sorted(by_tag)[:3]}…)"] += unasked
    measured_ttft = [ttft[t.tag] for t in turns if t.turn == MEASURED_TURN and t.tag in ttft]
    window = end.at - start.at
    per_token = 1000 / window_tokens if window_tokens else float("nan")
    return PhaseResult(
        key=key,
        label=label,
        replies=sum(turn.turn != WARMUP_TURN for turn in turns),
        measured=len(measured_ttft),
        tokens_sent=sent_total,
        tokens_received=received_total,
        tokens_lost=lost_total,
        not_complete=not_complete,
        ttft_p50=_pct(measured_ttft, 0.50),
        ttft_p99=_pct(measured_ttft, 0.99),
        client_ttft_p50=_pct(client_ttft, 0.50),
        fake_ttft_p50=_pct(fake_ttft, 0.50),
        request_p50=_pct(request_leg, 0.50),
        request_p99=_pct(request_leg, 0.99),
        first_leg_p50=_pct(first_leg, 0.50),
        first_leg_p99=_pct(first_leg, 0.99),
        delay_p50=_pct(delays, 0.50),
        delay_p99=_pct(delays, 0.99),
        delay_min=min(delays, default=float("nan")),
        gap_p50=_pct(gaps, 0.50),
        gap_p99=_pct(gaps, 0.99),
        frames_per_reply=sum(frames) / len(frames) if frames else float("nan"),
        warmup_ttft=ttft.get(f"{key}-warm-0", float("nan")),
        wall_s=window,
        cpu_server=100 * (end.server - start.server) / window,
        cpu_client=100 * (end.client - start.client) / window,
        cpu_fake=100 * (end.fake - start.fake) / window,
        server_ms_per_token=(end.server - start.server) * per_token,
        client_ms_per_token=(end.client - start.client) * per_token,
        providers=dict(Counter(turn.provider for turn in turns if turn.status and turn.turn != WARMUP_TURN)),
        problems=dict(problems),
        stalls=[label for _, label in sorted(worst, reverse=True)[:3]],
        ttft_by_tag=ttft,
    )


@dataclass(frozen=True, slots=True)
class PrimaryAttempt:
    """One attempt at the refusing primary, as the server stored it in `ProviderCall`."""

    outcome: str  # error (refused) or skipped (breaker open)
    latency_ms: int | None
    detail: str


@dataclass(slots=True)
class FailoverResult:
    """Phase 4 against phase 2, and split by what the refusing primary cost each reply.

    `added_p50/p99`: phase 4's added-TTFT percentiles (measured turn) minus phase 2's. The
    `refused_*`, `skipped_*` and `warmup_added` figures are paired: each phase-4 reply minus the
    phase-2 reply of the same session and turn (same start time in the load shape). Which replies
    met the refusing primary comes from the server's ProviderCall rows.
    """

    added_p50: float
    added_p99: float

    refused: int  # replies that tried the primary (refused, maybe retried) before openai answered
    refused_attempts: int
    refused_attempt_ms_max: float  # the slowest refused attempt, as the server timed it
    refused_turns: list[str]
    refused_added_p50: float
    refused_added_max: float
    skipped: int  # replies whose primary was skipped because its circuit breaker was open
    skipped_added_p50: float
    skipped_added_p99: float
    warmup_attempts: int  # refused attempts of the warm-up reply (a fresh process: imports too)
    warmup_added: float
    unclassified: int
    not_openai: int
    errors: dict[str, int]
    note: str = ""


def primary_attempts(connection: Any) -> dict[str, list[PrimaryAttempt]]:
    """Anthropic attempts per reply (hex public id), read over a DB-API connection."""
    rows = connection.execute(
        "SELECT m.public_id, pc.outcome, pc.latency_ms, pc.error_detail FROM assistant_providercall pc "
        "JOIN assistant_chatmessage m ON m.id = pc.message_id "
        "WHERE pc.feature = 'chat_reply' AND pc.provider = 'anthropic' ORDER BY pc.id"
    ).fetchall()
    attempts: dict[str, list[PrimaryAttempt]] = defaultdict(list)
    for public_id, outcome, latency_ms, detail in rows:
        attempts[uuid.UUID(str(public_id)).hex].append(PrimaryAttempt(outcome, latency_ms, detail or ""))
    return attempts


def analyse_failover(
    phase: PhaseResult,
    passthrough: PhaseResult,
    turns: list[Turn],
    attempts: dict[str, list[PrimaryAttempt]] | None,
) -> FailoverResult:
    """Added TTFT of the replies that met the refusing primary, and of those the breaker spared."""
    refused_tags: list[str] = []
    refused: list[float] = []
    skipped: list[float] = []
    slowest, warmup_added = 0.0, float("nan")
    errors: Counter[str] = Counter()
    unclassified = tries = warmup_attempts = 0
    for turn in turns:
        twin = passthrough.ttft_by_tag.get(turn.tag.replace(phase.key, passthrough.key, 1))
        if turn.tag not in phase.ttft_by_tag or twin is None or not turn.message_id:
            unclassified += 1
            continue
        added = phase.ttft_by_tag[turn.tag] - twin
        tried = (attempts or {}).get(uuid.UUID(turn.message_id).hex, [])
        failed = [attempt for attempt in tried if attempt.outcome == "error"]
        errors.update(attempt.detail[:80] for attempt in failed)
        if turn.turn == WARMUP_TURN:
            warmup_added, warmup_attempts = added, len(failed)
        elif failed:
            refused_tags.append(turn.tag)
            refused.append(added)
            tries += len(failed)
            slowest = max([slowest, *(attempt.latency_ms or 0 for attempt in failed)])
        elif tried and all(attempt.outcome == "skipped" for attempt in tried):
            skipped.append(added)
        else:
            unclassified += 1
    return FailoverResult(
        added_p50=phase.ttft_p50 - passthrough.ttft_p50,
        added_p99=phase.ttft_p99 - passthrough.ttft_p99,
        refused=len(refused),
        refused_attempts=tries,
        refused_attempt_ms_max=slowest,
        refused_turns=refused_tags,
        refused_added_p50=_pct(refused, 0.50),
        refused_added_max=max(refused, default=float("nan")),
        skipped=len(skipped),
        skipped_added_p50=_pct(skipped, 0.50),
        skipped_added_p99=_pct(skipped, 0.99),
        warmup_attempts=warmup_attempts,
        warmup_added=warmup_added,
        unclassified=unclassified,
        not_openai=sum(turn.provider != "openai" for turn in turns),
        errors=dict(errors),
        note="" if attempts is not None else "ProviderCall rows unreadable: replies not split",
    )


# --- phases ----------------------------------------------------------------------------------
@dataclass(slots=True)
class RunResult:
    """Everything one run measured."""

    started_utc: str
    backend: str
    sessions: int
    tokens: int
    interval_ms: float
    phases: list[PhaseResult]
    failover: FailoverResult | None
    fake_errors: list[str]
    server_errors: dict[str, int]
    server_log: str


def run(args: argparse.Namespace) -> RunResult:
    """The four phases against one fake vendor; Parley's three on one migrated database."""
    tokens = make_tokens(args.tokens)
    interval_s = args.interval_ms / 1000
    reply_s = args.tokens * interval_s
    common: dict[str, Any] = {
        "sessions": args.sessions,
        "stagger_s": reply_s / args.sessions,
        "turn_budget_s": reply_s + 2 * FRAME_TIMEOUT_S,
    }
    width = len(tokens[0])
    backend = PostgresBackend() if args.backend == "postgres" else SqliteBackend()
    started = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    phases: list[PhaseResult] = []
    fake_errors: list[str] = []
    log_path = Path(tempfile.gettempdir()) / f"parley-bench-provider-{backend.key}-daphne.log"
    log_path.write_text("")  # kept after the run for inspection
    with tempfile.TemporaryDirectory(prefix="parley-bench-") as tmp, FakeProcess(tokens, interval_s) as fake:
        workdir = Path(tmp)
        write_knowledge_base(workdir / "knowledge")  # the prompt carries a real excerpt, as in production
        env = base_env(workdir / "knowledge") | backend.prepare(workdir)
        env |= {
            "OPENAI_API_KEY": "bench",
            "OPENAI_BASE_URL": f"{fake.base_url}/v1",
            "OPENAI_MODEL": MODEL,
            "TITLE_FROM_PROVIDER": "0",  # no title calls: every request the fake sees is a turn
            "RESPONSE_CACHE_TTL_S": "0",
        }
        env.update(item.split("=", 1) for item in args.server_env)
        print(f"[{backend.label}] migrating a fresh database…", flush=True)
        migrate(env)

        def record(key: str, label: str, turns: list[Turn], start: Cpu, end: Cpu) -> tuple[PhaseResult, list[Turn]]:
            streams, errors = fake.collect()
            fake_errors[:] = errors
            result = analyse(key, label, turns, streams, tokens, start, end)
            phases.append(result)
            print(
                f"  {label}: {result.replies} replies, added TTFT p50/p99 "
                f"{result.ttft_p50:.1f}/{result.ttft_p99:.1f} ms, "
                f"gap p50/p99 {result.gap_p50:.2f}/{result.gap_p99:.2f} ms, {result.tokens_lost} tokens lost"
                + (f", {result.problem_count} problems" if result.problem_count else ""),
                flush=True,
            )
            return result, turns

        print(f"[baseline] {args.sessions} sessions × {TURNS} turns straight through the openai SDK…", flush=True)
        turns, start, end = asyncio.run(baseline_load(fake, width, common | {"key": "sdk"}))
        record("sdk", "baseline: openai SDK direct", turns, start, end)

        def parley(key: str, label: str, extra: dict[str, str]) -> tuple[PhaseResult, list[Turn]]:
            print(f"[{backend.label}] {label}: {args.sessions} sessions × {TURNS} turns…", flush=True)
            with DaphneServer(env | extra, log_path) as server:
                turns, start, end = asyncio.run(
                    drive(
                        lambda _i: ParleyClient.open(server.url("/ws/chat/"), width),
                        **common | {"key": key},
                        server_pid=server.pid,
                        fake_pid=fake.pid,
                    )
                )
            return record(key, label, turns, start, end)

        passthrough, _ = parley(
            "pass", "Parley pass-through (0 ms)", {"AI_PROVIDERS": "openai", "CHAT_DELTA_INTERVAL_MS": "0"}
        )
        parley("coal", "Parley coalesced (50 ms)", {"AI_PROVIDERS": "openai", "CHAT_DELTA_INTERVAL_MS": "50"})
        failover_phase, failover_turns = parley(
            "fail",
            "Parley failover (0 ms)",
            {
                "AI_PROVIDERS": "anthropic,openai",
                "ANTHROPIC_API_KEY": "bench",
                "ANTHROPIC_BASE_URL": refused_url(),
                "CHAT_DELTA_INTERVAL_MS": "0",
            },
        )
        try:
            attempts: dict[str, list[PrimaryAttempt]] | None = with_database(backend, primary_attempts)
        except Exception as exc:  # the schema moved under us: report the phase unsplit
            print(f"  could not read ProviderCall rows: {exc}", flush=True)
            attempts = None
        failover = analyse_failover(failover_phase, passthrough, failover_turns, attempts)
    return RunResult(
        started_utc=started,
        backend=backend.label,
        sessions=args.sessions,
        tokens=args.tokens,
        interval_ms=args.interval_ms,
        phases=phases,
        failover=failover,
        fake_errors=fake_errors,
        server_errors=dict(log_errors(log_path)),
        server_log=str(log_path),
    )


async def baseline_load(fake: FakeProcess, width: int, common: dict[str, Any]) -> tuple[list[Turn], Cpu, Cpu]:
    """Phase 1: one AsyncOpenAI client (one pool, as Parley has per process) for every session."""
    import openai

    client = openai.AsyncOpenAI(api_key="bench", base_url=f"{fake.base_url}/v1", max_retries=0)
    try:

        async def open_client(_index: int) -> TurnClient:
            return SdkClient(client, width)

        return await drive(open_client, **common, server_pid=None, fake_pid=fake.pid)
    finally:
        await client.close()


def with_database(backend: SqliteBackend | PostgresBackend, query: Callable[[Any], Any]) -> Any:
    """Run `query` with a DB-API connection to the benchmark database (sqlite3 or psycopg)."""
    with backend.connect() as connection:
        return query(connection)


# --- report ----------------------------------------------------------------------------------
def _fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:,.{digits}f}"


def _pair(low: float, high: float, digits: int = 1) -> str:
    return f"{_fmt(low, digits)} / {_fmt(high, digits)}"


def phase_rows(phase: PhaseResult, baseline: PhaseResult) -> dict[str, str]:
    """The table rows of one phase, in display order."""
    versus = phase is not baseline
    return {
        "replies (measured: middle turn)": f"{phase.replies} ({phase.measured})",
        "tokens sent by fake / received (+warm-up)": f"{phase.tokens_sent:,} / {phase.tokens_received:,}",
        "tokens lost · replies not complete": f"{phase.tokens_lost} · {phase.not_complete}",
        "added TTFT p50 / p99 (ms)": _pair(phase.ttft_p50, phase.ttft_p99),
        "  TTFT − baseline p50 / p99": _pair(phase.ttft_p50 - baseline.ttft_p50, phase.ttft_p99 - baseline.ttft_p99)
        if versus
        else "",
        "client TTFT p50 · fake TTFT p50 (ms)": f"{_fmt(phase.client_ttft_p50)} · {_fmt(phase.fake_ttft_p50, 2)}",
        "  sent → fake has request p50 / p99": _pair(phase.request_p50, phase.request_p99),
        "  fake's 1st token → client p50 / p99": _pair(phase.first_leg_p50, phase.first_leg_p99),
        "token delay d p50 / p99 (ms)": _pair(phase.delay_p50, phase.delay_p99),
        "added gap g p50 / p99 (ms)": _pair(phase.gap_p50, phase.gap_p99, 2),
        "  gap − baseline p50 / p99": _pair(phase.gap_p50 - baseline.gap_p50, phase.gap_p99 - baseline.gap_p99, 2)
        if versus
        else "",
        "frames (chunks) per reply": _fmt(phase.frames_per_reply),
        "warm-up reply: added TTFT (ms)": _fmt(phase.warmup_ttft),
        "CPU % of a core: server · client · fake": f"{_fmt(phase.cpu_server, 0)} · {_fmt(phase.cpu_client, 0)} · "
        f"{_fmt(phase.cpu_fake, 0)}",
        "CPU ms per token: server · client": f"{_fmt(phase.server_ms_per_token, 3)} · "
        f"{_fmt(phase.client_ms_per_token, 3)}",
        "answered by": ", ".join(f"{name} {count}" for name, count in sorted(phase.providers.items())) or "-",
        "protocol problems": str(sum(phase.problems.values())),
    }


def table(result: RunResult) -> list[tuple[str, list[str]]]:
    """Rows × phases."""
    baseline = result.phases[0]
    columns = [phase_rows(phase, baseline) for phase in result.phases]
    return [(label, [column[label] for column in columns]) for label in columns[0]]


@dataclass(frozen=True, slots=True)
class Target:
    """One target of the issue and whether this run met it."""

    name: str
    measured: str
    met: bool


def targets(result: RunResult) -> list[Target]:
    """The issue's four targets, judged on the phases named in the module docstring."""
    passthrough = next(phase for phase in result.phases if phase.key == "pass")
    lost = sum(phase.tokens_lost + phase.not_complete for phase in result.phases)
    found = [
        Target(
            f"added TTFT p99 ≤ {TARGET_TTFT_P99_MS:g} ms (pass-through)",
            f"{passthrough.ttft_p99:.1f} ms",
            passthrough.ttft_p99 <= TARGET_TTFT_P99_MS,
        ),
        Target(
            f"added per-token gap p99 ≤ {TARGET_GAP_P99_MS:g} ms (pass-through)",
            f"{passthrough.gap_p99:.2f} ms",
            passthrough.gap_p99 <= TARGET_GAP_P99_MS,
        ),
        Target("zero tokens lost (every phase)", f"{lost} lost tokens + incomplete replies", lost == 0),
    ]
    failover = result.failover
    if failover is not None:
        worst = max(failover.added_p99, failover.refused_added_max if failover.refused else -math.inf)
        found.append(
            Target(
                f"failover adds ≤ {TARGET_FAILOVER_MS:g} ms TTFT (vs pass-through)",
                f"p50 {failover.added_p50:+.1f} / p99 {failover.added_p99:+.1f} ms; replies that met the refusal "
                f"(n={failover.refused}) up to {_fmt(failover.refused_added_max)} ms",
                worst <= TARGET_FAILOVER_MS,
            )
        )
    return found


def print_report(result: RunResult) -> None:
    """The side-by-side table, failover details and the targets."""
    print(
        f"\nParley provider overhead — {result.backend}, {result.sessions} concurrent sessions, "
        f"{result.tokens} tokens every {result.interval_ms:g} ms, {os.cpu_count()} CPUs shared by client, "
        f"server and fake ({result.started_utc})\n"
    )
    rows = table(result)
    headers = ["baseline SDK", "pass-through", "coalesced 50ms", "failover"][: len(result.phases)]
    width = max(len(label) for label, _ in rows) + 2
    col = max([16, *(len(value) + 2 for _, values in rows for value in values)])
    print("".ljust(width) + "".join(header.rjust(col) for header in headers))
    for label, values in rows:
        print(label.ljust(width) + "".join(value.rjust(col) for value in values))
    failover = result.failover
    if failover is not None:
        print(
            f"\nFailover (anthropic refuses connections, openai answers): added TTFT vs pass-through p50 "
            f"{failover.added_p50:+.1f} ms, p99 {failover.added_p99:+.1f} ms; paired reply by reply:\n"
            f"  {failover.refused} replies tried the primary first ({failover.refused_attempts} refused attempts, "
            f"slowest {failover.refused_attempt_ms_max:.0f} ms): p50 {_fmt(failover.refused_added_p50)} ms, "
            f"max {_fmt(failover.refused_added_max)} ms [{', '.join(failover.refused_turns[:6])}"
            f"{'…' if failover.refused > 6 else ''}]\n"
            f"  {failover.skipped} replies skipped it (breaker open): p50 {_fmt(failover.skipped_added_p50)} ms, "
            f"p99 {_fmt(failover.skipped_added_p99)} ms\n"
            f"  warm-up reply (first of the process, alone): {failover.warmup_attempts} refused attempts, "
            f"{_fmt(failover.warmup_added)} ms\n"
            f"  {failover.unclassified} unclassified, {failover.not_openai} not answered by openai {failover.note}"
        )
        for detail, count in failover.errors.items():
            print(f"  refused attempt: {count} × {detail}")
    print("\nLargest added gap per phase (worst 3 replies of the measured turn):")
    for phase in result.phases:
        print(f"  {phase.label}: {'; '.join(phase.stalls) or '-'}")
    for phase in result.phases:
        for problem, count in phase.problems.items():
            print(f"{phase.label}: {count} × {problem}")
    for error in result.fake_errors:
        print(f"fake vendor handler error: {error}")
    for message, count in result.server_errors.items():
        print(f"server: {count} × ERROR {message} (see {result.server_log})")
    print("\nTargets (reported, not enforced):")
    for target in targets(result):
        print(f"  {target.name}: {target.measured} → {'PASS' if target.met else 'NOT MET'}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=100, help="concurrent sessions (default 100)")
    parser.add_argument("--tokens", type=int, default=200, help="tokens per reply (default 200)")
    parser.add_argument("--interval-ms", type=float, default=20.0, help="fake's pause between tokens (default 20)")
    parser.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    add_server_env_option(parser)
    args = parser.parse_args(argv)
    check_server_env(parser, args)
    if not 1 <= args.sessions <= 1000 or not 2 <= args.tokens <= 10_000 or not 0 < args.interval_ms <= 1000:
        parser.error("expected 1 ≤ sessions ≤ 1000, 2 ≤ tokens ≤ 10000, 0 < interval-ms ≤ 1000")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the phases, print the report; 1 when tokens were lost or the protocol broke."""
    args = parse_args(argv)
    try:
        with timed("benchmark"):
            result = run(args)
    except BackendUnavailable as exc:
        print(f"skipped: {exc}", flush=True)
        return 1
    print_report(result)
    if args.json:
        raw = asdict(result)
        for phase in raw["phases"]:
            phase.pop("ttft_by_tag")
        raw["targets"] = [asdict(target) for target in targets(result)]
        args.json.write_text(json.dumps(raw, indent=2))
    broken = sum(phase.tokens_lost + phase.problem_count for phase in result.phases) + len(result.fake_errors)
    if result.failover is not None:
        broken += result.failover.not_openai
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
