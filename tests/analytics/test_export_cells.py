"""Export cells against spreadsheet formulas and line splitting (issue 13, item 10, exports half).

Cells beginning with spaces then `=`, with a full-width `＝` (or ＋ － ＠), or with a tab, CR or
newline then `=` were written to CSV as they were, so a spreadsheet evaluated them; JSON lines
carried raw U+2028, U+2029 and U+0085, which split a line in common readers (Python's
`str.splitlines`, JavaScript before ES2019, many log shippers).
"""

from __future__ import annotations

import csv
import json
from io import StringIO
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import AsyncClient

from analytics import exports
from assistant.models import ChatMessage, ChatSession

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.backends]

HIDDEN_FORMULAS = [
    "  =1+1",
    ' \t =HYPERLINK("http://evil")',
    "\n=1+1",
    "\r\n=1+1",
    "\t=1+1",
    "\u00a0=1+1",  # no-break space
    "\u200b=1+1",  # zero-width space (a format character)
    "\ufeff=1+1",  # byte order mark
    "＝1+1",  # full-width equals sign
    "＋1",  # full-width plus
    "－1",  # full-width hyphen-minus
    "＠SUM(A1:A9)",  # full-width commercial at
    "  ＝1",
    "﹦1",  # small equals sign (NFKC: "=")
]
HARMLESS = ["", "hello", "1-1", "'=1", "http://x", "[1]", "a =1", "  hello", "\u3000text", "−1 is U+2212"]
LINE_BREAKERS = "a\u2028b\u2029c\u0085d"


@pytest.fixture
def staff_user(db: Any) -> Any:
    return get_user_model().objects.create_user("staff", password="pw", is_staff=True)


@pytest.fixture
async def staff(staff_user: Any) -> AsyncClient:
    client = AsyncClient()
    await client.aforce_login(staff_user)
    return client


def _texts(texts: list[str]) -> None:
    """One session whose messages are `texts` (in the test's thread: its connection is closed after)."""
    session = ChatSession.objects.create(token_hash="t" * 64, last_seq=len(texts), title=texts[0])
    for seq, text in enumerate(texts, start=1):
        ChatMessage.objects.create(session=session, seq=seq, role="user", text=text, duration_ms=5)


@pytest.fixture
def hidden_formulas(db: Any) -> None:
    _texts(HIDDEN_FORMULAS)


@pytest.fixture
def line_breakers(db: Any) -> None:
    _texts([LINE_BREAKERS, "plain"])


async def _body(client: AsyncClient, name: str, **query: str) -> bytes:
    response = await client.get(f"/admin/chat-analytics/export/{name}/", query)
    assert response.status_code == 200
    return b"".join([chunk async for chunk in response.streaming_content])


def test_neutralize_sees_a_formula_behind_whitespace_controls_and_full_width_forms() -> None:
    for text in HIDDEN_FORMULAS:
        assert exports.neutralize(text) == "'" + text, repr(text)
    for text in HARMLESS:
        assert exports.neutralize(text) == text, repr(text)


async def test_csv_cells_hiding_a_formula_behind_whitespace_or_full_width_forms_are_neutralised(
    staff, hidden_formulas: None
) -> None:
    rows = list(csv.DictReader(StringIO((await _body(staff, "messages")).decode(), newline="")))
    assert [row["text"] for row in rows] == ["'" + text for text in HIDDEN_FORMULAS]
    assert {row["duration_ms"] for row in rows} == {"5"} and rows[0]["seq"] == "1"  # numbers stay numbers
    (session,) = csv.DictReader(StringIO((await _body(staff, "sessions")).decode(), newline=""))
    assert session["title"] == "'" + HIDDEN_FORMULAS[0]


async def test_jsonl_escapes_unicode_line_separators_so_each_row_is_one_line(staff, line_breakers: None) -> None:
    body = await _body(staff, "messages", format="jsonl")
    for raw in ("\u2028", "\u2029", "\u0085"):
        assert raw.encode() not in body
    assert b"a\\u2028b\\u2029c\\u0085d" in body
    lines = body.decode().splitlines()  # splits on U+2028, U+2029 and U+0085 too
    assert len(lines) == 2
    rows: list[dict[str, Any]] = [json.loads(line) for line in lines]
    assert [row["text"] for row in rows] == [LINE_BREAKERS, "plain"]  # round-trips exactly
    assert rows[0]["duration_ms"] == 5 and rows[0]["seq"] == 1
