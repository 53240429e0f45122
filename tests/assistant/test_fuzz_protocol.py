"""Property-based fuzzing of the `/ws/chat/` protocol (issue 13), bounded for `make test`.

Whatever a client sends (tests/support/frames.py: every frame type with wrong types, huge
numbers, lone surrogates, NUL, deep nesting, broken JSON), the server answers with precise
errors: never `internal_error`, never close code 1011, never an ERROR log record; every
connection slot is given back when the sockets close, and a normal chat works afterwards.
bench/fuzz.py runs the same strategies for 50,000+ frames against a real server.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from assistant.ratelimit import connections
from tests.support.chat import ChatClient, open_client
from tests.support.frames import FRAME, Tally, exchange
from tests.support.live import daphne

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("drain_replies")]

_addresses = (f"10.13.{n // 250}.{n % 250 + 1}" for n in itertools.count())
#: Close codes a hostile client may earn: too big (1009), too many frames (1008).
EXPECTED_CLOSES = {1008, 1009}
SENTINEL = "end-of-fuzz"
#: A real server: only there does a lone surrogate echoed in an error frame fail to encode.
FUZZ_SERVER = {
    "LOCAL_TOKEN_DELAY_MS": "0",
    "LOG_LEVEL": "info",
    "CHAT_FRAME_RATE_LIMIT_PER_MINUTE": "10000000",
    "CHAT_FRAME_BURST": "100000",
    "CHAT_SESSIONS_PER_IP_PER_HOUR": "1000000",
}


def _faults(records: list[logging.LogRecord]) -> list[str]:
    return [f"{record.name}: {record.getMessage()[:200]}" for record in records if record.levelno >= logging.ERROR]


@pytest.mark.backends  # on Postgres too: it refuses NUL in text, which SQLite stores
@settings(
    max_examples=120,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(frames=st.lists(FRAME, min_size=1, max_size=40), hello_first=st.booleans())
async def test_fuzzed_frames_never_cause_internal_errors_and_release_every_slot(
    frames: list[str], hello_first: bool, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    client, ok, code = await open_client(ip=next(_addresses))
    assert ok, code
    try:
        await _exchange(client, frames, hello_first)
    finally:
        await client.close()
    assert not _faults(caplog.records)
    assert connections.total() == 0


async def _exchange(client: ChatClient, frames: list[str], hello_first: bool) -> None:
    """Send the frames, read every answer up to the sentinel's; none may be an internal error."""
    if hello_first:
        await client.hello()
    for frame in frames:
        # Straight to the ASGI input: the test communicator refuses empty text, a real socket does not.
        await client.communicator.send_input({"type": "websocket.receive", "text": frame})
    # A last frame whose answer is unmistakable: the server answers in order, so once it
    # arrives, every fuzzed frame has been handled.
    await client.send({"type": "ping", SENTINEL: 1})
    received = []
    try:
        while True:
            answer = await client.recv(timeout=10)
            received.append(answer)
            if answer.get("field") == SENTINEL:
                break
    except ConnectionError:
        assert client.close_code in EXPECTED_CLOSES, f"closed with {client.close_code}"
    assert not [item for item in received if item.get("code") == "internal_error"], received


@pytest.mark.backends
async def test_after_fuzzing_a_normal_chat_still_works_and_slots_are_free() -> None:
    """Runs after the fuzz test in file order: the process it fuzzed still serves a visitor."""
    assert connections.total() == 0
    client, ok, _ = await open_client()
    assert ok
    await client.hello()
    ack, text, end = await client.say("How do I embed the widget?", "c-1")
    assert ack["seq"] == 1 and end["status"] == "complete" and text
    await client.close()
    assert connections.total() == 0


@pytest.fixture(scope="module")
def fuzz_server(django_db_setup: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """`manage.py serve` with the frame and session limits raised out of the fuzzer's way."""
    log = tmp_path_factory.mktemp("fuzz") / "server.log"
    with daphne(FUZZ_SERVER, log=log) as base:
        yield f"{base}/ws/chat/", log


@pytest.mark.live
def test_fuzzed_frames_over_a_real_socket_never_break_the_server(fuzz_server: tuple[str, Path]) -> None:
    url, log = fuzz_server
    tally = Tally()

    @settings(max_examples=60, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(frames=st.lists(FRAME, min_size=1, max_size=40), hello_first=st.booleans())
    def example(frames: list[str], hello_first: bool) -> None:
        exchange(url, frames, hello_first, tally)

    example()
    assert tally.frames > 200 and not tally.internal_errors
    assert set(tally.closes) <= {"1008", "1009"}, tally.closes
    faults = [line for line in log.read_text(errors="replace").splitlines() if " ERROR " in line or "Traceback" in line]
    assert not faults
