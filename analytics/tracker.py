"""`AnalyticsTracker`: one per session per process, keeping the session's `ChatAnalytics` current.

The tracker subscribes to the chat's event seam (`assistant.events`; see `analytics.subscribers`):
visitor messages, reply ends, feedback, ratings, widget events and the end of the chat are folded
into a `SessionStats` in memory, and the row is written:

* as a checkpoint, at most `ANALYTICS_CHECKPOINT_SECONDS` after the first unsaved change or
  after `ANALYTICS_CHECKPOINT_MESSAGES` messages, whichever comes first, so a killed process
  loses at most that window (recovery rebuilds the rest from the message table);
* on `end`, and when the session's last connection in this process has closed and the replies
  this process generates for it have ended. A process's tracker sees the whole session (the
  events of tabs in other processes arrive as copies), so its memory is the row;
* when the server shuts down (`flush_all`, a runtime `before_close` hook).

Writes run as background tasks; nothing here raises into the chat path. An analytics failure is
logged and the conversation goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from channels.db import database_sync_to_async
from django.conf import settings
from django.utils import timezone

from analytics import services
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
    """Accumulates one session's numbers in this process and checkpoints them."""

    def __init__(self, *, session_pk: int, stats: SessionStats | None) -> None:
        self.session_pk = session_pk
        self.stats = stats
        #: While the stored numbers of a resumed session load, observations wait in `backlog`.
        self.loading = False
        #: A handoff changed while the stored rows were being read: read them once more after.
        self.reload_again = False
        self.backlog: list[tuple[Callable[[SessionStats], Any], bool]] = []
        self.connections: set[str] = set()
        self.replies: set[int] = set()  # seqs of replies this process is generating
        self.unsaved_messages = 0
        self.unsaved = False
        self.timer: asyncio.TimerHandle | None = None
        self.closed = False

    @classmethod
    def start(cls, *, session_pk: int, started_at: datetime, user_type: str, created: bool) -> AnalyticsTracker:
        """A tracker for a session: a new one starts empty, a resumed one from its stored rows."""
        if created:
            return cls(session_pk=session_pk, stats=SessionStats(session_pk=session_pk, started_at=started_at,
                                                                 user_type=user_type))  # fmt: skip
        tracker = cls(session_pk=session_pk, stats=None)
        tracker.loading = True
        _spawn(tracker._load(started_at, user_type), name=f"analytics-load-{session_pk}")
        return tracker

    async def _load(self, started_at: datetime, user_type: str) -> None:
        try:
            stats = await _load(session_pk=self.session_pk)
        except Exception:
            logger.exception("Analytics: could not load session %s; tracking it from now on", self.session_pk)
            stats = SessionStats(session_pk=self.session_pk, started_at=started_at, user_type=user_type)
        self._loaded(stats)

    def _loaded(self, stats: SessionStats | None, *, changed: bool = False) -> None:
        """Take the numbers read from the database, then apply what was observed meanwhile."""
        if self.reload_again:
            self.reload_again = False
            _spawn(self._reload(), name=f"analytics-reload-{self.session_pk}")
            return  # still loading: the backlog waits for the newer read
        self.stats, self.loading = stats, False  # None: the session is gone, nothing to track
        if changed and stats is not None:
            self._changed(message=False)
        backlog, self.backlog = self.backlog, []
        for change, message in backlog:
            self._observe(change, message=message)
        if self.closed and self.unsaved:
            self._checkpoint()

    def reload(self) -> None:
        """The session's handoff rows changed (requested, claimed, resolved…): re-read its rows.

        Rare (a few times per handed-off session), so the `Handoff` rows stay the one account of
        who answered when, instead of a copy of their state machine kept in memory.
        """
        if self.loading:
            self.reload_again = True
            return
        if self.stats is None:
            return
        self.loading = True
        _spawn(self._reload(), name=f"analytics-reload-{self.session_pk}")

    async def _reload(self) -> None:
        previous = self.stats
        try:
            stats = await _load(session_pk=self.session_pk)
        except Exception:
            logger.exception("Analytics: could not re-read session %s; keeping its numbers in memory", self.session_pk)
            stats = previous
        self._loaded(stats, changed=True)

    @property
    def idle(self) -> bool:
        """No connection of the session here and no reply being generated for it here."""
        return not self.connections and not self.replies

    # --- observations (called by the subscribers; never raise) ---------------------------
    def user_message(self, *, seq: int, text: str) -> None:
        """A visitor message was stored (in any process)."""
        self._observe(lambda s: s.observe_user_message(seq=seq, text=text), message=True)

    def reply_end(
        self,
        *,
        seq: int,
        status: str,
        provider: str,
        ttft_ms: int | None,
        duration_ms: int | None,
        cached: bool,
        sources: Any,
        failovers: int,
        errors: int,
    ) -> None:
        """A reply reached its final status."""
        self._observe(
            lambda s: s.observe_reply(
                seq=seq,
                status=status,
                provider=provider,
                ttft_ms=ttft_ms,
                duration_ms=duration_ms,
                cached=cached,
                sources=sources,
                failovers=failovers,
                errors=errors,
            ),
            message=True,
        )

    def agent_message(self, *, seq: int) -> None:
        """A person at the desk wrote to the visitor: an answer, not the assistant's."""
        self._observe(lambda s: s.observe_agent_message(seq=seq), message=True)

    def handoff_requested(self) -> None:
        """The visitor asked for a person: escalated at once, the request's row read from the database."""
        self._observe(lambda s: s.observe_handoff_request())
        self.reload()

    def feedback(self, *, message_id: str, rating: str) -> None:
        """Thumbs up/down on a reply."""
        self._observe(lambda s: s.observe_feedback(message_id=str(uuid.UUID(message_id)), rating=rating))

    def rating(self, *, score: int, resolved: bool | None) -> None:
        """The end-of-chat survey."""
        self._observe(lambda s: s.observe_rating(score=score, resolved=resolved))

    def event(self, *, name: str) -> None:
        """A widget action."""
        self._observe(lambda s: s.observe_event(name=name))

    def ended(self) -> None:
        """The visitor ended the session: write the numbers now."""
        self._observe(lambda s: s.observe_end())
        self._checkpoint()

    def close(self) -> None:
        """Nobody here needs the session any more: write what is unsaved (one upsert, or nothing)."""
        if self.closed:
            return
        self.closed = True
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self._checkpoint()

    def detach(self) -> None:
        """The session's last connection here closed while a reply of this process runs.

        Nothing is written from memory any more: without a connection in the session's group,
        this tracker misses what the session's other processes do. `final_rebuild` writes the
        row from the database once the reply has ended.
        """
        self.closed = True
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def final_rebuild(self) -> None:
        """Write the row from the stored rows (the replies this tracker waited for are stored)."""
        if self.stats is not None and self.stats.last_seq == 0 and not self.stats.closed and not self.unsaved:
            return  # no message yet: not a conversation, nothing to write
        _spawn(self._rebuild(), name=f"analytics-final-{self.session_pk}")

    async def _rebuild(self) -> None:
        try:
            await _rebuild(session_pk=self.session_pk)
            self.unsaved, self.unsaved_messages = False, 0
        except Exception:
            logger.exception("Analytics: final write of session %s failed; recovery will rebuild it", self.session_pk)

    # --- writing ---------------------------------------------------------------------------
    def _observe(self, change: Callable[[SessionStats], Any], *, message: bool = False) -> None:
        if self.loading:
            self.backlog.append((change, message))
            return
        if self.stats is None:
            return
        try:
            new = change(self.stats)
        except Exception:
            logger.exception("Analytics: could not record an observation of session %s", self.session_pk)
            return
        if new is False:
            return  # already counted (another copy of the same thing)
        self._changed(message=message)

    def _changed(self, *, message: bool) -> None:
        """Something changed in memory: checkpoint it in time."""
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


def trackers() -> dict[int, AnalyticsTracker]:
    """This event loop's open trackers, by session primary key."""
    return runtime.current().state("analytics.trackers", dict)


def flush_all() -> None:
    """Checkpoint every open tracker now and let the writer write at once (shutdown).

    Detached trackers (see `analytics.subscribers`) are rebuilt from the database instead: the
    replies they waited for have ended or been interrupted by now.
    """
    for tracker in list(trackers().values()):
        tracker._checkpoint()
    waiting = runtime.current().peek("analytics.detached") or {}
    for session_pk in list(waiting):
        waiting.pop(session_pk).final_rebuild()
    writer = runtime.current().peek("analytics.writer")
    if writer is not None:
        writer.now.set()
