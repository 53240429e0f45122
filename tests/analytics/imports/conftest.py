"""Fixtures of the import tests: the hand-made files under data/, and running the command on them.

data/powerpulse.json (fb-grouped, times UTC; TIME_ZONE is UTC in tests):
  chat 1001 (customer 1001):
    2024-03-04 10:00:00 customer "My internet is down"
    10:00:05 automated "Dial *977# …"            → autoresponse, dropped
    10:04:00 alice                               → 4 min after 10:00
    10:10:00 customer "Thanks, it works now"
    10:12:00 alice "Great, anything else?"       → 2 min after 10:10
    10:12:00 alice "Great, anything else?"       → duplicate, dropped
    --- 47 h of silence (> 24 h): a second conversation ---
    2024-03-06 09:00 customer; 09:10 bob (10 min); 09:15 bob (15 min after 09:00)
  chat 1002: 12:00 customer; 12:00:01 "*977#" (dropped); 12:01 automated (kept: role assistant);
    12:06 carol (6 min); 12:07 a message without DIRECTION → skipped (bad_direction)
  chat 1003: a string, not a list → skipped (not_a_list)
  chat 1004: only a `*977#` autoresponse → nothing left → skipped (no_messages)

  Conversations: 4 read, 3 created; messages 4 + 3 + 3 = 10; dropped 3 autoresponses, 1 duplicate.
  Agent response time per conversation: (4 + 2) / 2 = 3 min, (10 + 15) / 2 = 12.5 min, 6 min;
  over conversations (180,000 + 750,000 + 360,000) / 3 = 430,000 ms.
  FCR: every conversation ends with an agent's answer (assumed resolved); customer 1001 came
  back within FCR_WINDOW_DAYS (7) after the first, so 2 of 3 are first-contact resolved: 66.67 %.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command

DATA = Path(__file__).parent / "data"
POWERPULSE = DATA / "powerpulse.json"
RATINGS = DATA / "ratings.jsonl"
MESSAGES_CSV = DATA / "messages.csv"


def run_import(path: Path | str, *args: str) -> str:
    """Run the command on `path`; its standard output."""
    out = io.StringIO()
    call_command("import_conversations", str(path), "--no-progress", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


@pytest.fixture
def importer(db) -> Any:
    """`run_import`, with the database."""
    return run_import
