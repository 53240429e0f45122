"""Importing a PowerPulse export at scale: messages/s and peak memory, beside a parse-only baseline.

Usage (from the project root; Postgres on 127.0.0.1:5432)::

    .venv/bin/python bench/intelligence_import.py [--messages 1000000] [--seed 17] [--keep-file]

1. Generates a PowerPulse-format (fb-grouped) file of `--messages` messages, streamed to /tmp
   (deterministic for a seed): chats of 10–90 messages in threads cut by multi-day silences
   (≈ 10 messages per conversation), customers and agents alternating, ~4 % `*977#`
   autoresponses, ~0.5 % duplicated messages.
2. Recreates database `parley_bench_import` and migrates it.
3. Baseline, in its own process: the same file read with `ijson.kvitems` (yajl2_c), every
   message touched, nothing else: what parsing alone costs.
4. The import, in its own process (`manage.py import_conversations`), so its peak RSS
   (`wait4`'s ru_maxrss) is the import's alone, not the generator's.
5. The same file again: every conversation unchanged (the idempotent path).

Targets (issue 17): ≥ 20,000 messages/s, peak RSS ≤ 200 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.harness import POSTGRES_ADMIN_URL, PYTHON, BackendUnavailable, base_env, migrate  # noqa: E402

DATABASE = "parley_bench_import"
DATABASE_URL = f"postgres://postgres@127.0.0.1:5432/{DATABASE}"
TARGET_RATE = 20_000
TARGET_RSS_MB = 200
START = datetime(2024, 1, 1, tzinfo=UTC)

CUSTOMER = [
    "my internet is not working since this morning",
    "I paid my bill but my balance still shows zero",
    "how do I change my data plan",
    "the signal keeps dropping at home",
    "thank you, it works now",
    "when will the technician come",
    "I was charged twice this month",
    "can I get a refund for the failed top up",
    "still no connection, this is very bad service",
    "ok thanks",
]
AGENT = [
    "Sorry for the trouble, let me check your line",
    "Could you share your account number please",
    "I have reset your connection, please restart the router",
    "The refund has been processed and will show within 48 hours",
    "Your plan has been changed, anything else I can help with",
    "A technician will visit tomorrow between 9 and 12",
]
DETAILS = ["account", "number", "ref", "amount", "meter", "order"]
AUTORESPONSE = "Dial *977# to check your balance and bundles"
AGENTS = [(f"agent{n:02d}", f"agent{n:02d}@powerpulse.example") for n in range(40)]


def generate(path: Path, messages: int, seed: int) -> dict[str, int]:
    """Write the file; returns what it holds (messages, chats, autoresponses, duplicates)."""
    rng = random.Random(seed)
    written = chats = autos = dups = 0
    with path.open("w", encoding="utf-8") as out:
        out.write("{")
        while written < messages:
            chat = f"{1_000_000 + chats}"
            size = min(rng.randint(10, 90), messages - written)
            at = START + timedelta(minutes=rng.randint(0, 330 * 24 * 60))
            rows: list[dict[str, Any]] = []
            customer_turn = True
            while len(rows) < size:
                if rows and rng.random() < 0.1:  # a silence of days: the next conversation of the thread
                    at += timedelta(days=rng.randint(2, 20))
                    customer_turn = True
                else:
                    at += timedelta(seconds=rng.randint(20, 900))
                if customer_turn:
                    # Mostly distinct texts (an account number, an amount), as real ones are: no
                    # cache of scores by text could make the analysis look cheaper than it is.
                    text = f"{rng.choice(CUSTOMER)} {rng.choice(DETAILS)} {rng.randint(1000, 99999)}"
                    row = _row(chat, text, "to_company", at, None)
                elif rng.random() < 0.08:
                    row = _row(chat, AUTORESPONSE, "to_client", at, None)
                    autos += 1
                else:
                    row = _row(chat, rng.choice(AGENT), "to_client", at, rng.choice(AGENTS))
                rows.append(row)
                if len(rows) < size and rng.random() < 0.005:
                    rows.append(dict(row))
                    dups += 1
                customer_turn = not customer_turn if rng.random() < 0.8 else customer_turn
            out.write(("," if chats else "") + json.dumps(chat) + ":" + json.dumps(rows, separators=(",", ":")))
            written += len(rows)
            chats += 1
        out.write("}")
    return {"messages": written, "chats": chats, "autoresponses": autos, "duplicates": dups}


def _row(chat: str, text: str, direction: str, at: datetime, agent: tuple[str, str] | None) -> dict[str, Any]:
    return {
        "FB_CHAT_ID": chat,
        "MESSAGE_CONTENT": text,
        "DIRECTION": direction,
        "SOCIAL_CREATE_TIME": at.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        "AGENT_USERNAME": agent[0] if agent else None,
        "AGENT_EMAIL": agent[1] if agent else None,
    }


PARSE_ONLY = """
import sys, ijson
count = 0
with open(sys.argv[1], "rb") as f:
    for chat, rows in ijson.kvitems(f, "", use_float=True):
        for row in rows:
            count += len(row["MESSAGE_CONTENT"] or "") >= 0
print(count, ijson.backend)
"""


def timed_child(command: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """Run a child; its wall seconds, its peak RSS in MB (wait4's ru_maxrss) and its stdout."""
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"{command[1:3]} failed with {process.returncode}:\n{output[-2000:]}")
    return seconds, usage.ru_maxrss / 1024, output


def recreate_database(env: dict[str, str]) -> None:
    """Drop, create and migrate the benchmark's database."""
    import psycopg
    from psycopg import sql

    try:
        admin = psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        raise BackendUnavailable(f"Postgres at {POSTGRES_ADMIN_URL} is unreachable: {exc}") from exc
    with admin:
        name = sql.Identifier(DATABASE)
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(name))
    migrate(env)


def main(argv: list[str] | None = None) -> int:
    """Generate, import, report; exit 1 when a target is missed."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--keep-file", action="store_true", help="Leave the generated file in /tmp.")
    args = parser.parse_args(argv)
    path = Path(f"/tmp/parley_bench_import_{args.messages}_{args.seed}.json")
    started = time.perf_counter()
    held = generate(path, args.messages, args.seed)
    size_mb = path.stat().st_size / 1e6
    print(
        f"[file] {path}: {held['messages']:,} messages in {held['chats']:,} chats, {size_mb:.0f} MB, "
        f"{held['autoresponses']:,} autoresponses, {held['duplicates']:,} duplicates "
        f"(generated in {time.perf_counter() - started:.1f} s)",
        flush=True,
    )
    env = base_env(ROOT / "docs" / "knowledge")
    env.update(DATABASE_URL=DATABASE_URL, ANALYTICS_RECOVERY_INTERVAL_S="0", LOG_LEVEL="warning")
    try:
        recreate_database(env)
        parse_s, parse_mb, parse_out = timed_child([str(PYTHON), "-c", PARSE_ONLY, str(path)], env)
        manage = [str(PYTHON), "manage.py", "import_conversations", str(path), "--no-progress"]
        import_s, import_mb, import_out = timed_child(manage, env)
        again_s, again_mb, again_out = timed_child(manage, env)
    finally:
        if not args.keep_file:
            path.unlink(missing_ok=True)
    messages = held["messages"]
    rate, parse_rate, again_rate = messages / import_s, messages / parse_s, messages / again_s
    print(f"[baseline] ijson parse only ({parse_out.split()[-1]}): {parse_s:.1f} s, {parse_rate:,.0f} messages/s, "
          f"peak RSS {parse_mb:.0f} MB")  # fmt: skip
    print(f"[import]   {import_s:.1f} s, {rate:,.0f} messages/s (file messages / wall time), "
          f"peak RSS {import_mb:.0f} MB; import/parse time ratio {import_s / parse_s:.1f}x")  # fmt: skip
    print("           " + "\n           ".join(import_out.strip().splitlines()))
    print(f"[again]    same file, all unchanged: {again_s:.1f} s, {again_rate:,.0f} messages/s, "
          f"peak RSS {again_mb:.0f} MB")  # fmt: skip
    print("           " + "\n           ".join(again_out.strip().splitlines()[:2]))
    ok = rate >= TARGET_RATE and import_mb <= TARGET_RSS_MB
    print(f"[target]   ≥ {TARGET_RATE:,} messages/s and ≤ {TARGET_RSS_MB} MB: {'met' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
