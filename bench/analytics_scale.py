"""Analytics at scale: the weekly report over a million messages, and what the live tracker costs a turn.

Usage (from the project root)::

    .venv/bin/python bench/analytics_scale.py [--part report|tracker|all] [--json out.json]
        report:  [--sessions 100000] [--days 30] [--seed 1] [--reseed] [--runs 5]
        tracker: [--backend sqlite|postgres|both] [--clients 50] [--seconds 8] [--warmup 2]
                 [--pairs 4] [--session-turns 5] [--server-env KEY=VALUE ...]

Part A, the report (Postgres). Database `parley_scale` (created if missing, migrated) is filled by
`manage.py seed_demo_data` (100,000 sessions ≈ 1,000,000 messages over 30 days) unless it already
holds a seed with the same options: the options, the seeding time and its summary are kept as the
database's comment, so re-runs skip the minutes of seeding (`--reseed` forces it; a database of its
own because `chat_throughput.py` drops `parley_bench` on every run). Then, side by side:

- `manage.py generate_chat_weekly_report --format json --end-date <last day of the data>` end to
  end as a subprocess (`--runs` times: median and max): the target, ≤ 5 s;
- a process that only starts Python and sets Django up: the floor of any management command;
- in one process, `--runs` times each: `rollups_refresh()` (the command's first step),
  `selectors.report()` + JSON rendering (what the command does after it), and the baseline:
  a subset of the same two weeks' numbers (sessions, messages, reply time avg/p95, TTFT, thumbs,
  ratings, tokens per model, top knowledge sections, peak hours) computed straight from the chat
  tables in SQL. Its ratio to the report is what the rollups buy (a lower bound: the report also
  has topics, sentiment and resolution, which no SQL over the raw tables gives).

Part B, the tracker (SQLite and/or Postgres+Redis). The chat phase of `chat_throughput.py` (same
server, knowledge base, clients and checks, from bench/harness.py) runs with the server started with
ANALYTICS_TRACKER=0 and =1 in turn (off, on, on, off, off, on…: `--pairs` pairs, so a steady
drift of the shared machine cancels), in two shapes: the chat benchmark's own (each client one
long session) and `--session-turns`-turn sessions (each client starts a new session after that
many turns, so opening a session and the final write at disconnect weigh as in real traffic).
For each run: turns/s, server CPU ms per turn in the measured window, and server CPU per turn
over the whole run until the server is idle again (connects, the window, and the writes after
the clients leave). The tracker's cost is (CPU on − CPU off) / CPU off of the medians. A
microbenchmark of the tracker's parts (VADER, taxonomy, `row()`, the checkpoint upsert, a
rebuild from the stored rows) on the same database says where that cost goes.

Figures are ratios measured in the same run on a shared machine (see docs/benchmarks.md).
Exit status 1 when a chat turn broke, a durability check failed or the report command failed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as `python bench/analytics_scale.py`: make `bench` importable
    sys.path.insert(0, str(ROOT))

from websockets.asyncio.client import ClientConnection  # noqa: E402

from bench.harness import (  # noqa: E402
    POSTGRES_ADMIN_URL,
    PYTHON,
    QUESTION,
    BackendUnavailable,
    ChatClient,
    DaphneServer,
    PostgresBackend,
    Probe,
    Sample,
    SqliteBackend,
    add_server_env_option,
    base_env,
    check_server_env,
    fmt,
    log_errors,
    migrate,
    process_cpu_seconds,
    run_phase,
    timed,
    write_knowledge_base,
)

SCALE_DATABASE = "parley_scale"
SCALE_URL = f"postgres://postgres@127.0.0.1:5432/{SCALE_DATABASE}"
TARGET_REPORT_S = 5.0
TARGET_TRACKER_COST = 0.05
SEED_TIMEOUT_S = 3 * 3600
REPORT_TIMEOUT_S = 600
IDLE_CPU_S = 0.005  # the server is idle when it uses less than this per IDLE_POLL_S…
IDLE_POLL_S = 0.25
IDLE_QUIET_S = 2.0  # …for this long
IDLE_TIMEOUT_S = 30.0


def median(values: list[float]) -> float:
    """The median, NaN for no values."""
    return statistics.median(values) if values else float("nan")


# --- part A: the report at scale ------------------------------------------------------------
def scale_env() -> dict[str, str]:
    """The environment of every process of part A: the real knowledge base, `parley_scale`."""
    env = base_env(ROOT / "docs" / "knowledge")
    env.update(DATABASE_URL=SCALE_URL, ANALYTICS_RECOVERY_INTERVAL_S="0")
    return env


def read_marker() -> dict[str, Any] | None:
    """What the last completed seed of `parley_scale` was (the database's comment), if any."""
    import psycopg

    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=3) as admin:
        row = admin.execute(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s", [SCALE_DATABASE]
        ).fetchone()
    if row is None:
        return None
    try:
        return json.loads(row[0] or "null")
    except json.JSONDecodeError:
        return {}


def recreate_database(*, drop: bool) -> None:
    """Create `parley_scale` (dropping it first with `drop`); BackendUnavailable without Postgres."""
    import psycopg
    from psycopg import sql

    try:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=3) as admin:
            name = sql.Identifier(SCALE_DATABASE)
            if drop:
                admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))
            exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [SCALE_DATABASE]).fetchone()
            if not exists:
                admin.execute(sql.SQL("CREATE DATABASE {}").format(name))
    except psycopg.OperationalError as exc:
        raise BackendUnavailable(f"Postgres at {POSTGRES_ADMIN_URL} is unreachable: {exc}") from exc


def write_marker(marker: dict[str, Any]) -> None:
    """Remember a completed seed as the database's comment."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=3) as admin:
        admin.execute(
            sql.SQL("COMMENT ON DATABASE {} IS {}").format(
                sql.Identifier(SCALE_DATABASE), sql.Literal(json.dumps(marker))
            )
        )


def ensure_seeded(args: argparse.Namespace, env: dict[str, str]) -> dict[str, Any]:
    """`parley_scale` migrated and holding the seed the options ask for; returns its marker."""
    wanted = {"sessions": args.sessions, "days": args.days, "seed": args.seed}
    marker = None if args.reseed else read_marker()
    if marker and all(marker.get(key) == value for key, value in wanted.items()):
        print(
            f"[report] {SCALE_DATABASE} already holds {wanted} (seeded {marker['seeded_at']}): reusing it", flush=True
        )
        migrate(env)
        return marker
    print(f"[report] seeding {SCALE_DATABASE} with {wanted}: this takes minutes…", flush=True)
    recreate_database(drop=True)
    migrate(env)
    command = [str(PYTHON), "manage.py", "seed_demo_data", *(f"--{key}={value}" for key, value in wanted.items())]
    started = time.monotonic()
    done = subprocess.run(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True, check=True, timeout=SEED_TIMEOUT_S
    )
    marker = dict(
        wanted,
        seconds=round(time.monotonic() - started, 1),
        summary=done.stdout.strip(),
        seeded_at=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    )
    write_marker(marker)
    print(f"[report] {marker['summary']} (wall {marker['seconds']:.0f} s)", flush=True)
    return marker


def timed_process(command: list[str], env: dict[str, str], *, show_stderr: bool = False) -> tuple[float, str]:
    """Wall seconds of a subprocess and its stdout; a failure raises."""
    started = time.monotonic()
    done = subprocess.run(
        command,
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=None if show_stderr else subprocess.PIPE,
        text=True,
        timeout=REPORT_TIMEOUT_S,
    )
    seconds = time.monotonic() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command[1:3])} exited with {done.returncode}:\n{(done.stderr or '')[-2000:]}")
    return seconds, done.stdout


@dataclass(slots=True)
class ReportResult:
    """Part A's figures."""

    marker: dict[str, Any]
    rows: dict[str, int]
    period: dict[str, str]
    command: list[float] = field(default_factory=list)
    command_bytes: int = 0
    command_used: str = ""
    startup: list[float] = field(default_factory=list)
    inside: dict[str, list[float]] = field(default_factory=dict)

    def figures(self) -> dict[str, float]:
        """Medians, maxima and ratios."""
        report = median(self.inside["report"])
        return {
            "command_median_s": median(self.command),
            "command_max_s": max(self.command, default=float("nan")),
            "startup_median_s": median(self.startup),
            "refresh_first_s": self.inside["refresh_first"][0],
            "refresh_median_s": median(self.inside["refresh"]),
            "report_median_s": report,
            "raw_median_s": median(self.inside["raw"]),
            "raw_over_report": median(self.inside["raw"]) / report if report else float("nan"),
            "raw_over_command": median(self.inside["raw"]) / median(self.command) if self.command else float("nan"),
        }


def prepare_report_part(args: argparse.Namespace) -> dict[str, Any]:
    """`parley_scale` created, migrated and seeded as the options ask; its marker."""
    recreate_database(drop=False)
    return ensure_seeded(args, scale_env())


def run_report_part(args: argparse.Namespace, marker: dict[str, Any]) -> ReportResult:
    """Time the report command beside Django's startup, the in-process parts and the raw baseline."""
    env = scale_env()
    print(f"[report] timing refresh, report and the raw-table baseline in one process ({args.runs} runs)…", flush=True)
    worker = [str(PYTHON), __file__, "--worker", "report", "--runs", str(args.runs)]
    inside = json.loads(timed_process(worker, env, show_stderr=True)[1])
    result = ReportResult(marker=marker, rows=inside.pop("rows"), period=inside.pop("period"), inside=inside)
    command = [
        str(PYTHON), "manage.py", "generate_chat_weekly_report", "--format", "json", "--no-progress",
        "--end-date", result.period["end"],
    ]  # fmt: skip
    setup = [
        str(PYTHON),
        "-c",
        "import django, os; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'project.settings'); django.setup()",
    ]
    exists = (ROOT / "analytics/management/commands/generate_chat_weekly_report.py").exists()
    if exists:
        result.command_used = " ".join(command[1:])
        print(f"[report] {result.command_used} × {args.runs}, each beside a bare Django start…", flush=True)
    else:  # not written yet: the in-process report stands in for it
        print("[report] generate_chat_weekly_report does not exist yet: timing selectors.report() only", flush=True)
    for _ in range(args.runs):  # interleaved: drift on the shared machine hits both alike
        if exists:
            seconds, text = timed_process(command, env)
            json.loads(text)  # it must be the whole report, as JSON
            result.command.append(seconds)
            result.command_bytes = len(text)
        result.startup.append(timed_process(setup, env)[0])
    return result


def report_worker(runs: int) -> dict[str, Any]:
    """In a Django process on `parley_scale`: row counts and the in-process timings, as JSON data."""
    from django.db import connection
    from django.db.models import Max
    from django.utils import timezone

    from analytics import rollup, selectors, services
    from analytics.models import ChatAnalytics
    from assistant.models import ChatSession

    # Every refresh re-reads the analytics rows written in the last ROLLUP_OVERLAP (writes that
    # committed late): right after seeding that is all of them. A weekly report does not run then.
    newest = ChatAnalytics.objects.aggregate(last=Max("updated_at"))["last"]
    wait = (newest + services.ROLLUP_OVERLAP - timezone.now()).total_seconds() if newest else 0
    if wait > 0:
        note = f"waiting {wait:.0f} s until the seed's analytics rows are older than the refresh's overlap"
        print(f"[report] {note} ({services.ROLLUP_OVERLAP})…", file=sys.stderr, flush=True)
        time.sleep(wait + 1)
    end = timezone.localdate(ChatSession.objects.aggregate(last=Max("created_at"))["last"])
    period = selectors.Period.ending(end, 7)
    first = period.previous().start
    rows = {}
    with connection.cursor() as cursor:
        for table in COUNTED_TABLES:
            cursor.execute(f"SELECT count(*) FROM {table}")
            rows[table] = cursor.fetchone()[0]
        for table in ("analytics_dailysessionrollup", "analytics_dailyproviderrollup"):
            cursor.execute(f"SELECT count(*) FROM {table} WHERE day BETWEEN %s AND %s", [first, period.end])
            rows[f"{table} (the 2 weeks read)"] = cursor.fetchone()[0]

    def report() -> None:
        data = selectors.report(period)
        try:
            from analytics import reports

            reports.render(data, "json")
        except ImportError:  # the renderer is not written yet
            json.dumps(data, default=str)

    def raw() -> None:
        for week in (period.previous(), period):
            raw_summary(connection, rollup.day_bounds(week.start)[0], rollup.day_bounds(week.end)[1])

    timings: dict[str, list[float]] = {"refresh_first": [], "refresh": [], "report": [], "raw": []}
    timings["refresh_first"].append(_seconds(services.rollups_refresh))
    for _ in range(runs):  # interleaved, so that drift on the shared machine hits all three alike
        timings["refresh"].append(_seconds(services.rollups_refresh))
        timings["report"].append(_seconds(report))
        timings["raw"].append(_seconds(raw))
    return {"rows": rows, "period": {"start": str(period.start), "end": str(period.end)}, **timings}


def _seconds(work: Callable[[], Any]) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


COUNTED_TABLES = (
    "assistant_chatsession", "assistant_chatmessage", "assistant_providercall", "assistant_feedback",
    "assistant_sessionrating", "assistant_chatevent", "analytics_chatanalytics", "analytics_dailysessionrollup",
    "analytics_dailyproviderrollup",
)  # fmt: skip
RAW_QUERIES = [
    # sessions, messages by role, reply time average and p95, TTFT average, cached replies
    """SELECT count(DISTINCT s.id), count(m.id), count(m.id) FILTER (WHERE m.role = 'user'),
              count(m.id) FILTER (WHERE m.role = 'assistant'),
              avg(m.duration_ms) FILTER (WHERE m.role = 'assistant' AND m.status = 'complete'),
              percentile_cont(0.95) WITHIN GROUP (ORDER BY m.duration_ms)
                  FILTER (WHERE m.role = 'assistant' AND m.status = 'complete'),
              avg(m.ttft_ms) FILTER (WHERE m.role = 'assistant'), count(m.id) FILTER (WHERE m.cached)
       FROM assistant_chatsession s JOIN assistant_chatmessage m ON m.session_id = s.id
       WHERE s.created_at >= %(start)s AND s.created_at < %(end)s""",
    # thumbs and ratings of those sessions
    """SELECT (SELECT count(*) FILTER (WHERE f.rating = 'up') FROM assistant_feedback f
               JOIN assistant_chatsession s ON s.id = f.session_id
               WHERE s.created_at >= %(start)s AND s.created_at < %(end)s),
              (SELECT count(*) FILTER (WHERE f.rating = 'down') FROM assistant_feedback f
               JOIN assistant_chatsession s ON s.id = f.session_id
               WHERE s.created_at >= %(start)s AND s.created_at < %(end)s),
              (SELECT avg(r.score) FROM assistant_sessionrating r JOIN assistant_chatsession s ON s.id = r.session_id
               WHERE s.created_at >= %(start)s AND s.created_at < %(end)s)""",
    # provider calls, tokens and latency per model
    """SELECT provider, model, feature, count(*), count(*) FILTER (WHERE outcome = 'ok'), sum(input_tokens),
              sum(output_tokens), sum(cached_tokens), avg(latency_ms)
       FROM assistant_providercall WHERE started_at >= %(start)s AND started_at < %(end)s
       GROUP BY provider, model, feature""",
    # top knowledge sections
    """SELECT e.value ->> 'title', count(DISTINCT s.id)
       FROM assistant_chatsession s JOIN assistant_chatmessage m ON m.session_id = s.id,
            jsonb_array_elements(m.knowledge_sections) e
       WHERE s.created_at >= %(start)s AND s.created_at < %(end)s
       GROUP BY 1 ORDER BY 2 DESC LIMIT 10""",
    # sessions per hour of the day
    """SELECT extract(hour FROM s.created_at AT TIME ZONE %(zone)s), count(*) FROM assistant_chatsession s
       WHERE s.created_at >= %(start)s AND s.created_at < %(end)s GROUP BY 1""",
]


def raw_summary(connection: Any, start: Any, end: Any) -> None:
    """The baseline: part of one week's report straight from the chat tables (benchmark only)."""
    from django.conf import settings

    with connection.cursor() as cursor:
        for query in RAW_QUERIES:
            cursor.execute(query, {"start": start, "end": end, "zone": settings.TIME_ZONE})
            cursor.fetchall()


# --- part B: the tracker's cost per turn ----------------------------------------------------
class CyclingChatClient:
    """A `ChatClient` that leaves after `turns` turns, replaced by a new visitor (a new session)."""

    def __init__(self, url: str, label: str, acked: set[str], turns: int, first: ChatClient) -> None:
        self.url, self.label, self.acked, self.turns = url, label, acked, turns
        self.current = first
        self.sessions = 1

    @classmethod
    async def open(cls, url: str, label: str, acked: set[str], turns: int) -> CyclingChatClient:
        """Connect the first visitor."""
        return cls(url, label, acked, turns, await ChatClient.open(url, f"{label}-0", acked))

    @property
    def connection(self) -> ClientConnection:
        """The current visitor's websocket (closed by `run_phase` at the end)."""
        return self.current.connection

    async def step(self) -> Sample:
        """One turn; every `turns` turns the visitor closes the tab and a new one says hello first."""
        if self.current.turns >= self.turns:
            await self.current.connection.close()
            self.current = await ChatClient.open(self.url, f"{self.label}-{self.sessions}", self.acked)
            self.sessions += 1
        return await self.current.step()


@dataclass(slots=True)
class TrackerRun:
    """One server run of one shape with the tracker on or off."""

    shape: str
    tracker: bool
    turns_in_window: int
    rate: float
    window_cpu_ms: float  # server CPU per turn inside the measured window
    services_cpu_ms: float  # Postgres + Redis CPU per turn in the window (every such process on the machine)
    whole_cpu_ms: float  # server CPU per turn from before connecting until idle after the clients left
    turns: int
    sessions: int
    analytics_rows: int  # ChatAnalytics rows written during the run
    problems: dict[str, int]


@dataclass(slots=True)
class TrackerResult:
    """Part B's figures on one backend."""

    backend: str
    runs: list[TrackerRun]
    durable: bool
    server_errors: dict[str, int]
    parts: dict[str, float] = field(default_factory=dict)

    def medians(self, shape: str, tracker: bool) -> dict[str, float]:
        """Median figures of one shape and mode."""
        runs = [run for run in self.runs if run.shape == shape and run.tracker == tracker]
        return {
            "rate": median([run.rate for run in runs]),
            "window_cpu_ms": median([run.window_cpu_ms for run in runs]),
            "services_cpu_ms": median([run.services_cpu_ms for run in runs]),
            "whole_cpu_ms": median([run.whole_cpu_ms for run in runs]),
            "analytics_rows": sum(run.analytics_rows for run in runs),
            "sessions": sum(run.sessions for run in runs),
        }

    def cost(self, shape: str, key: str) -> float:
        """(on − off) / off of a median figure."""
        on, off = self.medians(shape, True)[key], self.medians(shape, False)[key]
        return (on - off) / off if off else float("nan")

    @property
    def problems(self) -> int:
        """Client problems in any run."""
        return sum(sum(run.problems.values()) for run in self.runs)


def abba(pairs: int) -> list[bool]:
    """Tracker off/on in the order off, on, on, off, off, on…: a steady drift of the machine cancels."""
    return [mode for number in range(pairs) for mode in ((False, True) if number % 2 == 0 else (True, False))]


def wait_idle(pid: int) -> float:
    """The server's CPU seconds once it has stopped working (analytics writes after disconnects).

    Idle means IDLE_QUIET_S in a row with almost no CPU: longer than the tracker's batching
    delay, so writes that wait for their batch are not cut off by stopping the server.
    """
    deadline = time.monotonic() + IDLE_TIMEOUT_S
    last = process_cpu_seconds(pid)
    quiet_since = time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(IDLE_POLL_S)
        now = process_cpu_seconds(pid)
        if now - last >= IDLE_CPU_S:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since >= IDLE_QUIET_S:
            return now
        last = now
    return last


def count_rows(backend: SqliteBackend | PostgresBackend, sql: str) -> int:
    """One number from the backend's benchmark database."""
    with backend.connect() as connection:
        return connection.execute(sql).fetchone()[0]


SHAPES = {"long": "chat benchmark (1 session per client)", "short": "short sessions"}


def run_tracker_part(backend: SqliteBackend | PostgresBackend, args: argparse.Namespace) -> TrackerResult:
    """Alternate tracker off/on servers on one database, for both session shapes."""
    runs: list[TrackerRun] = []
    with tempfile.TemporaryDirectory(prefix="parley-bench-") as tmp:
        workdir = Path(tmp)
        write_knowledge_base(workdir / "knowledge")
        env = base_env(workdir / "knowledge") | backend.prepare(workdir)
        env.update(item.split("=", 1) for item in args.server_env)
        print(f"[{backend.label}] migrating a fresh database…", flush=True)
        migrate(env)
        log_path = Path(tempfile.gettempdir()) / f"parley-bench-analytics-{backend.key}-daphne.log"
        log_path.write_text("")
        acked: set[str] = set()
        for shape in SHAPES:
            for tracker in abba(args.pairs):
                runs.append(_tracker_run(backend, env, log_path, shape, tracker, acked, args))
        durable = backend.durability(acked).ok
        parts = _tracker_parts(env, args)
    return TrackerResult(
        backend=backend.label, runs=runs, durable=durable, server_errors=dict(log_errors(log_path)), parts=parts
    )


def _tracker_run(
    backend: SqliteBackend | PostgresBackend,
    env: dict[str, str],
    log_path: Path,
    shape: str,
    tracker: bool,
    acked: set[str],
    args: argparse.Namespace,
) -> TrackerRun:
    label = f"{SHAPES[shape]}, tracker {'on' if tracker else 'off'}"
    rows_sql = "SELECT count(*) FROM analytics_chatanalytics"
    sessions_sql = "SELECT count(*) FROM assistant_chatsession"
    rows_before, sessions_before, acked_before = (
        count_rows(backend, rows_sql),
        count_rows(backend, sessions_sql),
        len(acked),
    )
    server_env = env | {"LOCAL_CHUNK_WORDS": "0", "ANALYTICS_TRACKER": "1" if tracker else "0"}
    with DaphneServer(server_env, log_path) as server:
        url = server.url("/ws/chat/")

        def opener(index: int) -> Any:
            name = f"{shape}-{int(tracker)}-{len(acked)}-{index}"
            if shape == "long":
                return ChatClient.open(url, name, acked)
            return CyclingChatClient.open(url, name, acked, args.session_turns)

        cpu_before = process_cpu_seconds(server.pid)
        phase = asyncio.run(
            run_phase(
                label,
                opener,
                clients=args.clients,
                warmup_s=args.warmup,
                seconds=args.seconds,
                probe=Probe(server.pid, env.get("REDIS_URL")),
            )
        )
        cpu_after = wait_idle(server.pid)
    turns = len(acked) - acked_before
    run = TrackerRun(
        shape=shape,
        tracker=tracker,
        turns_in_window=phase.operations,
        rate=phase.rate,
        window_cpu_ms=phase.server_cpu_ms_per_op,
        services_cpu_ms=phase.services_cpu_ms_per_op,
        whole_cpu_ms=1000 * (cpu_after - cpu_before) / turns if turns else float("nan"),
        turns=turns,
        sessions=count_rows(backend, sessions_sql) - sessions_before,
        analytics_rows=count_rows(backend, rows_sql) - rows_before,
        problems=phase.problems,
    )
    print(
        f"[{backend.label}] {label}: {run.rate:.0f} turns/s, {run.window_cpu_ms:.2f} ms CPU/turn in the window, "
        f"{run.whole_cpu_ms:.2f} over the run; {run.sessions} sessions, {run.analytics_rows} analytics rows"
        + (f", {sum(run.problems.values())} problems" if run.problems else ""),
        flush=True,
    )
    return run


def _tracker_parts(env: dict[str, str], args: argparse.Namespace) -> dict[str, float]:
    """Run the parts microbenchmark in a Django process on the benchmark database."""
    command = [str(PYTHON), __file__, "--worker", "tracker-parts", "--session-turns", str(args.session_turns)]
    done = subprocess.run(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True, check=True, timeout=600)
    return json.loads(done.stdout)


def tracker_parts_worker(session_turns: int) -> dict[str, float]:
    """Process CPU µs of each thing the tracker does, on this database (its sessions and messages)."""
    from django.db.models import Count
    from django.utils import timezone

    from analytics import sentiment, services, taxonomy
    from analytics.session_stats import SessionStats
    from assistant.models import ChatSession

    rules = taxonomy.get()
    session = (
        ChatSession.objects.annotate(n=Count("messages")).filter(n=2 * session_turns).order_by("pk").first()
        or ChatSession.objects.filter(last_seq__gt=0).order_by("pk").first()
    )
    assert session is not None, "no session to measure on"
    sources = [{"id": "benchmark.md#zephyr-quokka-throughput", "title": "Throughput benchmark › Zephyr", "score": 9.0}]

    def turns(count: int) -> SessionStats:
        stats = SessionStats(session_pk=session.pk, started_at=session.created_at, user_type="anonymous")
        for turn in range(count):
            stats.observe_user_message(seq=2 * turn + 1, text=QUESTION)
            stats.observe_reply(
                seq=2 * turn + 2, status="complete", provider="local", ttft_ms=5, duration_ms=9, sources=sources
            )
        return stats

    stats = turns(session_turns)
    fields = stats.row(timezone.now())
    return {
        "vader_us": _cpu_us(lambda: sentiment.score(QUESTION), 2000),
        "taxonomy_us": _cpu_us(lambda: (rules.topics_of(QUESTION), rules.asks_for_human(QUESTION)), 2000),
        "observe_turn_us": _cpu_us(lambda: turns(1), 1000),
        "row_us": _cpu_us(lambda: stats.row(timezone.now()), 1000),
        "checkpoint_write_us": _cpu_us(lambda: services.session_analytics_write(rows={session.pk: fields}), 200),
        "final_rebuild_us": _cpu_us(lambda: services.session_analytics_rebuild(session_pk=session.pk), 100),
        "session_messages": session.last_seq,
    }


def _cpu_us(work: Callable[[], Any], times: int) -> float:
    work()  # warm caches and lazy imports
    started = time.process_time()
    for _ in range(times):
        work()
    return 1e6 * (time.process_time() - started) / times


# --- report ---------------------------------------------------------------------------------
def print_report_part(result: ReportResult) -> None:
    """Part A's table."""
    figures, rows = result.figures(), result.rows
    print(
        f"\nA. Weekly report at scale — Postgres `{SCALE_DATABASE}`, week {result.period['start']} to "
        f"{result.period['end']} (and the week before, for the changes)\n"
    )
    print(f"seed: {result.marker.get('summary', '?')}")
    print(f"seeding wall time: {result.marker.get('seconds', float('nan')):.0f} s ({result.marker.get('seeded_at')})")
    for table, count in rows.items():
        print(f"  {table:<52}{count:>12,}")
    print()
    lines = [
        ("generate_chat_weekly_report --format json, end to end (median / max)",
         f"{fmt(figures['command_median_s'], 2)} / {fmt(figures['command_max_s'], 2)} s"),
        ("  of which: Python + Django setup alone (median)", f"{fmt(figures['startup_median_s'], 2)} s"),
        ("  rollups_refresh() in-process (median; the first of the run)",
         f"{fmt(figures['refresh_median_s'], 3)} s ({fmt(figures['refresh_first_s'], 2)} s)"),
        ("  selectors.report() + JSON in-process (median)", f"{fmt(figures['report_median_s'], 3)} s"),
        ("baseline: subset of the 2 weeks from the raw tables (median)", f"{fmt(figures['raw_median_s'], 2)} s"),
        ("ratio raw tables ÷ report from rollups (in-process)", f"{fmt(figures['raw_over_report'], 0)}×"),
        ("ratio raw tables ÷ whole command", f"{fmt(figures['raw_over_command'], 2)}×"),
        ("JSON report size", f"{result.command_bytes:,} bytes"),
    ]  # fmt: skip
    for label, value in lines:
        print(f"{label:<68}{value:>22}")
    if result.command:
        met = figures["command_max_s"] <= TARGET_REPORT_S
        print(
            f"\nTarget: the weekly report (json) in ≤ {TARGET_REPORT_S:g} s → max {figures['command_max_s']:.2f} s: "
            f"{'MET' if met else 'NOT MET'}"
        )


def print_tracker_part(results: dict[str, TrackerResult | str], args: argparse.Namespace) -> None:
    """Part B's table: per backend and shape, off and on side by side, and the cost."""
    print(
        f"\nB. Tracker cost per chat turn — {args.clients} clients, {args.warmup:g} s warm-up + {args.seconds:g} s "
        f"windows, {args.pairs} off/on pairs, short sessions of {args.session_turns} turns\n"
    )
    for key, result in results.items():
        if isinstance(result, str):
            print(f"{key}: skipped — {result}")
            continue
        print(f"{result.backend}")
        header = f"  {'':<44}{'tracker off':>14}{'tracker on':>14}{'cost':>10}"
        for shape, title in SHAPES.items():
            off, on = result.medians(shape, False), result.medians(shape, True)
            print(f"  {title}\n{header}")
            for name, label, digits in (
                ("rate", "turns/s (median)", 0),
                ("window_cpu_ms", "server CPU ms/turn, measured window", 3),
                ("whole_cpu_ms", "server CPU ms/turn, whole run until idle", 3),
                ("services_cpu_ms", "Postgres+Redis CPU ms/turn, window", 3),
            ):
                if name == "services_cpu_ms" and result.backend == "SQLite":
                    continue
                cost = result.cost(shape, name)
                shown = -cost if name == "rate" else cost  # a lower rate is the cost there
                print(f"  {label:<44}{fmt(off[name], digits):>14}{fmt(on[name], digits):>14}{100 * shown:>9.1f}%")
            print(
                f"  {'sessions · analytics rows written':<44}{off['sessions']:>7} · {off['analytics_rows']:<4}"
                f"{on['sessions']:>7} · {on['analytics_rows']:<4}"
            )
            order = " ".join(
                f"{'on' if run.tracker else 'off'} {run.window_cpu_ms:.2f}" for run in result.runs if run.shape == shape
            )
            print(f"  runs in order (ms/turn in the window): {order}")
        parts = result.parts
        print(
            f"  tracker parts (process CPU µs): VADER {parts['vader_us']:.0f}, taxonomy {parts['taxonomy_us']:.0f}, "
            f"observe one turn {parts['observe_turn_us']:.0f}, row() {parts['row_us']:.0f}, "
            f"checkpoint upsert {parts['checkpoint_write_us']:.0f}, final rebuild of a "
            f"{parts['session_messages']:.0f}-message session {parts['final_rebuild_us']:.0f}"
        )
        print(
            f"  durability: {'OK' if result.durable else 'FAIL'}; client problems {result.problems}; "
            f"server ERROR records {sum(result.server_errors.values())}"
        )
        for shape, title in SHAPES.items():
            cost = result.cost(shape, "whole_cpu_ms")  # everything the tracker did for these turns
            verdict = "MET" if cost <= TARGET_TRACKER_COST else "NOT MET"
            print(
                f"  Target: tracker ≤ {100 * TARGET_TRACKER_COST:g} % of a turn's server CPU (whole run), {title}: "
                f"{100 * cost:.1f} % → {verdict}"
            )
        print()


# --- main -----------------------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--part", choices=("report", "tracker", "all"), default="all")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    parser.add_argument("--sessions", type=int, default=100_000, help="report: demo sessions (default 100000)")
    parser.add_argument("--days", type=int, default=30, help="report: over this many days (default 30)")
    parser.add_argument("--seed", type=int, default=1, help="report: seed_demo_data --seed (default 1)")
    parser.add_argument("--reseed", action="store_true", help="report: seed again even if the same seed is there")
    parser.add_argument("--runs", type=int, default=5, help="report: timed runs of each (default 5)")
    parser.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both", help="tracker")
    parser.add_argument("--clients", type=int, default=50, help="tracker: concurrent clients (default 50)")
    parser.add_argument("--seconds", type=float, default=8.0, help="tracker: measured window (default 8)")
    parser.add_argument("--warmup", type=float, default=2.0, help="tracker: warm-up before it (default 2)")
    parser.add_argument("--pairs", type=int, default=4, help="tracker: off/on pairs per shape (default 4)")
    parser.add_argument("--session-turns", type=int, default=5, help="tracker: turns of a short session (default 5)")
    parser.add_argument("--worker", choices=("report", "tracker-parts"), help=argparse.SUPPRESS)
    add_server_env_option(parser)
    args = parser.parse_args(argv)
    check_server_env(parser, args)
    if not 1 <= args.sessions <= 10_000_000 or not 1 <= args.days <= 3650 or not 1 <= args.runs <= 100:
        parser.error("expected 1 ≤ sessions ≤ 10000000, 1 ≤ days ≤ 3650, 1 ≤ runs ≤ 100")
    if not 1 <= args.clients <= 1000 or not 0 < args.seconds <= 600 or not 1 <= args.pairs <= 20:
        parser.error("expected 1 ≤ clients ≤ 1000, 0 < seconds ≤ 600, 1 ≤ pairs ≤ 20")
    if not 1 <= args.session_turns <= 1000:
        parser.error("expected 1 ≤ session-turns ≤ 1000")
    return args


@contextlib.contextmanager
def _django() -> Iterator[None]:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    import django

    django.setup()
    yield


def main(argv: list[str] | None = None) -> int:
    """Run the selected parts and print their tables."""
    args = parse_args(argv)
    if args.worker:
        with _django():
            out = report_worker(args.runs) if args.worker == "report" else tracker_parts_worker(args.session_turns)
        print(json.dumps(out))
        return 0
    report: ReportResult | str | None = None
    marker: dict[str, Any] | None = None
    trackers: dict[str, TrackerResult | str] = {}
    with timed("benchmark"):
        if args.part in {"report", "all"}:
            try:
                marker = prepare_report_part(args)
            except BackendUnavailable as exc:
                print(f"[report] skipped: {exc}", flush=True)
                report = str(exc)
        if args.part in {"tracker", "all"}:  # between seeding and timing: the seed's rows age meanwhile
            backends: list[SqliteBackend | PostgresBackend] = []
            if args.backend in {"sqlite", "both"}:
                backends.append(SqliteBackend())
            if args.backend in {"postgres", "both"}:
                backends.append(PostgresBackend())
            for backend in backends:
                try:
                    trackers[backend.key] = run_tracker_part(backend, args)
                except BackendUnavailable as exc:
                    print(f"[{backend.label}] skipped: {exc}", flush=True)
                    trackers[backend.key] = str(exc)
        if marker is not None:
            report = run_report_part(args, marker)
    print(f"\nParley analytics at scale — {os.cpu_count()} CPUs shared by clients, server, Postgres and Redis")
    if isinstance(report, ReportResult):
        print_report_part(report)
    elif report is not None:
        print(f"\nA. skipped — {report}")
    if trackers:
        print_tracker_part(trackers, args)
    if args.json:
        raw: dict[str, Any] = {}
        if isinstance(report, ReportResult):
            raw["report"] = asdict(report) | {"figures": report.figures()}
        raw["tracker"] = {
            key: asdict(value) if isinstance(value, TrackerResult) else {"skipped": value}
            for key, value in trackers.items()
        }
        args.json.write_text(json.dumps(raw, indent=2, default=str))
    measured = [value for value in trackers.values() if isinstance(value, TrackerResult)]
    return 0 if all(result.durable and result.problems == 0 for result in measured) else 1


if __name__ == "__main__":
    sys.exit(main())
