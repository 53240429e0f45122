"""Analysing 10,000 conversations against a fake vendor that answers in 200 ms.

Usage::

    .venv/bin/python bench/intelligence_analysis.py [--conversations 10000] [--delay 0.2]

SQLite by default (a fresh file under /tmp); Postgres with DATABASE_URL (a scratch database:
its chat tables are emptied first). The conversations (4 messages each, closed) are written
straight into the database; the fake OpenAI vendor (tests/support/fake_vendors.py, real SDK)
answers every request with a valid analysis after `--delay` seconds. `analyze_conversations`
runs at the default ANALYSIS_CONCURRENCY, then checks: every session has exactly one analysis
(none lost), there are exactly as many `analysis` ProviderCall rows as attempts the vendor saw
(none counted twice). Baselines in the same run: the ideal rate (concurrency / delay) and the
offline path's rate (`--force` with no cloud provider).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> int:
    """Seed, analyse with the fake vendor, analyse offline, check, print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=10_000)
    parser.add_argument("--delay", type=float, default=0.2)
    args = parser.parse_args()

    from tests.support.fake_vendors import FakeVendor

    vendor = FakeVendor("openai").start()
    answer = {
        "sentiment": -0.4, "sentiment_label": "negative", "satisfaction": 3, "resolved": True,
        "topics": ["billing"], "language": "en", "summary": "A billing question, answered.", "needs_follow_up": False,
    }  # fmt: skip
    text = json.dumps(answer)
    vendor.tokens = [text[i : i + 40] for i in range(0, len(text), 40)]
    vendor.default_fault = f"slow_first:{args.delay}"
    os.environ.update(
        PARLEY_DOTENV="0",
        DJANGO_SETTINGS_MODULE="project.settings",
        AI_PROVIDERS="openai,local",
        OPENAI_API_KEY="bench",
        OPENAI_BASE_URL=f"{vendor.base_url}/v1",
        ANALYTICS_RECOVERY_INTERVAL_S="0",
    )
    if not os.environ.get("DATABASE_URL"):
        os.environ["SQLITE_PATH"] = str(Path(tempfile.mkdtemp()) / "analysis-bench.sqlite3")
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection
    from django.test.utils import override_settings

    from analytics.models import ConversationAnalysis
    from assistant.models import ChatMessage, ChatSession, ProviderCall

    call_command("migrate", verbosity=0)
    ChatSession.objects.all().delete()
    seed_started = time.perf_counter()
    sessions = ChatSession.objects.bulk_create(
        [ChatSession(token_hash="b" * 64, status="closed", last_seq=4) for _ in range(args.conversations)],
        batch_size=2000,
    )
    if not sessions[0].pk:  # backends that return no ids on bulk insert
        sessions = list(ChatSession.objects.order_by("pk"))
    lines = [
        ("user", "Hello, I was charged twice for my plan this month."),
        ("assistant", "Sorry about that: the second charge is refunded within five days."),
        ("user", "Will I get an email when it is done?"),
        ("assistant", "Yes, a receipt is sent to your billing address."),
    ]
    ChatMessage.objects.bulk_create(
        [
            ChatMessage(session=session, seq=seq, role=role, text=f"{body} (#{session.pk})")
            for session in sessions
            for seq, (role, body) in enumerate(lines, start=1)
        ],
        batch_size=5000,
    )
    print(f"seeded {len(sessions)} conversations in {time.perf_counter() - seed_started:.1f} s "
          f"on {connection.vendor}", flush=True)  # fmt: skip

    concurrency = settings.ANALYSIS_CONCURRENCY
    started = time.perf_counter()
    call_command("analyze_conversations", "--no-progress")
    llm_s = time.perf_counter() - started
    attempts = len(vendor.requests)
    calls = ProviderCall.objects.filter(feature="analysis").count()
    analyses = ConversationAnalysis.objects.count()
    per_session = ConversationAnalysis.objects.values("session_id").distinct().count()
    llm_rows = ConversationAnalysis.objects.filter(method="llm").count()

    with override_settings(AI_PROVIDERS=["local"]):
        started = time.perf_counter()
        call_command("analyze_conversations", "--force", "--no-progress")
        offline_s = time.perf_counter() - started
    vendor.stop()

    rate = args.conversations / llm_s
    ideal = concurrency / args.delay
    print(f"LLM path: {args.conversations} conversations in {llm_s:.1f} s = {rate:.1f} conv/s at concurrency "
          f"{concurrency} (ideal {ideal:.1f} conv/s: {rate / ideal:.0%} of it)")  # fmt: skip
    print(f"offline path (baseline): {args.conversations / offline_s:.1f} conv/s ({offline_s:.1f} s)")
    print(f"vendor attempts {attempts}, ProviderCall analysis rows {calls}, max in flight {vendor.max_in_flight}")
    print(f"analyses {analyses} (distinct sessions {per_session}), by the model {llm_rows}")
    lost = args.conversations - per_session
    doubled = (analyses - per_session) + abs(calls - attempts)
    ok = lost == 0 and doubled == 0 and llm_rows == args.conversations and vendor.max_in_flight <= concurrency
    print(f"lost {lost}, double-counted {doubled}: {'OK' if ok else 'FAILED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
