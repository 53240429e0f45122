"""The REST API's benchmarks in one command: the sessions listing at scale, API turns, webhooks.

Usage (from the project root)::

    .venv/bin/python bench/api.py [sessions] [turns] [webhooks]

With no part named, all three run one after the other, each with its defaults (the figures of
docs/benchmarks.md, "The REST API, webhooks and alerts"):

* `sessions` - bench/api_sessions.py: 100,000 sessions on Postgres, `GET /api/v1/sessions/`
  p50/p95 for every filter and deep pages (target p95 ≤ 100 ms), beside `/healthz`.
* `turns`    - bench/api_turns.py: blocking `POST …/messages/` (and SSE) turns/s beside the
  websocket's durable turns/s, in the same run.
* `webhooks` - bench/webhooks.py: deliveries/s to a local receiver, and the chat's turns/s with
  delivery on vs off in paired windows (target cost ≤ 3 %).

Each part is its own script (run them alone for their options); this one only sequences them
and exits non-zero if any part did.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import parts

PARTS = {
    "sessions": ["bench/api_sessions.py"],
    "turns": ["bench/api_turns.py", "--backend", "both"],
    "webhooks": ["bench/webhooks.py", "--backend", "both"],
}


def main(argv: list[str]) -> int:
    """Run the named parts (all by default); the exit status is the worst of theirs."""
    return parts.run("bench/api.py", PARTS, argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
