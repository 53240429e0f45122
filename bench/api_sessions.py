"""The staff API's sessions listing at scale: GET /api/v1/sessions/ with each filter and deep pages.

Usage (from the project root)::

    .venv/bin/python bench/api_sessions.py [--requests 30] [--json out.json]
        [--sessions 100000] [--days 30] [--seed 1] [--reseed] [--application module:app]

Database `parley_api_scale` on the local Postgres (its own: the other scale benchmarks keep
`parley_scale`), created, migrated and seeded by `manage.py seed_demo_data` (100,000 sessions ≈
1,000,000 messages over 30 days, with their analytics rows, provider calls and feedback) unless
it already holds that seed (the options are kept as the database's comment). A worker process
then gives every 20th session the source `api` and every 100th `import:csv` (the demo knows only
the widget), plants two words in every 100,000th and every 1,000th visitor message (the demo's
vocabulary is small: none of its words is rare), runs ANALYZE, makes an API key with the `read`
scope, and picks the filter values from the data: the most and least common topic and main
provider, the word of visitor messages in the most sessions, one in about 2 % of them, the one in
the fewest; and cursors deep in the walk (the page after the 1,000th, 10,000th, 50,000th and
99,900th session, and deep in two filtered walks).

A daphne process serves `project.asgi:application` (not `manage.py serve`, whose startup pass
rebuilds analytics) with the key's rate limit off. For each case, `--requests` GETs after 3
warm-ups, one at a time: client-side latency p50, p95 and max, and the page's size; beside them
`/healthz` (the floor of any request through daphne and Django) and, in the worker process, the
listing's selector alone (`sessions_page`: its two queries and the rows' assembly), median of 5.
Target: p95 ≤ 100 ms for every case. Exit status 1 when a request failed or a target was missed.

Client, server and Postgres share the machine (see docs/benchmarks.md): the ratios to the floor
are the robust figures.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as `python bench/api_sessions.py`: make `bench` importable
    sys.path.insert(0, str(ROOT))

import requests  # noqa: E402

from bench.harness import (  # noqa: E402
    POSTGRES_ADMIN_URL,
    PYTHON,
    BackendUnavailable,
    DaphneServer,
    base_env,
    fmt,
    migrate,
    percentile,
    timed,
)

DATABASE = "parley_api_scale"
DATABASE_URL = f"postgres://postgres@127.0.0.1:5432/{DATABASE}"
TARGET_P95_MS = 100.0
WARMUP = 3
SEED_TIMEOUT_S = 3 * 3600
WORKER_TIMEOUT_S = 900
KEY_NAME = "bench api_sessions"
URL = "/api/v1/sessions/"
#: Words added to every N-th visitor message (the demo's vocabulary has no truly rare word).
PLANTED = {"quokkazephyr": 100_000, "zephyrquokka": 1_000}


# --- the database -----------------------------------------------------------------------------
def env_for() -> dict[str, str]:
    """The environment of every process: the real knowledge base, this database, no key limit."""
    env = base_env(ROOT / "docs" / "knowledge")
    env.update(DATABASE_URL=DATABASE_URL, ANALYTICS_RECOVERY_INTERVAL_S="0", API_KEY_RATE_LIMIT_PER_MINUTE="0")
    return env


def _admin() -> Any:
    import psycopg

    try:
        return psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        raise BackendUnavailable(f"Postgres at {POSTGRES_ADMIN_URL} is unreachable: {exc}") from exc


def read_marker() -> dict[str, Any] | None:
    """The last completed seed (the database's comment), if any."""
    with _admin() as admin:
        row = admin.execute(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s", [DATABASE]
        ).fetchone()
    if row is None:
        return None
    try:
        return json.loads(row[0] or "null")
    except json.JSONDecodeError:
        return {}


def ensure_seeded(args: argparse.Namespace, env: dict[str, str]) -> dict[str, Any]:
    """The database migrated and holding the seed the options ask for; its marker."""
    from psycopg import sql

    wanted = {"sessions": args.sessions, "days": args.days, "seed": args.seed}
    marker = None if args.reseed else read_marker()
    if marker and all(marker.get(key) == value for key, value in wanted.items()):
        print(f"[seed] {DATABASE} already holds {wanted} (seeded {marker['seeded_at']}): reusing it", flush=True)
        migrate(env)
        return marker
    print(f"[seed] seeding {DATABASE} with {wanted}: this takes minutes…", flush=True)
    name = sql.Identifier(DATABASE)
    with _admin() as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(name))
    migrate(env)
    command = [str(PYTHON), "manage.py", "seed_demo_data", "--no-progress",
               *(f"--{key}={value}" for key, value in wanted.items())]  # fmt: skip
    started = time.monotonic()
    done = subprocess.run(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True, check=True, timeout=SEED_TIMEOUT_S
    )
    marker = dict(wanted, seconds=round(time.monotonic() - started, 1), summary=done.stdout.strip(),
                  seeded_at=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))  # fmt: skip
    with _admin() as admin:
        admin.execute(sql.SQL("COMMENT ON DATABASE {} IS {}").format(name, sql.Literal(json.dumps(marker))))
    print(f"[seed] {marker['summary']} (wall {marker['seconds']:.0f} s)", flush=True)
    return marker


# --- the Django side (a worker process) -------------------------------------------------------
def prepare_worker() -> dict[str, Any]:
    """Sources, ANALYZE, a key, the filter values and the deep cursors; table sizes and indexes."""
    from django.db import connection
    from django.utils import timezone

    from api import keys
    from api.models import ApiKey
    from api.staff import params
    from api.staff.pagination import Cursor, encode_cursor
    from api.staff.selectors import sessions

    with connection.cursor() as cursor:
        cursor.execute("UPDATE assistant_chatsession SET source = 'api' WHERE id % 20 = 0 AND source <> 'api'")
        cursor.execute(
            "UPDATE assistant_chatsession SET source = 'import:csv' WHERE id % 100 = 1 AND source <> 'import:csv'"
        )
        # Planted words: one in about 10 visitor messages, one in about 1,000 (1 % of sessions).
        for word, modulo in PLANTED.items():
            cursor.execute(
                f"UPDATE assistant_chatmessage SET text = text || ' {word}' WHERE role = 'user' AND id % {modulo} = 7 "
                f"AND text NOT LIKE '%{word}%'"
            )
        cursor.execute("ANALYZE")
        rows = {}
        for table in ("assistant_chatsession", "assistant_chatmessage", "analytics_chatanalytics",
                      "assistant_providercall"):  # fmt: skip
            cursor.execute(f"SELECT count(*) FROM {table}")
            rows[table] = cursor.fetchone()[0]
        cursor.execute(
            "SELECT topic, count(*) FROM analytics_chatanalytics, jsonb_array_elements_text(topics_discussed) AS topic "
            "GROUP BY topic ORDER BY count(*) DESC, topic"
        )
        topics = cursor.fetchall()
        cursor.execute(
            "SELECT provider, count(*) FROM analytics_chatanalytics WHERE provider <> '' GROUP BY provider "
            "ORDER BY count(*) DESC, provider"
        )
        providers = cursor.fetchall()
        cursor.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename IN "
            "('assistant_chatsession', 'assistant_chatmessage', 'analytics_chatanalytics') ORDER BY indexname"
        )
        indexes = dict(cursor.fetchall())
        cursor.execute("SELECT extname FROM pg_extension ORDER BY extname")
        extensions = [row[0] for row in cursor.fetchall()]
    ApiKey.objects.filter(name=KEY_NAME).delete()
    _, key = keys.key_create(name=KEY_NAME, scopes=["read"])
    common_word, medium_word, rare_word = _words()

    def cursor_at(offset: int, **query: str) -> str:
        parsed = params.session_query(_querydict(query))
        at, pk = sessions.listed(parsed).values_list("created_at", "pk")[offset]
        return encode_cursor(Cursor(created_at=at, pk=pk))

    yesterday = timezone.localdate() - timedelta(days=1)
    week_start = timezone.localdate() - timedelta(days=6)
    cases: list[tuple[str, dict[str, str]]] = [
        ("no filter, first page", {}),
        ("limit=100", {"limit": "100"}),
        ("start_date=end_date=yesterday", {"start_date": str(yesterday), "end_date": str(yesterday)}),
        ("start_date = 7 days ago", {"start_date": str(week_start)}),
        ("user_type=client", {"user_type": "client"}),
        ("user_type=provider", {"user_type": "provider"}),
        ("status=active", {"status": "active"}),
        ("status=closed", {"status": "closed"}),
        ("resolved=true", {"resolved": "true"}),
        ("resolved=false", {"resolved": "false"}),
        ("escalated=true", {"escalated": "true"}),
        ("escalated=false", {"escalated": "false"}),
        ("satisfied_only=true", {"satisfied_only": "true"}),
        (f"topic={topics[0][0]} (most common)", {"topic": topics[0][0]}),
        (f"topic={topics[-1][0]} (least common)", {"topic": topics[-1][0]}),
        ("topic=(none has it)", {"topic": "no such topic at all"}),
        (f"provider={providers[0][0]} (most common)", {"provider": providers[0][0]}),
        (f"provider={providers[-1][0]} (least common)", {"provider": providers[-1][0]}),
        ("source=api (5 %)", {"source": "api"}),
        ("source=import:csv (1 %)", {"source": "import:csv"}),
        ("source=widget", {"source": "widget"}),
        (f"q={common_word} (common)", {"q": common_word}),
        (f"q={medium_word} (about 2 % of sessions)", {"q": medium_word}),
        (f"q={rare_word} (rare)", {"q": rare_word}),
        ("q=zqxjkv (in no message)", {"q": "zqxjkv"}),
        *((f"q={word} (planted in 1 of {modulo:,} messages)", {"q": word}) for word, modulo in PLANTED.items()),
        ("client + resolved=false + escalated=true",
         {"user_type": "client", "resolved": "false", "escalated": "true"}),
        ("source=api + closed + satisfied_only",
         {"source": "api", "status": "closed", "satisfied_only": "true"}),
        (f"last 7 days + provider + topic={topics[0][0]}",
         {"start_date": str(week_start), "provider": providers[0][0], "topic": topics[0][0]}),
        (f"q={common_word} + user_type=anonymous", {"q": common_word, "user_type": "anonymous"}),
        (f"q={common_word} + source=import:csv + satisfied_only",
         {"q": common_word, "source": "import:csv", "satisfied_only": "true"}),
        ("source=import:csv + escalated + topic (rare)",
         {"source": "import:csv", "escalated": "true", "topic": topics[-1][0]}),
    ]  # fmt: skip
    total = rows["assistant_chatsession"]
    for offset in (1_000, 10_000, 50_000, total - 100):
        if offset < total:
            cases.append((f"page after the {offset:,}th session", {"cursor": cursor_at(offset)}))
    escalated = sessions.listed(params.session_query(_querydict({"escalated": "true"}))).count()
    cases.append((f"escalated=true, page after {escalated // 2:,} of {escalated:,}",
                  {"escalated": "true", "cursor": cursor_at(escalated // 2, escalated="true")}))  # fmt: skip
    matching = sessions.listed(params.session_query(_querydict({"q": common_word}))).count()
    cases.append((f"q={common_word}, page after {matching // 2:,} of {matching:,}",
                  {"q": common_word, "cursor": cursor_at(matching // 2, q=common_word)}))  # fmt: skip
    return {
        "rows": rows,
        "key": key,
        "cases": cases,
        "indexes": indexes,
        "extensions": extensions,
        "topics": {"most": topics[0], "least": topics[-1], "count": len(topics)},
        "providers": providers,
    }


def _words() -> tuple[str, str, str]:
    """Words of visitor messages: in the most sessions, in about 2 % of them, and in the fewest."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT word, count(DISTINCT session_id) FROM (SELECT session_id, "
            "regexp_split_to_table(lower(text), '[^a-z]+') AS word FROM assistant_chatmessage WHERE role = 'user') "
            "AS words WHERE length(word) >= 5 GROUP BY word ORDER BY 2 DESC, 1"
        )
        counts = [(word, count) for word, count in cursor.fetchall() if word not in PLANTED]
        cursor.execute("SELECT count(*) FROM assistant_chatsession")
        sessions = cursor.fetchone()[0]
    common, rare = counts[0][0], counts[-1][0]
    medium = min(counts, key=lambda item: abs(item[1] - sessions // 50))[0]
    return common, medium, rare


def selector_worker(cases: list[list[Any]]) -> dict[str, float]:
    """The listing's selector alone, in-process: median ms of 5 runs per case (after one warm-up)."""
    from api.staff import params
    from api.staff.selectors import sessions

    out = {}
    for label, query in cases:
        parsed = params.session_query(_querydict(query))
        sessions.sessions_page(parsed)
        runs = []
        for _ in range(5):
            started = time.perf_counter()
            sessions.sessions_page(parsed)
            runs.append(1000 * (time.perf_counter() - started))
        out[label] = statistics.median(runs)
    return out


def _querydict(query: dict[str, str]) -> Any:
    from django.http import QueryDict

    data = QueryDict(mutable=True)
    for name, value in query.items():
        data[name] = value
    return data


def run_worker(name: str, env: dict[str, str], payload: Any = None) -> Any:
    """One worker in a Django process on the database; its JSON answer."""
    done = subprocess.run(
        [str(PYTHON), __file__, "--worker", name], cwd=ROOT, env=env, input=json.dumps(payload),
        stdout=subprocess.PIPE, text=True, check=True, timeout=WORKER_TIMEOUT_S,
    )  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1])


# --- the client side --------------------------------------------------------------------------
@dataclass(slots=True)
class Case:
    """One measured request shape."""

    label: str
    query: dict[str, str]
    ms: list[float] = field(default_factory=list)
    rows: int = 0
    failures: int = 0
    selector_ms: float = float("nan")

    @property
    def p50(self) -> float:
        return statistics.median(self.ms) if self.ms else float("nan")

    @property
    def p95(self) -> float:
        return percentile(self.ms, 0.95) if self.ms else float("nan")

    @property
    def max(self) -> float:
        return max(self.ms) if self.ms else float("nan")


def measure(session: requests.Session, url: str, case: Case, requests_per_case: int) -> None:
    """WARMUP then `requests_per_case` GETs, one at a time."""
    for number in range(WARMUP + requests_per_case):
        started = time.perf_counter()
        response = session.get(url, params=case.query, timeout=60)
        elapsed = 1000 * (time.perf_counter() - started)
        if response.status_code != 200:
            case.failures += 1
            print(f"  {case.label}: {response.status_code} {response.text[:200]}", flush=True)
            continue
        if number >= WARMUP:
            case.ms.append(elapsed)
            case.rows = len(response.json()["results"])


def print_results(prepared: dict[str, Any], floor: Case, cases: list[Case], marker: dict[str, Any]) -> bool:
    """The table; True when every case met the target and nothing failed."""
    print(f"\nGET {URL} at scale — Postgres `{DATABASE}`; seed: {marker.get('summary', '?')}")
    for table, count in prepared["rows"].items():
        print(f"  {table:<40}{count:>12,}")
    print(f"  extensions: {', '.join(prepared['extensions'])}")
    print()
    header = f"{'case':<58}{'rows':>5}{'p50 ms':>9}{'p95 ms':>9}{'max ms':>9}{'selector':>10}  target"
    print(header)
    print("-" * len(header))
    print(f"{'/healthz (floor: daphne + Django, no query)':<58}{'':>5}{fmt(floor.p50, 1):>9}{fmt(floor.p95, 1):>9}"
          f"{fmt(floor.max, 1):>9}{'':>10}")  # fmt: skip
    ok = True
    for case in cases:
        met = case.p95 <= TARGET_P95_MS and not case.failures
        ok &= met
        print(f"{case.label[:57]:<58}{case.rows:>5}{fmt(case.p50, 1):>9}{fmt(case.p95, 1):>9}{fmt(case.max, 1):>9}"
              f"{fmt(case.selector_ms, 1):>10}  {'ok' if met else 'MISSED'}")  # fmt: skip
    worst = max(cases, key=lambda case: case.p95)
    print(f"\nTarget: p95 ≤ {TARGET_P95_MS:g} ms for every filter and page → worst {worst.p95:.1f} ms "
          f"({worst.label}): {'met' if ok else 'NOT met'}")  # fmt: skip
    return ok


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=30, help="measured GETs per case (default 30)")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    parser.add_argument("--sessions", type=int, default=100_000, help="seed: demo sessions (default 100000)")
    parser.add_argument("--days", type=int, default=30, help="seed: over this many days (default 30)")
    parser.add_argument("--seed", type=int, default=1, help="seed: seed_demo_data --seed (default 1)")
    parser.add_argument("--reseed", action="store_true", help="seed again even if the same seed is there")
    parser.add_argument("--application", default="project.asgi:application", help="the ASGI app daphne serves")
    parser.add_argument("--worker", choices=("prepare", "selector"), help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Seed or reuse the database, serve it, measure every case."""
    args = parse_args(argv)
    if args.worker:
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
        import django

        django.setup()
        payload = json.loads(sys.stdin.read() or "null")
        print(json.dumps(prepare_worker() if args.worker == "prepare" else selector_worker(payload), default=str))
        return 0
    env = env_for()
    with timed("benchmark"):
        try:
            marker = ensure_seeded(args, env)
        except BackendUnavailable as exc:
            print(f"skipped: {exc}", flush=True)
            return 0
        print("[prepare] sources, ANALYZE, a key, filter values, deep cursors…", flush=True)
        prepared = run_worker("prepare", env)
        cases = [Case(label, query) for label, query in prepared["cases"]]
        with tempfile.TemporaryDirectory(prefix="parley-api-sessions-") as workdir:
            log = Path(workdir) / "server.log"
            with DaphneServer(env, log, application=args.application) as server:
                base = f"http://127.0.0.1:{server.port}"
                session = requests.Session()
                session.headers["Authorization"] = f"Bearer {prepared['key']}"
                floor = Case("/healthz", {})
                measure_floor(session, f"{base}/healthz", floor, args.requests)
                for number, case in enumerate(cases, start=1):
                    print(f"[measure] {number}/{len(cases)} {case.label}", flush=True)
                    measure(session, f"{base}{URL}", case, args.requests)
                errors = [line for line in log.read_text(errors="replace").splitlines() if " ERROR " in line]
        print("[selector] the selector alone, in-process…", flush=True)
        selector = run_worker("selector", env, prepared["cases"])
        for case in cases:
            case.selector_ms = selector[case.label]
    ok = print_results(prepared, floor, cases, marker) and not errors
    for line in errors[:10]:
        print(f"server ERROR: {line}")
    if args.json:
        args.json.write_text(json.dumps(
            {"marker": marker, "prepared": {k: v for k, v in prepared.items() if k != "key"},
             "floor": asdict(floor), "cases": [asdict(case) | {"p50": case.p50, "p95": case.p95} for case in cases]},
            indent=2, default=str,
        ))  # fmt: skip
    return 0 if ok else 1


def measure_floor(session: requests.Session, url: str, case: Case, count: int) -> None:
    """/healthz, like the cases."""
    for number in range(WARMUP + count):
        started = time.perf_counter()
        session.get(url, timeout=30).raise_for_status()
        if number >= WARMUP:
            case.ms.append(1000 * (time.perf_counter() - started))


if __name__ == "__main__":
    sys.exit(main())
