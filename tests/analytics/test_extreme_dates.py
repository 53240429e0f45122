"""Staff endpoints on extreme dates (issue 13, item 8): a 400 naming the parameter, never a 500
or a response that never ends.

`api/summary/?start_date=0001-01-01&end_date=0001-01-02` and `api/tables/?end_date=9999-12-31`
answered 500 (OverflowError); `export/messages/?end_date=9999-12-31` sent its headers and header
row and then never ended.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from asgiref.testing import ApplicationCommunicator
from django.contrib.auth import get_user_model
from django.core.handlers.asgi import ASGIHandler
from django.test import Client
from django.utils import timezone

from analytics import exports, params
from assistant.models import ChatMessage, ChatSession

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.backends]

API = ["api/", "api/summary/", "api/daily/", "api/cost/", "api/features/", "api/tables/", "api/definitions/"]
EXPORTS = ["export/sessions/", "export/messages/", "export/analytics/"]
PAGES = [""]  # the dashboard page takes the same period parameters (the transcript page takes none)
ROOT = "/admin/chat-analytics/"

EXTREMES = [
    ({"start_date": "0001-01-01", "end_date": "0001-01-02"}, "start_date"),
    ({"end_date": "9999-12-31"}, "end_date"),
    ({"start_date": "9999-12-30", "end_date": "9999-12-31"}, "start_date"),
    ({"start_date": "1999-12-31", "end_date": "2000-01-05"}, "start_date"),
]


@pytest.fixture
def staff_cookie(db: Any) -> bytes:
    user = get_user_model().objects.create_user("staff", password="pw", is_staff=True)
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}".encode()


async def _get(cookie: bytes, path: str, query: str, *, timeout: float = 10) -> tuple[int, bytes]:
    """One GET through Django's ASGI handler; fails if the response does not end within `timeout`."""
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
        "path": path, "raw_path": path.encode(), "query_string": query.encode(), "root_path": "",
        "headers": [(b"host", b"testserver"), (b"cookie", cookie)], "client": ("127.0.0.1", 1234),
        "server": ("testserver", 80),
    }  # fmt: skip
    app = ApplicationCommunicator(ASGIHandler(), scope)  # not get_asgi_application: its setup resets logging
    await app.send_input({"type": "http.request", "body": b"", "more_body": False})
    start = await app.receive_output(timeout)
    assert start["type"] == "http.response.start"
    body = b""
    while True:
        message = await app.receive_output(timeout)  # TimeoutError: the response never ended
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    await app.wait(timeout)
    return start["status"], body


@pytest.fixture
def three_messages(db: Any) -> None:
    session = ChatSession.objects.create(token_hash="t" * 64, last_seq=3)
    for seq in (1, 2, 3):
        ChatMessage.objects.create(session=session, seq=seq, role="user", text=f"message {seq}")


def _query(values: dict[str, str]) -> str:
    return "&".join(f"{key}={value}" for key, value in values.items())


@pytest.mark.parametrize(("values", "parameter"), EXTREMES)
@pytest.mark.parametrize("endpoint", API + EXPORTS + PAGES)
async def test_extreme_dates_get_a_400_naming_the_parameter(
    staff_cookie: bytes, endpoint: str, values: dict[str, str], parameter: str
) -> None:
    status, body = await _get(staff_cookie, ROOT + endpoint, _query(values))
    assert status == 400, body[:300]
    if endpoint in PAGES:
        assert f"&#x27;{parameter}&#x27;".encode() in body or f"'{parameter}'".encode() in body
        return
    data = json.loads(body)
    assert data["parameter"] == parameter and parameter in data["error"]
    assert str(params.MIN_DATE) in data["error"]


@pytest.mark.parametrize("endpoint", API + EXPORTS)
async def test_dates_at_the_edges_of_the_range_are_accepted(staff_cookie: bytes, endpoint: str) -> None:
    last = timezone.localdate() + timedelta(days=params.MAX_DAYS_AHEAD)
    query = f"start_date={last - timedelta(days=6)}&end_date={last}"
    status, body = await _get(staff_cookie, ROOT + endpoint, query)
    assert status == 200, body[:300]
    status, body = await _get(staff_cookie, ROOT + endpoint, f"start_date={params.MIN_DATE}&end_date=2000-01-07")
    assert status == 200, body[:300]


@pytest.mark.parametrize(("fmt", "last"), [("csv", b"# export failed"), ("jsonl", b'{"error":"export_failed"')])
async def test_an_export_that_fails_mid_stream_still_ends(
    staff_cookie: bytes, three_messages: None, monkeypatch: Any, caplog: Any, fmt: str, last: bytes
) -> None:
    """What made `end_date=9999-12-31` hang: an error after the headers left the download open for good.

    The first chunk is read, the second read fails (a fault injected into the read, standing for
    any fault of Parley's own): the response must still end, marked incomplete, with one ERROR.
    """
    real = exports.fetch_rows

    def failing(*args: Any, **kwargs: Any) -> Any:
        if kwargs["after"]:
            raise OverflowError("date value out of range")
        return real(*args, **kwargs)

    monkeypatch.setattr(exports, "CHUNK_ROWS", 2)
    monkeypatch.setattr(exports, "fetch_rows", failing)
    status, body = await _get(staff_cookie, ROOT + "export/messages/", f"format={fmt}")
    assert status == 200
    lines = body.splitlines()
    assert lines[-1].startswith(last) and b"message 2" in lines[-2]
    errors = [record for record in caplog.records if record.levelname == "ERROR" and "export" in record.getMessage()]
    assert len(errors) == 1
