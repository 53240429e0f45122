"""One assistant reply, run as a task: generate, broadcast, checkpoint, store, announce.

The reply is owned by the process that received the visitor message, not by the connection:
if the visitor disconnects, the reply still finishes and is stored. Its frames reach the
session's connections through `assistant.delivery`; `stop` and snapshot requests from other
processes reach it through `replies.runtime.control`. What happened is published on the event
seam (`ReplyStarted`, `Failover`, `ReplyEnded` with its provider calls).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings

from assistant import delivery, events, protocol, response_cache, services
from assistant.delivery import Frame, has_remote_members, layer_is_shared
from assistant.knowledge import SearchHit, get_knowledge_base
from assistant.models import ChatMessage, ChatSession
from assistant.protocol import frames
from assistant.providers.base import PromptMessage, ProviderTimeout, ReplyRequest, TextChunk, UsageReport
from assistant.providers.local import split_chunks, used_hits
from assistant.providers.registry import provider_chain
from assistant.providers.router import AllProvidersFailed, Broken, Router
from assistant.replies.coalescer import DeltaCoalescer
from assistant.replies.runtime import control
from project import runtime

logger = logging.getLogger(__name__)


UNAVAILABLE_TEXT = (
    "I'm sorry, I can't answer right now: the assistant is unavailable. Please try again in a few minutes."
)
#: Storing the outcome may take a moment after the reply's own deadline.
FINISH_GRACE_S = 5.0


@dataclass(slots=True)
class _Segment:
    """One assistant message of the reply; a mid-stream failover starts the next one."""

    pk: int
    message_id: str
    seq: int
    started: float
    retry_of: int | None = None
    ttft_ms: int | None = None


@dataclass(slots=True)
class _Result:
    status: str = ChatMessage.Status.COMPLETE
    error: str = ""
    usage: UsageReport = field(default_factory=UsageReport)
    provider: str = ""
    model: str = ""
    cached: bool = False


class ReplyJob:
    """Generate, broadcast, checkpoint and store one assistant reply."""

    def __init__(
        self,
        *,
        session_pk: int,
        session_id: str,
        group: str,
        control_group: str,
        user_message: ChatMessage,
        assistant_message: ChatMessage,
        history: list[tuple[str, str]],
        locale: str = "",
        announce: list[Frame] | None = None,
        announce_events: list[events.ChatEvent] | None = None,
        origin: str | None = None,
        tap: Callable[[list[Frame]], None] | None = None,
    ) -> None:
        self.session_pk = session_pk
        self.session_id = session_id
        self.group = group
        self.control_group = control_group
        self.query = user_message.text
        self.reply_to = user_message.seq
        self.user_pk = user_message.pk
        self.segment = _Segment(
            pk=assistant_message.pk,
            message_id=str(assistant_message.public_id),
            seq=assistant_message.seq,
            started=time.monotonic(),
        )
        self.segment_pks = [assistant_message.pk]
        self.history = tuple(PromptMessage(role=role, text=text) for role, text in history)
        self.locale = locale
        self.announce = announce or []
        #: Events already published here that other processes still need (if any listen).
        self.announce_events = announce_events or []
        self.origin = origin
        #: Called with every frame list the reply publishes, in order (an API request streaming it).
        self.tap = tap
        self.task: asyncio.Task[None] | None = None
        self._parts: list[str] = []
        self._stop_requested = False
        #: Whether a `stop` may cancel the task now: only while text is generated, never while
        #: the outcome is stored and announced (a cancel there lost the `reply.end`).
        self._generating = False
        #: Whether other processes need this reply's frames (see `has_remote_members`).
        self.remote = False
        self.coalescer = self._new_coalescer()
        #: A failover's replacement, between its creation and the end of the cut message.
        self._next: _Segment | None = None

    @property
    def seq(self) -> int:
        """The seq of the message being generated now."""
        return self.segment.seq

    @property
    def message_pk(self) -> int:
        """The primary key of the message being generated now."""
        return self.segment.pk

    @property
    def text(self) -> str:
        """The text of the message being generated, so far."""
        return "".join(self._parts)

    def request_stop(self) -> None:
        """Stop generating now; the partial text is kept as `stopped`.

        Outside generation (the task has not begun, a failover is being stored, the reply is
        being stored) the request is noted and honoured at the next point where generation
        resumes, or not at all once the reply has ended.
        """
        if self._stop_requested or self.task is None or self.task.done():
            return
        self._stop_requested = True
        if self._generating:
            self.task.cancel()

    def _generate(self) -> None:
        """Generation (re)starts: a `stop` or a cancel that came meanwhile takes effect now."""
        self._generating = True
        if self._stop_requested:
            raise asyncio.CancelledError
        runtime.honour_lost_cancel()

    def snapshot_frame(self) -> Frame:
        """The whole text so far, for a connection that joined mid-reply."""
        return frames.snapshot(seq=self.seq, text=self.text)

    async def run(self) -> None:
        """The task body: stream through the provider chain, then store and announce the end."""
        started = time.monotonic()
        result, hits, router, cache_key = _Result(), (), None, None
        control_channel: str | None = None
        checkpoints: asyncio.Task[None] | None = None
        cancelled_by_shutdown = False
        try:  # from the first step: a shutdown may cancel the task at any await, and it still ends
            control_channel = await self._join_control_group()
            # After the join: a tab that joins the session group later reads this reply's row from
            # the database and asks for a snapshot, which reaches us and switches `remote` on.
            self.remote = await has_remote_members(self.group)
            await self._publish([*self.announce, self._start_frame()])
            for event in self.announce_events:
                await delivery.send_copy(event, remote=self.remote)
            checkpoints = asyncio.create_task(self._checkpoint_loop())
            async with asyncio.timeout(settings.CHAT_REPLY_TIMEOUT_S + FINISH_GRACE_S):
                self._generate()
                hits = tuple(await asyncio.to_thread(self._search))
                request = ReplyRequest(
                    query=self.query,
                    history=self.history,
                    hits=hits,
                    quick_replies=tuple(settings.ASSISTANT_QUICK_REPLIES),
                    locale=self.locale,
                    system_prompt=settings.ASSISTANT_SYSTEM_PROMPT,
                    history_tokens=settings.PROMPT_HISTORY_TOKENS,
                )
                chain = provider_chain()
                if not self.history and response_cache.enabled():
                    cache_key = response_cache.cache_key(
                        self.query, get_knowledge_base().version, [provider.name for provider in chain]
                    )
                    cached = await response_cache.lookup(cache_key, chain)
                    if cached is not None:
                        await self._replay(cached, result)
                        self._generating = False
                        return await self._end(result, hits, None, None, control_channel, checkpoints)
                router = Router(chain)
                events = router.stream(request, deadline=started + settings.CHAT_REPLY_TIMEOUT_S)
                async with contextlib.aclosing(events):  # the router settles its breaker permits on close
                    async for event in events:
                        runtime.honour_lost_cancel()
                        if isinstance(event, TextChunk):
                            self._append(event.text)
                        elif isinstance(event, UsageReport):
                            result.usage = event
                        elif isinstance(event, Broken):
                            await self._fail_over(event, hits, router)
                result.provider, result.model = router.answered_by
        except asyncio.CancelledError:
            if self._stop_requested:
                result.status = ChatMessage.Status.STOPPED
                asyncio.current_task().uncancel()  # type: ignore[union-attr]
            else:
                result.status, cancelled_by_shutdown = ChatMessage.Status.INTERRUPTED, True
        except TimeoutError:
            result.status, result.error = self._broken(), protocol.REPLY_TIMEOUT
        except AllProvidersFailed as exc:
            logger.warning("Reply %s of session %s: every provider failed (%s)", self.seq, self.session_pk, exc)
            timed_out = (
                isinstance(exc.last, ProviderTimeout) and time.monotonic() - started >= settings.CHAT_REPLY_TIMEOUT_S
            )
            result.status, result.error = (
                self._broken(),
                protocol.REPLY_TIMEOUT if timed_out else protocol.PROVIDER_UNAVAILABLE,
            )
            if not self._parts:
                self._append(UNAVAILABLE_TEXT)  # the visitor is told plainly, not left with silence
        except Exception:
            logger.exception("Reply %s of session %s crashed", self.seq, self.session_pk)
            result.status, result.error = self._broken(), protocol.INTERNAL_ERROR
        self._generating = False
        if self._next is not None:
            self._switch(self._next)  # cut during a failover: the replacement is what ends now
        if router is not None and not result.provider:
            last = next((attempt for attempt in reversed(router.attempts) if attempt.outcome != "skipped"), None)
            if last is not None:
                result.provider, result.model = last.provider, last.model
            if result.status != ChatMessage.Status.COMPLETE and router.attempts:
                result.usage = router.attempts[-1].usage or result.usage
        await self._end(result, hits, router, cache_key, control_channel, checkpoints)
        if cancelled_by_shutdown:
            raise asyncio.CancelledError

    async def _end(
        self,
        result: _Result,
        hits: tuple[SearchHit, ...],
        router: Router | None,
        cache_key: str | None,
        control_channel: str | None,
        checkpoints: asyncio.Task[None] | None,
    ) -> None:
        if checkpoints is not None:
            checkpoints.cancel()
        await self._finish(result, hits, router)
        if cache_key is not None and router is not None and result.status == ChatMessage.Status.COMPLETE:
            await response_cache.store(
                cache_key,
                response_cache.CachedReply(
                    text=self.text,
                    provider=result.provider,
                    model=result.model,
                    sources=_sources(hits, result.provider),
                ),
                router.providers,
            )
        await self._leave_control_group(control_channel)

    def _append(self, text: str) -> None:
        if self.segment.ttft_ms is None:
            self.segment.ttft_ms = _ms_since(self.segment.started)
        self._parts.append(text)
        self.coalescer.append(text)

    async def _replay(self, cached: response_cache.CachedReply, result: _Result) -> None:
        """Stream a cached reply the way the local assistant streams (same pacing)."""
        delay_s = settings.LOCAL_TOKEN_DELAY_MS / 1000
        for index, chunk in enumerate(split_chunks(cached.text, settings.LOCAL_CHUNK_WORDS)):
            if index and delay_s:
                await asyncio.sleep(delay_s)
            runtime.honour_lost_cancel()
            self._append(chunk)
        result.provider, result.model, result.cached = cached.provider, cached.model, True
        result.usage = UsageReport(input_tokens=0, output_tokens=0)

    async def _fail_over(self, broken: Broken, hits: tuple[SearchHit, ...], router: Router) -> None:
        """Keep the cut reply as `interrupted`, announce it, and open its replacement."""
        old = self.segment
        outcome = self._outcome(
            _Result(
                status=ChatMessage.Status.INTERRUPTED,
                error=protocol.PROVIDER_INTERRUPTED,
                usage=broken.usage,
                provider=broken.provider,
                model=broken.model,
            ),
            hits,
        )
        calls = self._calls(router, segment=len(self.segment_pks) - 1)
        self._generating = False  # a stop now would leave the replacement row streaming
        replacement = await asyncio.shield(
            database_sync_to_async(services.reply_failover)(
                message_id=old.pk, outcome=outcome, session_pk=self.session_pk, reply_to_id=self.user_pk, calls=calls
            )
        )
        new = _Segment(
            pk=replacement.pk,
            message_id=str(replacement.public_id),
            seq=replacement.seq,
            started=time.monotonic(),
            retry_of=old.seq,
        )
        events.publish(
            events.Failover(
                session_pk=self.session_pk,
                session_id=self.session_id,
                seq=old.seq,
                provider=broken.provider,
                model=broken.model,
                error=type(broken.error).__name__,
            )
        )
        # The replacement starts before the cut one ends, for subscribers too: a tracker kept open
        # for this process's replies must not see a moment with none. If the task is cancelled
        # while the cut one is announced, `run` switches to the replacement and ends that.
        self._next = new
        self._started(new)
        await self._announce_end(outcome, calls)
        self._switch(new)
        await self._publish([self._start_frame()])
        self._generate()

    def _switch(self, new: _Segment) -> None:
        """Make the failover's replacement the message being generated."""
        self._next = None
        self.segment = new
        self.segment_pks.append(new.pk)
        self._parts = []
        self.coalescer = self._new_coalescer()

    def _broken(self) -> str:
        return ChatMessage.Status.INTERRUPTED if self._parts else ChatMessage.Status.FAILED

    def _search(self) -> list[SearchHit]:
        return get_knowledge_base().search(self.query, limit=settings.KNOWLEDGE_MAX_SECTIONS)

    def _new_coalescer(self) -> DeltaCoalescer:
        return DeltaCoalescer(send=self._publish, seq=self.seq, interval_s=settings.CHAT_DELTA_INTERVAL_MS / 1000)

    def _start_frame(self) -> Frame:
        return dict(
            frames.reply_start(
                seq=self.segment.seq,
                message_id=self.segment.message_id,
                reply_to=self.reply_to,
                retry_of=self.segment.retry_of,
            )
        )

    def started(self) -> None:
        """Publish `ReplyStarted`: called when the task is created, so that subscribers know of the
        reply before the connection that asked for it can close."""
        self._started(self.segment)

    def _started(self, segment: _Segment) -> None:
        events.publish(
            events.ReplyStarted(
                session_pk=self.session_pk,
                session_id=self.session_id,
                seq=segment.seq,
                message_id=segment.message_id,
                reply_to=self.reply_to,
                retry_of=segment.retry_of,
            )
        )

    def _outcome(self, result: _Result, hits: tuple[SearchHit, ...]) -> services.ReplyOutcome:
        return services.ReplyOutcome(
            text=self.text,
            status=result.status,
            provider=result.provider,
            model=result.model,
            ttft_ms=self.segment.ttft_ms,
            duration_ms=_ms_since(self.segment.started),
            input_tokens=result.usage.input_tokens,
            output_tokens=result.usage.output_tokens,
            cached=result.cached,
            error_code=result.error,
            knowledge_sections=_sources(hits, result.provider),
        )

    def _calls(self, router: Router | None, *, segment: int | None = None) -> list[services.ProviderCallRecord]:
        """The router's attempts (of one segment, or all not yet stored) as ProviderCall records."""
        if router is None:
            return []
        last = len(self.segment_pks) - 1
        return [
            services.call_record(attempt, message_id=self.segment_pks[min(attempt.segment, last)])
            for attempt in router.attempts
            if (attempt.segment == segment if segment is not None else attempt.segment >= last)
        ]

    async def _finish(self, result: _Result, hits: tuple[SearchHit, ...], router: Router | None) -> None:
        outcome = self._outcome(result, hits)
        calls = self._calls(router)
        try:
            await asyncio.shield(
                database_sync_to_async(services.reply_finish)(
                    message_id=self.message_pk, outcome=outcome, calls=calls, session_pk=self.session_pk
                )
            )
        except Exception:
            logger.exception("Could not store reply %s of session %s", self.seq, self.session_pk)
        await self._announce_end(outcome, calls)

    async def _announce_end(self, outcome: services.ReplyOutcome, calls: list[services.ProviderCallRecord]) -> None:
        """Tell subscribers (first, synchronously: whatever happens next, they learn of the end),
        then every tab, then the session's other processes."""
        ended = events.ReplyEnded(
            session_pk=self.session_pk,
            session_id=self.session_id,
            seq=self.seq,
            message_id=self.segment.message_id,
            status=outcome.status,
            provider=outcome.provider,
            model=outcome.model,
            ttft_ms=outcome.ttft_ms,
            duration_ms=outcome.duration_ms,
            cached=outcome.cached,
            sources=tuple(outcome.knowledge_sections),
            error=outcome.error_code,
            input_tokens=outcome.input_tokens,
            output_tokens=outcome.output_tokens,
            calls=tuple(call.info() for call in calls),
        )
        events.publish(ended)
        end_frame = frames.reply_end(
            seq=self.seq,
            message_id=self.segment.message_id,
            status=outcome.status,
            provider=outcome.provider,
            model=outcome.model,
            ttft_ms=outcome.ttft_ms,
            duration_ms=outcome.duration_ms,
            input_tokens=outcome.input_tokens,
            output_tokens=outcome.output_tokens,
            cached=outcome.cached,
            sources=outcome.knowledge_sections,
            error=outcome.error_code,
            text=self.text,
        )
        if not self.remote:
            # A remote tab that read this reply as streaming before `reply_finish` committed is
            # in the group by now; its snapshot request may come too late to reach us.
            self.remote = await has_remote_members(self.group)
        await self.coalescer.finish(end_frame)
        await delivery.send_copy(ended, remote=self.remote)

    async def _publish(self, frames: list[Frame]) -> None:
        if self.tap is not None:
            self.tap(frames)
        await delivery.publish(self.group, frames, origin=self.origin, remote=self.remote)

    async def _join_control_group(self) -> str | None:
        """Let `stop` and snapshot requests from other processes reach this reply."""
        layer = get_channel_layer()
        if not layer_is_shared(layer):
            return None  # one process: requests find the reply in `registry` directly
        try:
            channel = await control.name(layer)
            await layer.group_add(self.control_group, channel)
        except Exception:
            logger.exception("Reply %s cannot hear stop requests from other processes", self.seq)
            return None
        return channel

    async def _leave_control_group(self, channel: str | None) -> None:
        if channel is None:
            return
        try:
            await get_channel_layer().group_discard(self.control_group, channel)
        except Exception:
            logger.exception("Could not leave %s", self.control_group)

    async def _checkpoint_loop(self) -> None:
        interval = settings.CHAT_CHECKPOINT_INTERVAL_S
        save = database_sync_to_async(services.reply_checkpoint)
        while True:
            await asyncio.sleep(interval)
            try:
                if not await save(message_id=self.message_pk, text=self.text, session_pk=self.session_pk):
                    self.request_stop()  # a person answers the visitor now
            except Exception:
                logger.exception("Checkpoint of reply %s failed", self.seq)


def _sources(hits: tuple[SearchHit, ...], provider: str) -> list[dict[str, object]]:
    """The sections a reply drew on: the ones the local assistant quoted, or all that were sent."""
    chosen = used_hits(hits) if provider == "local" else list(hits)
    return [{"id": hit.section.id, "title": hit.section.label, "score": hit.score} for hit in chosen]


def _ms_since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def orphan_end_frame(item: frames.HistoryMessage) -> Frame:
    """`reply.end` of a reply whose process died (`services.SessionOpened.interrupted`).

    Its `_text` fills the gap of a tab that saw less than the last checkpoint.
    """
    return frames.reply_end(seq=item["seq"], message_id=item["message_id"], status=item["status"], text=item["text"])


def orphan_ended(session: ChatSession, item: frames.HistoryMessage) -> events.ReplyEnded:
    """`ReplyEnded` of a reply whose process died, for the subscribers (it was never announced)."""
    return events.ReplyEnded(
        session_pk=session.pk,
        session_id=str(session.public_id),
        seq=item["seq"],
        message_id=item["message_id"],
        status=item["status"],
        provider="",
        model="",
        ttft_ms=None,
        duration_ms=None,
        cached=False,
    )
