"""A rolling restart under load: two `manage.py serve` processes on Postgres + Redis behind a relay.

Twenty visitors chat steadily through a round-robin relay (tests/support/relay.py, standing in
for nginx). One process gets SIGTERM mid-stream and is started again on the same port. The
visitors behave like the widget: after a 1012 close or a `restarting` error they reconnect at
once (the relay skips the stopped process), resume their session with `session_id`, `token` and
`last_seq`, and send again the message they have no `ack` for.

Checked: every acknowledged message is in the database; every reply ends `complete` or
`interrupted` (none left `streaming`); every visitor cut off by the restart has a message
acknowledged again within 5 s of losing its connection; the restarted process takes
connections again.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import signal
import time
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import websockets
from channels.db import database_sync_to_async
from websockets.exceptions import ConnectionClosed

from assistant.models import ChatMessage
from tests.support.live import daphne_process
from tests.support.relay import Relay

pytestmark = [pytest.mark.services, pytest.mark.live, pytest.mark.django_db(transaction=True)]

VISITORS = 20
GRACE_S = 1.5
RECOVERY_LIMIT_S = 5.0
SERVER_ENV = {
    # Replies of about 3-4 s (80 ms a word), so SIGTERM finds most of the stopping process's
    # visitors mid-reply, some finishing within the grace and others not.
    "LOCAL_TOKEN_DELAY_MS": "80",
    "SHUTDOWN_GRACE_S": str(GRACE_S),
    "CHAT_CHECKPOINT_INTERVAL_S": "0.5",
    "CHAT_RATE_LIMIT_PER_MINUTE": "100000",
    "CHAT_RATE_LIMIT_BURST": "100000",
    "CHAT_IP_RATE_LIMIT_PER_MINUTE": "100000",
    "CHAT_SESSIONS_PER_IP_PER_HOUR": "100000",
    "MAX_CONNECTIONS_PER_IP": "500",
    "LOG_LEVEL": "info",
}
QUESTIONS = ["How do I embed the widget?", "How do I scale Parley?", "Which AI providers are supported?"]


class Restarting(Exception):
    """The server answered `restarting`: this process is shutting down."""


@dataclass
class Visitor:
    """One widget-like client: outbox of one message, resume on reconnect, reconnect at once on 1012."""

    index: int
    url: str
    stop: asyncio.Event
    session: dict[str, str] = field(default_factory=dict)
    last_seq: int = 0
    final: set[int] = field(default_factory=set)  # seqs held in their final state
    pending: tuple[str, str] | None = None  # (client_id, text) sent without an ack yet
    acked: list[tuple[str, str, float]] = field(default_factory=list)  # (session_id, client_id, when)
    cut_at: float | None = None  # when the restart took the connection away
    recoveries: list[float] = field(default_factory=list)
    cuts: list[str] = field(default_factory=list)
    other_closes: list[int | None] = field(default_factory=list)
    counter: itertools.count[int] = field(default_factory=itertools.count)

    turn: int = 0

    @property
    def think_s(self) -> float:
        """Every other turn a visitor reads the answer first: idle, it is closed with 1012 at the
        end of the grace; answering at once, it sends during the grace and is told `restarting`.
        """
        return 2.0 if (self.index // 2 + self.turn) % 2 else 0.3

    async def run(self) -> None:
        while True:
            try:
                async with websockets.connect(self.url, open_timeout=5) as ws:
                    await self.converse(ws)
                    return  # the load stopped
            except Restarting:
                self.cut("restarting")  # reconnect at once: the message goes to another process
            except ConnectionClosed as closed:
                code = closed.rcvd.code if closed.rcvd is not None else None
                if code == 1012:
                    self.cut("1012")
                else:
                    self.other_closes.append(code)
                    await asyncio.sleep(0.2)
            except OSError:
                await asyncio.sleep(0.2)

    def cut(self, how: str) -> None:
        self.cuts.append(how)
        if self.cut_at is None:
            self.cut_at = time.monotonic()

    def got_ack(self, client_id: str) -> None:
        now = time.monotonic()
        self.acked.append((self.session["session_id"], client_id, now))
        if self.cut_at is not None:
            self.recoveries.append(now - self.cut_at)
            self.cut_at = None
        self.pending = None

    async def converse(self, ws: Any) -> None:
        await ws.send(json.dumps({"type": "hello", **self.session, "last_seq": self.last_seq}))
        welcome = await self.expect(ws, "welcome")
        self.session.setdefault("session_id", welcome["session_id"])
        if "token" in welcome:
            self.session["token"] = welcome["token"]
        streaming = None
        for item in welcome["history"]:
            if self.pending is not None and item.get("client_id") == self.pending[0]:
                self.got_ack(self.pending[0])  # stored, though its ack was lost with the connection
            if item["status"] == "streaming":
                streaming = item["seq"]
            else:
                self.hold(item["seq"])
        if streaming is not None:
            await self.read_reply(ws, streaming)
        while True:
            if self.pending is None:
                if self.stop.is_set():
                    return
                self.turn = next(self.counter)
                self.pending = (f"v{self.index}-{self.turn}", QUESTIONS[(self.index + self.turn) % len(QUESTIONS)])
            client_id, text = self.pending
            await ws.send(json.dumps({"type": "message", "text": text, "client_id": client_id}))
            while (ack := await self.expect(ws, "ack"))["client_id"] != client_id:
                pass
            self.got_ack(client_id)
            self.hold(ack["seq"])
            if ack["seq"] + 1 not in self.final:  # a duplicate's reply may be over already
                await self.read_reply(ws, ack["seq"] + 1)
            await asyncio.sleep(self.think_s)

    def hold(self, seq: int) -> None:
        self.final.add(seq)
        self.last_seq = max(self.last_seq, seq)

    async def read_reply(self, ws: Any, seq: int) -> None:
        while True:
            frame = await self.expect(ws, "reply.end")
            self.hold(frame["seq"])
            if frame["seq"] >= seq and frame.get("error") != "provider_interrupted":
                return

    async def history(self) -> list[dict[str, Any]]:
        """The whole conversation, as a new connection (a page reload) reads it."""
        async with websockets.connect(self.url, open_timeout=5) as ws:
            await ws.send(json.dumps({"type": "hello", **self.session, "last_seq": 0}))
            return (await self.expect(ws, "welcome"))["history"]

    async def expect(self, ws: Any, frame_type: str) -> dict[str, Any]:
        while True:
            frame = json.loads(await asyncio.wait_for(ws.recv(), 15))
            if frame["type"] == "error":
                if frame["code"] == "restarting":
                    raise Restarting
                raise AssertionError(f"visitor {self.index}: unexpected error {frame}")
            if frame["type"] == frame_type:
                return frame


@database_sync_to_async
def stored() -> tuple[set[tuple[str, str]], dict[str, int]]:
    users = set(
        (str(session), client_id)
        for session, client_id in ChatMessage.objects.filter(role="user").values_list("session__public_id", "client_id")
    )
    statuses: dict[str, int] = {}
    for status in ChatMessage.objects.filter(role="assistant").values_list("status", flat=True):
        statuses[status] = statuses.get(status, 0) + 1
    return users, statuses


async def test_a_rolling_restart_under_load_loses_no_acknowledged_message_and_leaves_no_reply_streaming(
    tmp_path: Path,
) -> None:
    started = time.monotonic()
    log_a = tmp_path / "a.log"
    with ExitStack() as stack:
        base_b, _ = stack.enter_context(daphne_process(SERVER_ENV, log=tmp_path / "b.log"))
        base_a, server_a = stack.enter_context(daphne_process(SERVER_ENV, log=log_a))
        port_a, port_b = int(base_a.rsplit(":", 1)[1]), int(base_b.rsplit(":", 1)[1])
        relay = Relay([port_a, port_b])
        stack.callback(relay.close)
        stop = asyncio.Event()
        visitors = [Visitor(i, f"ws://127.0.0.1:{relay.port}/ws/chat/", stop) for i in range(VISITORS)]
        load = asyncio.gather(*(visitor.run() for visitor in visitors))

        await asyncio.sleep(4)  # steady state: every visitor mid-conversation on A or B
        before = dict(relay.connections)
        server_a.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        assert await asyncio.to_thread(server_a.wait, GRACE_S + 10) == 0
        stopped_after = time.monotonic() - signalled
        with daphne_process(SERVER_ENV, log=log_a, port=port_a):  # the same process, started again
            await asyncio.sleep(4)  # the load goes on over B and the restarted A
            stop.set()
            await asyncio.wait_for(load, 30)
            # Each visitor reloads the page: a new connection, half of them to the restarted A.
            restarted = relay.connections[port_a]
            histories = await asyncio.gather(*(visitor.history() for visitor in visitors))
            restarted = relay.connections[port_a] - restarted

    users, statuses = await stored()
    acked = {(session, client_id) for visitor in visitors for session, client_id, _ in visitor.acked}
    cut = [visitor for visitor in visitors if visitor.cuts]
    recoveries = [delay for visitor in visitors for delay in visitor.recoveries]
    cuts = Counter(how for visitor in visitors for how in visitor.cuts)
    print(  # for the record in -s runs: what the restart did
        f"\n{len(acked)} messages acknowledged, replies {dict(statuses)}, {len(cut)} visitors cut {dict(cuts)}, "
        f"slowest recovery {max(recoveries, default=0):.2f} s, A stopped {stopped_after:.1f} s after SIGTERM, "
        f"total {time.monotonic() - started:.0f} s"
    )
    assert before[port_a] >= 5 and before[port_b] >= 5, before
    assert acked <= users, f"acknowledged but not stored: {sorted(acked - users)[:5]}"
    assert set(statuses) <= {"complete", "interrupted"}, statuses
    assert statuses.get("interrupted", 0) >= 1, "SIGTERM found no reply mid-stream that outlived the grace"
    assert len(cut) >= 5, "the visitors of the stopped process were cut off"
    assert all(visitor.cut_at is None for visitor in visitors), "a cut-off visitor never chatted again"
    assert max(recoveries) < RECOVERY_LIMIT_S, sorted(recoveries)[-5:]
    assert all(not visitor.other_closes for visitor in visitors), [v.other_closes for v in visitors]
    assert stopped_after < GRACE_S + 5
    assert restarted >= VISITORS // 2 - 1, "the restarted process takes connections again"
    for visitor, history in zip(visitors, histories, strict=True):
        assert {client_id for _, client_id, _ in visitor.acked} <= {item.get("client_id") for item in history}
        assert {item["status"] for item in history} <= {"complete", "interrupted"}
