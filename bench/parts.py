"""Running a benchmark's parts one after the other (bench/api.py, bench/intelligence.py).

Each part is a script of its own with its options; a sequencer names the parts and their default
arguments and leaves the rest to `run`.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(title: str, parts: Mapping[str, Sequence[str]], argv: Sequence[str]) -> int:
    """Run the parts named in `argv` (all by default); the exit status is the worst of theirs."""
    names = [name for name in argv if not name.startswith("-")] or list(parts)
    unknown = [name for name in names if name not in parts]
    if unknown:
        print(f"unknown part(s) {', '.join(unknown)}; choose from {', '.join(parts)}", file=sys.stderr)
        return 2
    worst = 0
    for name in names:
        print(f"\n=== {title}: {name} ===", flush=True)
        status = subprocess.call([sys.executable, *parts[name]], cwd=ROOT)
        worst = max(worst, status)
    return worst
