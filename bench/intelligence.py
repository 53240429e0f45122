"""Conversation intelligence's benchmarks in one command: importing history, analysing conversations.

Usage (from the project root)::

    .venv/bin/python bench/intelligence.py [import] [analysis]

With no part named, both run one after the other with their defaults (the figures of
docs/benchmarks.md, "Conversation intelligence (issue 17)"):

* `import`   - bench/intelligence_import.py: a generated 1,000,000-message PowerPulse-format
  file imported on Postgres (target ≥ 20,000 messages/s, peak memory ≤ 200 MB), beside a
  parse-only pass over the same file in the same run.
* `analysis` - bench/intelligence_analysis.py: 10,000 conversations analysed against a fake
  vendor that answers in 200 ms, at the default ANALYSIS_CONCURRENCY; checks that none is lost
  or counted twice.

Each part is its own script (run them alone for their options); this one only sequences them
and exits non-zero if any part did.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import parts

PARTS = {
    "import": ["bench/intelligence_import.py"],
    "analysis": ["bench/intelligence_analysis.py"],
}


def main(argv: list[str]) -> int:
    """Run the named parts (all by default); the exit status is the worst of theirs."""
    return parts.run("bench/intelligence.py", PARTS, argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
