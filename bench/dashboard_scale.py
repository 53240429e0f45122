"""Dashboard at scale: the 30-day summary API and the messages export over a million messages.

Usage (from the project root)::

    .venv/bin/python bench/dashboard_scale.py [--requests 60] [--export-runs 2] [--raw-runs 3]
        [--json out.json] [--sessions 100000] [--days 30] [--seed 1] [--reseed]
        [--application module:app]

Database: `parley_scale` on the local Postgres, shared with `bench/analytics_scale.py` and seeded
the same way (`manage.py seed_demo_data`: 100,000 sessions ≈ 1,000,000 messages over 30 days;
created, migrated and seeded only when it does not already hold that seed). This benchmark only
reads it, apart from one staff user (`bench-staff`) it creates if missing.

A daphne process serves `project.asgi:application` on that database (daphne itself rather than
`manage.py serve`, whose startup pass rebuilds analytics rows and rollups: that would write to the
shared database under the other benchmark). A `requests` session signs in through the admin login
form (CSRF token and all), then, side by side in the same run:

A. Summary API, `--requests` rounds, each: `/healthz` (the floor of an HTTP request through daphne
   and Django), `api/summary/?range=7d`, `api/summary/?range=30d`. Client-side latency p50, p95 and
   max. Baseline: the same 30 days' headline numbers computed straight from the chat tables in SQL
   (`analytics_scale.raw_summary`, what the rollups save), in a Django process, `--raw-runs` times;
   and `selectors.summary + breakdowns` in that process, to split the API's time between the
   selectors and HTTP. Target: p95 of the 30-day summary ≤ 150 ms.
B. Messages export, `--export-runs` rounds, each: `COPY (SELECT <the export's columns and joins>)
   TO STDOUT (FORMAT csv)` read with psycopg (the baseline: Postgres writing CSV itself, no HTTP,
   no Python per row), then `export/messages/` (CSV) over every message, streamed by `requests`
   and counted as it arrives (rows end with CRLF; newlines inside text are bare LF). The server's
   resident memory is polled every 20 ms during the download and its high-water mark (VmHWM) read
   afterwards; server CPU per row from /proc. One `format=jsonl` export follows for comparison.
   Targets: ≥ 50,000 rows/s and server peak memory ≤ 150 MB.
C. A slow client reads the CSV export 64 KB every 10 ms (≈ 6 MB/s, a remote client) for 8 s, then
   hangs up: the server's RSS meanwhile. It shows whether the server waits for the client (a few
   chunks in memory) or buffers what it produced ahead of it.

Client, server and Postgres share the machine (see docs/benchmarks.md): the ratios are the robust
figures. Exit status 1 when a request failed or an export's row count differs from the table's.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as `python bench/dashboard_scale.py`: make `bench` importable
    sys.path.insert(0, str(ROOT))

import requests  # noqa: E402

from bench.analytics_scale import (  # noqa: E402
    SCALE_DATABASE,
    SCALE_URL,
    ensure_seeded,
    raw_summary,
    recreate_database,
    scale_env,
)
from bench.harness import (  # noqa: E402
    CLK_TCK,
    PYTHON,
    BackendUnavailable,
    DaphneServer,
    fmt,
    percentile,
    process_cpu_seconds,
    timed,
)

TARGET_P95_MS = 150.0
TARGET_ROWS_PER_S = 50_000
TARGET_PEAK_MB = 150.0
STAFF_USERNAME = "bench-staff"
STAFF_PASSWORD = "bench-staff-password"  # a local benchmark database only
BASE = "/admin/chat-analytics/"
RSS_POLL_S = 0.02
SLOW_READ_BYTES = 64 * 1024
SLOW_READ_PAUSE_S = 0.01  # ≈ 6 MB/s at most: a remote client, not loopback
SLOW_READ_S = 8.0
EXPORT_TIMEOUT_S = 900
WORKER_TIMEOUT_S = 900

# The export's rows as Postgres writes them itself: same columns, joins and order as
# analytics.exports.MESSAGES (no formula neutralisation: that is per-cell Python work).
COPY_SQL = """
COPY (
    SELECT s.public_id, m.public_id, m.seq, m.role, m.status, m.text, m.provider, m.model, m.ttft_ms,
           m.duration_ms, m.input_tokens, m.output_tokens, m.cached, m.error_code, f.rating, f.reason,
           f.comment, to_char(m.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"'),
           to_char(m.finished_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"')
    FROM assistant_chatmessage m
    JOIN assistant_chatsession s ON s.id = m.session_id
    LEFT JOIN assistant_feedback f ON f.message_id = m.id
    ORDER BY m.id
) TO STDOUT (FORMAT csv, HEADER)
"""


def median(values: list[float]) -> float:
    """The median, NaN for no values."""
    return statistics.median(values) if values else float("nan")


# --- the Django side (a worker process on parley_scale) ------------------------------------
def prepare_worker() -> dict[str, Any]:
    """Create the staff user if missing; the table sizes and the 30-day period the API will read."""
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.utils import timezone

    from analytics.selectors import Period

    user, created = get_user_model().objects.get_or_create(
        username=STAFF_USERNAME, defaults={"is_staff": True, "is_active": True}
    )
    if created or not user.check_password(STAFF_PASSWORD) or not (user.is_staff and user.is_active):
        user.is_staff = user.is_active = True
        user.set_password(STAFF_PASSWORD)
        user.save()
    rows = {}
    with connection.cursor() as cursor:
        for table in (
            "assistant_chatsession",
            "assistant_chatmessage",
            "assistant_feedback",
            "analytics_chatanalytics",
            "analytics_dailysessionrollup",
            "analytics_dailyproviderrollup",
        ):
            cursor.execute(f"SELECT count(*) FROM {table}")
            rows[table] = cursor.fetchone()[0]
    period = Period.ending(timezone.localdate(), 30)
    return {"rows": rows, "period": {"start": str(period.start), "end": str(period.end)}, "staff_created": created}


def timing_worker(runs: int) -> dict[str, Any]:
    """In-process timings on the 30 days the API reads: the selectors, and the raw-table baseline."""
    from django.db import connection
    from django.utils import timezone

    from analytics import rollup, selectors

    period = selectors.Period.ending(timezone.localdate(), 30)
    start, end = rollup.day_bounds(period.start)[0], rollup.day_bounds(period.end)[1]
    timings: dict[str, list[float]] = {"selectors": [], "raw": []}
    selectors.summary(period)  # warm caches and lazy imports
    for _ in range(runs):  # interleaved: drift on the shared machine hits both alike
        started = time.perf_counter()
        selectors.summary(period)
        selectors.breakdowns(period)
        timings["selectors"].append(time.perf_counter() - started)
        started = time.perf_counter()
        raw_summary(connection, start, end)
        timings["raw"].append(time.perf_counter() - started)
    return timings


def run_worker(name: str, env: dict[str, str], *extra: str) -> dict[str, Any]:
    """Run one worker in a Django process on parley_scale; its JSON answer."""
    done = subprocess.run(
        [str(PYTHON), __file__, "--worker", name, *extra],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True, check=True, timeout=WORKER_TIMEOUT_S,
    )  # fmt: skip
    return json.loads(done.stdout)


# --- the client side ------------------------------------------------------------------------
def sign_in(base_url: str) -> requests.Session:
    """A session signed in as the staff user through the admin login form."""
    session = requests.Session()
    page = session.get(f"{base_url}/admin/login/", timeout=30)
    page.raise_for_status()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
    if token is None:
        raise RuntimeError("no CSRF token on the admin login page")
    answer = session.post(
        f"{base_url}/admin/login/?next={BASE}",
        data={"username": STAFF_USERNAME, "password": STAFF_PASSWORD, "csrfmiddlewaretoken": token.group(1),
              "next": BASE},
        headers={"Referer": f"{base_url}/admin/login/"},
        timeout=30,
        allow_redirects=False,
    )  # fmt: skip
    if answer.status_code != 302 or "sessionid" not in session.cookies:
        raise RuntimeError(f"admin login failed: {answer.status_code} {answer.text[:300]}")
    return session


@dataclass(slots=True)
class SummaryResult:
    """Part A's figures (milliseconds)."""

    latencies_ms: dict[str, list[float]] = field(default_factory=dict)
    selectors_ms: list[float] = field(default_factory=list)
    raw_ms: list[float] = field(default_factory=list)
    sessions_30d: int = 0
    failures: int = 0
    rss_start_mb: float = float("nan")
    rss_end_mb: float = float("nan")

    def stats(self, key: str) -> dict[str, float]:
        """p50, p95 and max of one endpoint."""
        values = self.latencies_ms[key]
        return {"p50": percentile(values, 0.5), "p95": percentile(values, 0.95), "max": max(values)}


ENDPOINTS = {
    "healthz": "/healthz",
    "summary_7d": f"{BASE}api/summary/?range=7d",
    "summary_30d": f"{BASE}api/summary/?range=30d",
}


def run_summary(base_url: str, session: requests.Session, pid: int, rounds: int) -> SummaryResult:
    """`rounds` rounds of the three endpoints, interleaved, after a few warm-up rounds."""
    result = SummaryResult(latencies_ms={key: [] for key in ENDPOINTS}, rss_start_mb=status_mb(pid, "VmRSS"))
    for round_ in range(rounds + 5):
        for key, path in ENDPOINTS.items():
            started = time.perf_counter()
            response = session.get(f"{base_url}{path}", timeout=60)
            elapsed = 1000 * (time.perf_counter() - started)
            if response.status_code != 200:
                result.failures += 1
                print(f"[summary] {path}: {response.status_code} {response.text[:200]}", flush=True)
                continue
            if key == "summary_30d":
                result.sessions_30d = response.json()["metrics"]["sessions"]
            if round_ >= 5:
                result.latencies_ms[key].append(elapsed)
    result.rss_end_mb = status_mb(pid, "VmRSS")
    return result


class MemoryPoller:
    """Polls a process's VmRSS in a thread; `peak_mb` is the highest value seen."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> MemoryPoller:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_mb = max(self.peak_mb, status_mb(self.pid, "VmRSS"))
            self._stop.wait(RSS_POLL_S)


def status_mb(pid: int, key: str) -> float:
    """A memory figure (VmRSS, VmHWM…) of /proc/PID/status, in MB."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(f"{key}:"):
                return int(line.split()[1]) / 1024
    return float("nan")


@dataclass(slots=True)
class Download:
    """One export or COPY: rows, bytes, seconds, and for the server its CPU and memory."""

    label: str
    rows: int
    bytes: int
    seconds: float
    first_byte_s: float = float("nan")
    server_cpu_s: float = float("nan")
    postgres_cpu_s: float = float("nan")
    client_cpu_s: float = float("nan")
    rss_before_mb: float = float("nan")
    rss_peak_mb: float = float("nan")

    @property
    def rows_per_s(self) -> float:
        """Throughput."""
        return self.rows / self.seconds if self.seconds else float("nan")


def download_export(base_url: str, session: requests.Session, pid: int, fmt: str) -> Download:
    """Stream the whole messages export, counting rows as they come, with the server's CPU and RSS."""
    terminator = b"\r\n" if fmt == "csv" else b"\n"
    rss_before = status_mb(pid, "VmRSS")
    cpu_before, postgres_before, client_before = process_cpu_seconds(pid), postgres_cpu(), time.process_time()
    rows = size = 0
    tail = b""
    with MemoryPoller(pid) as poller:
        started = time.perf_counter()
        first_byte = float("nan")
        with session.get(
            f"{base_url}{BASE}export/messages/", params={"format": fmt}, stream=True, timeout=EXPORT_TIMEOUT_S
        ) as response:
            response.raise_for_status()
            for chunk in response.iter_content(chunk_size=1 << 20):
                if size == 0:
                    first_byte = time.perf_counter() - started
                size += len(chunk)
                joined = tail + chunk  # a CRLF may straddle two chunks
                rows += joined.count(terminator)
                tail = joined[-1:] if joined.endswith(terminator[:1]) and len(terminator) > 1 else b""
        seconds = time.perf_counter() - started
    if fmt == "csv":
        rows -= 1  # the header row
    return Download(
        label=f"export/messages/ ({fmt})",
        rows=rows,
        bytes=size,
        seconds=seconds,
        first_byte_s=first_byte,
        server_cpu_s=process_cpu_seconds(pid) - cpu_before,
        postgres_cpu_s=postgres_cpu_since(postgres_before),
        client_cpu_s=time.process_time() - client_before,
        rss_before_mb=rss_before,
        rss_peak_mb=poller.peak_mb,
    )


def copy_baseline() -> Download:
    """The same rows as CSV from Postgres's COPY, read with psycopg."""
    import psycopg

    size = 0
    postgres_before, client_before = postgres_cpu(), time.process_time()
    started = time.perf_counter()
    with psycopg.connect(SCALE_URL, connect_timeout=5) as connection, connection.cursor() as cursor:
        with cursor.copy(COPY_SQL) as copy:
            for data in copy:
                size += len(data)
        rows = connection.execute("SELECT count(*) FROM assistant_chatmessage").fetchone()[0]  # type: ignore[index]
    seconds = time.perf_counter() - started
    return Download(
        label="COPY … TO STDOUT (csv)",
        rows=rows,
        bytes=size,
        seconds=seconds,
        postgres_cpu_s=postgres_cpu_since(postgres_before),
        client_cpu_s=time.process_time() - client_before,
    )


def postgres_cpu() -> dict[int, float]:
    """CPU seconds of each running Postgres process (backends included), by pid."""
    out = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
        except OSError:
            continue
        if raw[raw.find("(") + 1 : raw.rfind(")")] == "postgres":
            fields = raw.rsplit(")", 1)[1].split()
            out[int(entry.name)] = (int(fields[11]) + int(fields[12])) / CLK_TCK
    return out


def postgres_cpu_since(before: dict[int, float]) -> float:
    """Postgres CPU seconds used since `before` by the processes running now (an exited backend's
    share is lost: summing all processes would make its earlier CPU count as negative)."""
    return sum(seconds - before.get(pid, 0.0) for pid, seconds in postgres_cpu().items())


@dataclass(slots=True)
class ExportResult:
    """Part B's downloads."""

    table_rows: int
    copies: list[Download] = field(default_factory=list)
    exports: list[Download] = field(default_factory=list)
    jsonl: Download | None = None
    vm_hwm_mb: float = float("nan")
    slow: dict[str, float] = field(default_factory=dict)


def run_exports(base_url: str, session: requests.Session, pid: int, runs: int, table_rows: int) -> ExportResult:
    """COPY then the CSV export, `runs` times, then one JSON lines export."""
    result = ExportResult(table_rows=table_rows)
    for run in range(runs):
        print(f"[export] run {run + 1}/{runs}: COPY baseline…", flush=True)
        result.copies.append(copy_baseline())
        print(f"[export] run {run + 1}/{runs}: export/messages/ (csv)…", flush=True)
        result.exports.append(download_export(base_url, session, pid, "csv"))
    print("[export] export/messages/?format=jsonl…", flush=True)
    result.jsonl = download_export(base_url, session, pid, "jsonl")
    result.vm_hwm_mb = status_mb(pid, "VmHWM")
    print(f"[export] a slow reader ({SLOW_READ_BYTES // 1024} KB every {1000 * SLOW_READ_PAUSE_S:g} ms) for "
          f"{SLOW_READ_S:g} s…", flush=True)  # fmt: skip
    result.slow = slow_reader(base_url, session, pid)
    return result


def slow_reader(base_url: str, session: requests.Session, pid: int) -> dict[str, float]:
    """Read the CSV export slowly for SLOW_READ_S seconds, then hang up; the server's RSS meanwhile.

    A server that waits for the client holds a few chunks; one that does not buffers everything
    it has produced and the client has not read yet.
    """
    before = status_mb(pid, "VmRSS")
    size = 0
    with MemoryPoller(pid) as poller:
        started = time.monotonic()
        with session.get(f"{base_url}{BASE}export/messages/", stream=True, timeout=EXPORT_TIMEOUT_S) as response:
            response.raise_for_status()
            for chunk in response.iter_content(chunk_size=SLOW_READ_BYTES):
                size += len(chunk)
                if time.monotonic() - started > SLOW_READ_S:
                    break
                time.sleep(SLOW_READ_PAUSE_S)
    time.sleep(1)  # the server notices the hang-up
    return {"read_mb": size / 1e6, "seconds": SLOW_READ_S, "rss_before_mb": before, "rss_peak_mb": poller.peak_mb,
            "rss_after_mb": status_mb(pid, "VmRSS")}  # fmt: skip


# --- report ---------------------------------------------------------------------------------
def print_results(prepared: dict[str, Any], summary: SummaryResult, exports: ExportResult, marker: dict) -> bool:
    """Both tables and the targets; True when every check passed (targets are reported, not enforced)."""
    print(f"\nParley dashboard at scale — {os.cpu_count()} CPUs shared by client, server and Postgres")
    print(f"database `{SCALE_DATABASE}`: {marker.get('summary', '?')}")
    for table, count in prepared["rows"].items():
        print(f"  {table:<40}{count:>12,}")
    period = prepared["period"]
    print(f"\nA. Summary API, {len(summary.latencies_ms['summary_30d'])} rounds (30 days: {period['start']} to "
          f"{period['end']}, {summary.sessions_30d:,} sessions)\n")  # fmt: skip
    print(f"  {'':<52}{'p50 ms':>10}{'p95 ms':>10}{'max ms':>10}")
    labels = {"healthz": "/healthz (HTTP floor)", "summary_7d": "api/summary/?range=7d",
              "summary_30d": "api/summary/?range=30d"}  # fmt: skip
    for key, label in labels.items():
        stats = summary.stats(key)
        print(f"  {label:<52}{fmt(stats['p50'], 1):>10}{fmt(stats['p95'], 1):>10}{fmt(stats['max'], 1):>10}")
    selectors_ms = median(summary.selectors_ms)
    raw_ms = median(summary.raw_ms)
    p95 = summary.stats("summary_30d")["p95"]
    p50 = summary.stats("summary_30d")["p50"]
    print(f"  {'selectors.summary + breakdowns, 30 days, in-process (median)':<72}{fmt(selectors_ms, 1):>10}")
    print(f"  {'baseline: 30 days from the raw chat tables in SQL (median)':<72}{fmt(raw_ms, 1):>10}")
    print(f"  {'ratio raw tables ÷ API p50':<72}{fmt(raw_ms / p50, 0):>9}×")
    print(f"  {'ratio API p50 ÷ /healthz p50':<72}{fmt(p50 / summary.stats('healthz')['p50'], 1):>9}×")
    ok = summary.failures == 0
    print(f"  failed requests: {summary.failures}; server RSS {summary.rss_start_mb:.0f} MB after sign-in, "
          f"{summary.rss_end_mb:.0f} MB after part A")  # fmt: skip
    verdict = "MET" if p95 <= TARGET_P95_MS else "NOT MET"
    print(f"  Target: 30-day summary p95 ≤ {TARGET_P95_MS:g} ms → {p95:.1f} ms: {verdict}")

    print(f"\nB. Messages export over every message ({exports.table_rows:,} rows in the table)\n")
    print(f"  {'':<34}{'':>11}{'':>8}{'':>8}{'':>10}{'':>9}{'CPU µs per row':^24}")
    header = f"  {'':<34}{'rows':>11}{'MB':>8}{'s':>8}{'rows/s':>10}{'TTFB ms':>9}{'server':>8}{'pg':>8}{'client':>8}"
    print(f"{header}{'server RSS MB':>16}")
    downloads = [item for pair in zip(exports.copies, exports.exports, strict=True) for item in pair]
    if exports.jsonl is not None:
        downloads.append(exports.jsonl)
    for item in downloads:
        cpu = [fmt(1e6 * value / item.rows, 1) for value in (item.server_cpu_s, item.postgres_cpu_s, item.client_cpu_s)]
        rss = "-" if item.rss_before_mb != item.rss_before_mb else f"{item.rss_before_mb:.0f} → {item.rss_peak_mb:.0f}"
        ttfb = fmt(1000 * item.first_byte_s, 0)
        print(f"  {item.label:<34}{item.rows:>11,}{item.bytes / 1e6:>8.0f}{item.seconds:>8.1f}"
              f"{fmt(item.rows_per_s):>10}{ttfb:>9}{cpu[0]:>8}{cpu[1]:>8}{cpu[2]:>8}{rss:>16}")  # fmt: skip
    rates = [item.rows_per_s for item in exports.exports]
    copy_rate = median([item.rows_per_s for item in exports.copies])
    print(f"  {'ratio export ÷ COPY (rows/s, medians)':<72}{fmt(median(rates) / copy_rate, 2):>9}×")
    print(f"  {'server VmHWM (whole run: startup, part A, every export)':<72}{fmt(exports.vm_hwm_mb, 0):>7} MB")
    for item in [*exports.exports, *([exports.jsonl] if exports.jsonl else [])]:
        if item.rows != exports.table_rows:
            ok = False
            print(f"  CHECK FAILED: {item.label} sent {item.rows:,} rows, the table has {exports.table_rows:,}")
    slowest = min(rates)
    peak = max([exports.vm_hwm_mb, *(item.rss_peak_mb for item in exports.exports)])
    print(f"  Target: ≥ {TARGET_ROWS_PER_S:,} rows/s → slowest run {slowest:,.0f}: "
          f"{'MET' if slowest >= TARGET_ROWS_PER_S else 'NOT MET'}")  # fmt: skip
    print(f"  Target: server peak memory ≤ {TARGET_PEAK_MB:g} MB → {peak:.0f} MB: "
          f"{'MET' if peak <= TARGET_PEAK_MB else 'NOT MET'}")  # fmt: skip
    slow = exports.slow
    if slow:
        print(f"\nC. A slow client: the CSV export read {SLOW_READ_BYTES // 1024} KB at a time every "
              f"{1000 * SLOW_READ_PAUSE_S:g} ms for {slow['seconds']:g} s, then dropped\n")  # fmt: skip
        print(f"  read {slow['read_mb']:.0f} MB; server RSS {slow['rss_before_mb']:.0f} MB before, "
              f"{slow['rss_peak_mb']:.0f} MB at most meanwhile, {slow['rss_after_mb']:.0f} MB after")  # fmt: skip
        verdict = "MET" if slow["rss_peak_mb"] <= TARGET_PEAK_MB else "NOT MET"
        print(f"  Server peak memory ≤ {TARGET_PEAK_MB:g} MB with a slow client too → "
              f"{slow['rss_peak_mb']:.0f} MB: {verdict}")  # fmt: skip
    return ok


# --- main -----------------------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=60, help="rounds of the summary endpoints (default 60)")
    parser.add_argument("--export-runs", type=int, default=2, help="COPY + CSV export rounds (default 2)")
    parser.add_argument("--raw-runs", type=int, default=3, help="runs of the raw-table baseline (default 3)")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    parser.add_argument("--sessions", type=int, default=100_000, help="seed: demo sessions (default 100000)")
    parser.add_argument("--days", type=int, default=30, help="seed: over this many days (default 30)")
    parser.add_argument("--seed", type=int, default=1, help="seed: seed_demo_data --seed (default 1)")
    parser.add_argument("--reseed", action="store_true", help="seed again even if the same seed is there")
    parser.add_argument(
        "--application", default="project.asgi:application", help="the ASGI app daphne serves (default Parley's)"
    )
    parser.add_argument("--worker", choices=("prepare", "timing"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not 1 <= args.requests <= 10_000 or not 1 <= args.export_runs <= 20 or not 1 <= args.raw_runs <= 100:
        parser.error("expected 1 ≤ requests ≤ 10000, 1 ≤ export-runs ≤ 20, 1 ≤ raw-runs ≤ 100")
    return args


def main(argv: list[str] | None = None) -> int:
    """Seed or reuse parley_scale, serve it, and measure both parts."""
    args = parse_args(argv)
    if args.worker:
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
        import django

        django.setup()
        print(json.dumps(prepare_worker() if args.worker == "prepare" else timing_worker(args.raw_runs)))
        return 0
    env = scale_env()
    with timed("benchmark"):
        try:
            recreate_database(drop=False)
        except BackendUnavailable as exc:
            print(f"skipped: {exc}", flush=True)
            return 0
        marker = ensure_seeded(args, env)
        prepared = run_worker("prepare", env)
        with tempfile.TemporaryDirectory(prefix="parley-dashboard-") as workdir:
            log = Path(workdir) / "server.log"
            with DaphneServer(env, log, application=args.application) as server:
                base_url = f"http://127.0.0.1:{server.port}"
                session = sign_in(base_url)
                print(f"[summary] {args.requests} rounds of /healthz, 7-day and 30-day summaries…", flush=True)
                summary = run_summary(base_url, session, server.pid, args.requests)
                print(f"[summary] selectors and the raw-table baseline in-process ({args.raw_runs} runs)…", flush=True)
                timings = run_worker("timing", env, "--raw-runs", str(args.raw_runs))
                summary.selectors_ms = [1000 * value for value in timings["selectors"]]
                summary.raw_ms = [1000 * value for value in timings["raw"]]
                table_rows = prepared["rows"]["assistant_chatmessage"]
                exports = run_exports(base_url, session, server.pid, args.export_runs, table_rows)
                errors = [line for line in log.read_text(errors="replace").splitlines() if " ERROR " in line]
    ok = print_results(prepared, summary, exports, marker) and not errors
    for line in errors[:10]:
        print(f"server ERROR: {line}")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "prepared": prepared,
                    "summary": asdict(summary),
                    "exports": asdict(exports),
                    "marker": marker,
                },
                indent=2,
                default=str,
            )
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
