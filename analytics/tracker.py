"""`AnalyticsTracker`: one per chat consumer, keeping its session's `ChatAnalytics` current.

The consumer reports what happens (visitor messages, reply ends, feedback, ratings, widget
events, end of chat); the tracker folds it into a `SessionStats` in memory and writes the row:

* as a checkpoint, at most `ANALYTICS_CHECKPOINT_SECONDS` after the first unsaved change or
  after `ANALYTICS_CHECKPOINT_MESSAGES` messages, whichever comes first, so a killed process
  loses at most that window (recovery rebuilds the rest from the message table);
* on `end`, and when the connection closes. Every tab's tracker sees the whole session (other
  tabs' messages, replies, thumbs, ratings and events reach it as frames), so its memory is the
  row; only a reply still being generated when the connection closes is folded in by
  rebuilding the row from the stored rows once that reply is stored.

Writes run as background tasks; nothing here raises into the chat path. An analytics failure is
logged and the conversation goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from typing import Any

from channels.db import database_sync_to_async
from django.conf import settings
from django.utils import timezone

from analytics import live, recovery, services
from analytics.session_stats import SessionStats
from project import runtime

logger = logging.getLogger(__name__)

_load = database_sync_to_async(services.session_stats_load)
_write = database_sync_to_async(services.session_analytics_write)
_rebuild = database_sync_to_async(services.session_analytics_rebuild)

#: How long the process-wide writer gathers rows before writing them in one statement.
BATCH_S = 0.5


def _spawn(coro: Any, name: str) -> None:
    runtime.current().spawn(coro, name=name, kind=runtime.ANALYTICS)


class Writer:
    """Writes the rows of every tracker of one event loop together, at most every `BATCH_S`.

    A write costs a thread hop and a statement; gathering the checkpoints and closing writes
    of all sessions into one multi-row upsert keeps analytics off the chat's CPU budget.
    """

    def __init__(self) -> None:
        self.pending: dict[int, tuple[dict[str, Any], AnalyticsTracker]] = {}
        self.task: asyncio.Task[None] | None = None
        self.now = asyncio.Event()

    def submit(self, tracker: AnalyticsTracker, fields: dict[str, Any]) -> None:
        """Queue a session's row (replacing one already queued for it)."""
        self.pending[tracker.session_pk] = (fields, tracker)
        if self.task is None or self.task.done():
            self.task = runtime.current().spawn(self._run(), name="analytics-writer", kind=runtime.ANALYTICS)

    async def _run(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.now.wait(), BATCH_S)
        while self.pending:
            batch, self.pending = self.pending, {}
            try:
                await _write(rows={pk: fields for pk, (fields, _) in batch.items()})
            except Exception:
                logger.exception(
                    "Analytics: checkpoint of %d session(s) failed; recovery will rebuild them", len(batch)
                )
                for _, tracker in batch.values():
                    tracker.write_failed()


def _writer() -> Writer:
    return runtime.current().state("analytics.writer", Writer)


async def drain() -> None:
    """Write everything queued now and wait for analytics writes in flight (tests and shutdown)."""
    writer = runtime.current().peek("analytics.writer")
    if writer is not None:
        writer.now.set()
    await runtime.current().wait(runtime.ANALYTICS)
    if writer is not None:
        writer.now.clear()


class AnalyticsTracker:
    """Accumulates one session's numbers for one connection and checkpoints them."""

    def __init__(self, *, session_pk: int, public_id: str, stats: SessionStats | None) -> None:
        self.session_pk = session_pk
        self.public_id = public_id
        self.stats = stats
        self.unsaved_messages = 0
        self.unsaved = False
        self.timer: asyncio.TimerHandle | None = None
        self.closed = False

    @classmethod
    async def open(
        cls, *, session_pk: int, public_id: str, started_at: Any, user_type: str, created: bool
    ) -> AnalyticsTracker:
        """A tracker for a session just opened; a resumed one starts from its stored rows."""
        recovery.ensure_running()  # also with the tracker off: then the sweep alone fills analytics
        if not settings.ANALYTICS_TRACKER:
            return cls(session_pk=session_pk, public_id=public_id, stats=None)
        stats: SessionStats | None
        try:
            if created:
                stats = SessionStats(session_pk=session_pk, started_at=started_at, user_type=user_type)
            else:
                stats = await _load(session_pk=session_pk)
        except Exception:
            logger.exception("Analytics: could not load session %s; tracking it from now on", session_pk)
            stats = SessionStats(session_pk=session_pk, started_at=started_at, user_type=user_type)
        return cls(session_pk=session_pk, public_id=public_id, stats=stats)

    # --- observations (called by the consumer; never raise) ------------------------------
    # `live=True` also tells staff dashboards (analytics.live); the consumer passes it only for
    # what its own connection caused, so that several tabs of a session announce things once.
    def user_message(self, *, seq: int, text: str, live: bool = False) -> None:
        """A visitor message was stored (this tab's or another tab's)."""
        if live:
            self._live({"type": "message", "role": "user", "seq": seq, "first": seq == 1})
        if self.stats is not None:
            self._observe(lambda s: s.observe_user_message(seq=seq, text=text), message=True)

    def reply_end(self, frame: dict[str, Any], *, live: bool = False) -> None:
        """A reply reached its final status (`reply.end` frame, with the internal counts)."""
        if live:
            event = {key: frame.get(key) for key in ("seq", "status", "provider", "ttft_ms", "duration_ms", "cached")}
            self._live({"type": "message", "role": "assistant", **event})
            if frame.get("_failovers"):
                self._live({"type": "failover", "count": frame["_failovers"], "provider": frame.get("provider")})
        if self.stats is not None:
            self._observe(
                lambda s: s.observe_reply(
                    seq=frame["seq"],
                    status=frame["status"],
                    provider=frame.get("provider", ""),
                    ttft_ms=frame.get("ttft_ms"),
                    duration_ms=frame.get("duration_ms"),
                    cached=bool(frame.get("cached")),
                    sources=frame.get("sources"),
                    failovers=frame.get("_failovers", 0),
                    errors=frame.get("_errors", 0),
                ),
                message=True,
            )

    def feedback(self, *, message_id: str, rating: str, live: bool = False) -> None:
        """Thumbs up/down on a reply."""
        if live:
            self._live({"type": "feedback", "rating": rating})
        if self.stats is not None:
            self._observe(lambda s: s.observe_feedback(message_id=str(uuid.UUID(message_id)), rating=rating))

    def rating(self, *, score: int, resolved: bool | None, live: bool = False) -> None:
        """The end-of-chat survey."""
        if live:
            self._live({"type": "rating", "score": score, "resolved": resolved})
        if self.stats is not None:
            self._observe(lambda s: s.observe_rating(score=score, resolved=resolved))

    def event(self, *, name: str) -> None:
        """A widget action."""
        if self.stats is not None:
            self._observe(lambda s: s.observe_event(name=name))

    def ended(self, *, live: bool = False) -> None:
        """The visitor ended the session: write the numbers now."""
        if live:
            self._live({"type": "session.end"})
        if self.stats is not None:
            self._observe(lambda s: s.observe_end())
            self._checkpoint()

    def _live(self, event: dict[str, Any]) -> None:
        event["session_id"] = self.public_id
        live.publish(event)

    def close(self, *, after: asyncio.Task[Any] | None = None) -> None:
        """The connection closed: write what is unsaved (or, with a reply in flight, rebuild after it).

        This tracker saw everything its session did while it was connected (other tabs' frames
        included), so its memory is the row, and closing costs one upsert, or nothing when the
        last checkpoint is current. A reply still being generated ends after this connection
        has left the session's group, unseen: then the row is rebuilt from the database once
        it is stored.
        """
        if self.stats is None or self.closed:
            return
        self.closed = True
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if after is not None and not after.done():
            after.add_done_callback(lambda _: self._final_rebuild())
        else:
            self._checkpoint()

    # --- writing ---------------------------------------------------------------------------
    def _observe(self, change: Any, *, message: bool = False) -> None:
        assert self.stats is not None
        try:
            new = change(self.stats)
        except Exception:
            logger.exception("Analytics: could not record an observation of session %s", self.session_pk)
            return
        if new is False:
            return  # already counted (another tab's copy)
        self.unsaved = True
        self.unsaved_messages += message
        if self.closed:
            return
        if self.unsaved_messages >= settings.ANALYTICS_CHECKPOINT_MESSAGES:
            self._checkpoint()
        elif self.timer is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return
            self.timer = loop.call_later(settings.ANALYTICS_CHECKPOINT_SECONDS, self._checkpoint)

    def _checkpoint(self) -> None:
        """Hand the in-memory numbers to this loop's writer."""
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.stats is None or not self.unsaved:
            return
        try:
            fields = self.stats.row(timezone.now())
            self.unsaved, self.unsaved_messages = False, 0
            _writer().submit(self, fields)
        except Exception:
            logger.exception("Analytics: checkpoint of session %s failed; recovery will rebuild it", self.session_pk)

    def write_failed(self) -> None:
        """The writer could not store this session's row: try again at the next checkpoint."""
        self.unsaved = True
        if not self.closed and self.timer is None:
            self.timer = asyncio.get_running_loop().call_later(settings.ANALYTICS_CHECKPOINT_SECONDS, self._checkpoint)

    def _final_rebuild(self) -> None:
        if self.stats is not None and self.stats.last_seq == 0 and not self.stats.closed:
            return  # no message yet: not a conversation, nothing to write
        try:
            _spawn(self._rebuild(), name=f"analytics-final-{self.session_pk}")
        except RuntimeError:
            logger.warning("Analytics: no event loop for the final write of session %s", self.session_pk)

    async def _rebuild(self) -> None:
        try:
            await _rebuild(session_pk=self.session_pk)
            self.unsaved, self.unsaved_messages = False, 0
        except Exception:
            logger.exception("Analytics: final write of session %s failed; recovery will rebuild it", self.session_pk)
