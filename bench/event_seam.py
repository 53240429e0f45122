"""What the event seam costs a chat turn: events published to analytics, beside the tracker alone.

Usage (from the project root)::

    .venv/bin/python bench/event_seam.py [--turns 5000] [--rounds 3]

In one process, on the embedded settings, two ways of feeding one session's analytics tracker
the same turns (a visitor message, then a complete reply with its provider call):

* ``tracker alone`` (the baseline): the tracker's methods called directly, as the chat consumer
  did before the seam;
* ``event seam``: the turn's three events (`MessageStored`, `ReplyStarted`, `ReplyEnded`) built and
  published, and delivered to every analytics subscriber (the tracker and the live feed).

Rounds alternate; the figure is process CPU per turn, and the difference is what the seam adds
to each turn (compare with a turn's server CPU in `chat_throughput.py`, 2.7–4.4 ms). Nothing
here touches the database: checkpoints are pushed out of the run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
os.environ.setdefault("PARLEY_DOTENV", "0")

QUESTION = "I was charged twice, can I get a refund?"
SOURCES = ({"id": "billing.md#refunds", "title": "Billing › Refunds", "score": 1.0},)


async def measure(turns: int, rounds: int) -> dict[str, list[float]]:
    """µs of process CPU per turn, per round, for each way."""
    import django

    django.setup()
    from django.conf import settings
    from django.utils import timezone

    from analytics.session_stats import SessionStats
    from analytics.tracker import AnalyticsTracker
    from assistant import events

    settings.ANALYTICS_CHECKPOINT_MESSAGES = 10**9
    settings.ANALYTICS_CHECKPOINT_SECONDS = 10**6
    settings.ANALYTICS_RECOVERY_INTERVAL_S = 0

    events.publish(
        events.SessionOpened(session_pk=1, session_id="1" * 32, connection="bench", created=True,
                             started_at=timezone.now().isoformat(), user_type="anonymous")
    )  # fmt: skip
    direct = AnalyticsTracker(
        session_pk=2, stats=SessionStats(session_pk=2, started_at=timezone.now(), user_type="anonymous")
    )

    def seam_turn(seq: int) -> None:
        events.publish(events.MessageStored(session_pk=1, session_id="1" * 32, seq=seq, message_id="u",
                                            role="user", text=QUESTION))  # fmt: skip
        events.publish(events.ReplyStarted(session_pk=1, session_id="1" * 32, seq=seq + 1, message_id="a",
                                           reply_to=seq))  # fmt: skip
        events.publish(
            events.ReplyEnded(session_pk=1, session_id="1" * 32, seq=seq + 1, message_id="a", status="complete",
                              provider="local", model="local", ttft_ms=5, duration_ms=9, cached=False,
                              sources=SOURCES, calls=(events.ProviderCallInfo(provider="local", model="local",
                                                                              outcome="ok"),))
        )  # fmt: skip

    def direct_turn(seq: int) -> None:
        direct.user_message(seq=seq, text=QUESTION)
        direct.reply_end(seq=seq + 1, status="complete", provider="local", ttft_ms=5, duration_ms=9, cached=False,
                         sources=list(SOURCES), failovers=0, errors=0)  # fmt: skip

    ways: dict[str, Callable[[int], None]] = {"tracker alone": direct_turn, "event seam": seam_turn}
    results: dict[str, list[float]] = {name: [] for name in ways}
    seq = 1
    for way in ways.values():  # warm caches (VADER, taxonomy) outside the measured rounds
        for _ in range(200):
            way(seq)
            seq += 2
    for _ in range(rounds):
        for name, way in ways.items():
            started = time.process_time()
            for _ in range(turns):
                way(seq)
                seq += 2
            results[name].append(1e6 * (time.process_time() - started) / turns)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--turns", type=int, default=5000, help="turns per round (default 5000)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (default 3)")
    args = parser.parse_args()
    results = asyncio.run(measure(args.turns, args.rounds))
    base = statistics.median(results["tracker alone"])
    seam = statistics.median(results["event seam"])
    print(f"Event seam — {args.turns} turns × {args.rounds} alternating rounds, process CPU per turn")
    for name, values in results.items():
        print(
            f"  {name:<14} median {statistics.median(values):6.1f} µs   rounds {', '.join(f'{v:.1f}' for v in values)}"
        )
    print(f"  the seam adds {seam - base:.1f} µs a turn ({seam / base:.2f}× the tracker alone)")


if __name__ == "__main__":
    main()
