"""Running one assistant reply as a task, and delivering it to every connection of the session.

The reply is owned by the process that received the visitor message, not by the connection:
if the visitor disconnects, the reply still finishes and is stored.

Delivery has two paths. Connections in this process get frames straight into their inbox
(`hub`), with no channel-layer round trip. Connections in other processes get them through the
session's channel-layer group, which is used only while the group has members outside this
process (checked once per reply, and switched on when a remote tab asks for a snapshot). The
layer is at-most-once, so deltas carry a private `_offset` and `reply.end` the full text: a
connection that missed a delta (or joined late) fills the gap instead of showing a hole.

`stop` and snapshot requests from other processes reach a reply through its session's control
group, which this process's one control channel joins while the reply runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from channels.db import database_sync_to_async
from channels.layers import BaseChannelLayer, InMemoryChannelLayer, get_channel_layer
from channels_redis.core import RedisChannelLayer
from django.conf import settings

from assistant import protocol, response_cache, services
from assistant.knowledge import SearchHit, get_knowledge_base
from assistant.liveness import PROCESS_ID  # tags this process's group messages (and owns its replies)
from assistant.models import ChatMessage
from assistant.providers.base import PromptMessage, ProviderTimeout, ReplyRequest, TextChunk, UsageReport
from assistant.providers.local import split_chunks, used_hits
from assistant.providers.registry import provider_chain
from assistant.providers.router import AllProvidersFailed, Broken, Router
from project import runtime

logger = logging.getLogger(__name__)

Frame = dict[str, Any]


class LocalHub:
    """The inboxes of this process's connections, by session group."""

    def __init__(self) -> None:
        self._members: defaultdict[str, set[asyncio.Queue[Frame]]] = defaultdict(set)

    def join(self, group: str, inbox: asyncio.Queue[Frame]) -> None:
        """Register a connection; call after it joined the layer group (see `has_remote_members`)."""
        self._members[group].add(inbox)

    def leave(self, group: str, inbox: asyncio.Queue[Frame]) -> None:
        """Forget a connection; call before it leaves the layer group."""
        members = self._members.get(group)
        if members is not None:
            members.discard(inbox)
            if not members:
                del self._members[group]

    def count(self, group: str) -> int:
        """How many connections of `group` live in this process."""
        return len(self._members.get(group, ()))

    def deliver(self, group: str, event: Frame) -> None:
        """Queue `event` for every local connection of `group` (they dispatch it in order)."""
        for inbox in self._members.get(group, ()):
            inbox.put_nowait(event)


hub = LocalHub()


def layer_is_shared(layer: BaseChannelLayer | None) -> bool:
    """True when other processes can be on the layer (anything but the in-memory layer)."""
    return layer is not None and not isinstance(layer, InMemoryChannelLayer)


async def has_remote_members(group: str) -> bool:
    """Whether `group` may have members in other processes.

    Members join the layer group before the hub and leave it after, so the layer count minus
    the local count never under-counts remote members; stale entries only over-count (an
    unneeded publish, never a missed one). Unknown layer types are assumed to have some.
    """
    layer = get_channel_layer()
    if not layer_is_shared(layer):
        return False
    if not isinstance(layer, RedisChannelLayer):
        return True
    try:
        # channels_redis keeps a group as a sorted set of channel names under _group_key().
        members = await layer.connection(layer.consistent_hash(group)).zcard(layer._group_key(group))
    except Exception:
        logger.exception("Could not count the members of %s; publishing to the group", group)
        return True
    return members > hub.count(group)


async def publish(group: str, frames: list[Frame], *, origin: str | None = None, remote: bool = True) -> None:
    """Send frames to every connection of a session: local inboxes, then (if `remote`) the group.

    A layer outage is logged, never raised: remote clients catch up from the database.
    """
    event: Frame = {"type": "chat.frames", "frames": frames, "origin": origin}
    hub.deliver(group, event)
    layer = get_channel_layer()
    if not remote or not layer_is_shared(layer):
        return
    try:
        await layer.group_send(group, dict(event, process=PROCESS_ID))
    except Exception:
        logger.exception("Channel layer send to %s failed; clients will catch up from the database", group)


class ReplyRegistry:
    """The replies this process is generating, by session primary key."""

    def __init__(self) -> None:
        self._jobs: dict[int, ReplyJob] = {}

    def get(self, session_pk: int) -> ReplyJob | None:
        """The reply being generated for a session in this process, if any."""
        return self._jobs.get(session_pk)

    def start(self, job: ReplyJob) -> asyncio.Task[None]:
        """Run `job` as a task that outlives the connection that started it."""
        self._jobs[job.session_pk] = job
        task = runtime.current().spawn(job.run(), name=f"reply-{job.session_pk}-{job.seq}", kind=runtime.REPLIES)
        job.task = task
        task.add_done_callback(lambda _: self._forget(job))
        return task

    def stop(self, session_pk: int) -> bool:
        """Ask the session's reply (if generated here) to stop; True when there was one."""
        job = self._jobs.get(session_pk)
        if job is None:
            return False
        job.request_stop()
        return True

    def _forget(self, job: ReplyJob) -> None:
        if self._jobs.get(job.session_pk) is job:
            del self._jobs[job.session_pk]

    async def drain(self) -> None:
        """Wait for every running reply, then close the control channel (tests and shutdown)."""
        await runtime.current().drain()
        await control.close()


registry = ReplyRegistry()


class ControlChannel:
    """This process's one channel for `stop` and snapshot requests from other processes.

    While a reply runs, this channel is a member of its session's control group; requests
    name the session, and the listener hands them to the reply in `registry`. One channel and
    one listener per process replace a channel, a listener and a wake-up message per reply.
    """

    def __init__(self) -> None:
        self._layer: BaseChannelLayer | None = None
        self._name = ""
        self._task: asyncio.Task[None] | None = None

    async def name(self, layer: BaseChannelLayer) -> str:
        """The channel name on `layer`, starting the listener on first use in this event loop."""
        task = self._task
        if self._layer is not layer or task is None or task.done() or task.get_loop() is not asyncio.get_running_loop():
            self._layer = layer
            self._name = await layer.new_channel()
            self._task = asyncio.create_task(self._listen(layer, self._name), name="reply-control")
        return self._name

    async def close(self) -> None:
        """End the listener with a message, not a cancel.

        Cancelling a pending channels_redis receive() breaks the process's shared receive loop.
        """
        task, layer, self._task, self._layer = self._task, self._layer, None, None
        if task is None or layer is None or task.done() or task.get_loop() is not asyncio.get_running_loop():
            return
        try:
            await layer.send(self._name, {"type": "control.close"})
            await asyncio.wait_for(asyncio.shield(task), 5)
        except Exception:
            logger.exception("Could not close the reply control channel cleanly")
            task.cancel()

    async def _listen(self, layer: BaseChannelLayer, name: str) -> None:
        while True:
            try:
                message = await layer.receive(name)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("Reply control channel receive failed; retrying")
                await asyncio.sleep(1)
                continue
            kind = message.get("type")
            if kind == "control.close":
                return
            job = registry.get(message.get("session"))  # type: ignore[arg-type]
            if job is None:
                continue
            if kind == "chat.stop":
                job.request_stop()
            elif kind == "chat.snapshot_request" and message.get("seq") == job.seq:
                # A connection in another process joined mid-reply: from now on it needs the group.
                job.remote = True
                try:
                    await layer.send(message["reply_channel"], job.snapshot_frame())
                except Exception:
                    logger.exception("Could not send a snapshot of reply %s", job.seq)


control = ControlChannel()


class DeltaCoalescer:
    """Batch reply text so at most one message per interval leaves for each reply."""

    def __init__(self, *, send: Callable[[list[Frame]], Awaitable[None]], seq: int, interval_s: float) -> None:
        self.send = send
        self.seq = seq
        self.interval_s = interval_s
        self.sent_chars = 0
        self.layer_messages = 0
        self._pending: list[str] = []
        self._last_flush = 0.0
        self._dirty = asyncio.Event()
        self._lock = asyncio.Lock()
        self._flusher: asyncio.Task[None] | None = None

    def append(self, text: str) -> None:
        """Queue text; the flusher sends it when the interval allows."""
        self._pending.append(text)
        self._dirty.set()
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush_loop())

    async def finish(self, end_frame: Frame, full_text: str) -> None:
        """Send what is pending together with `reply.end` in one layer message."""
        async with self._lock:
            if self._flusher is not None:
                self._flusher.cancel()
            frames = self._take_pending()
            end = dict(end_frame, _text=full_text)
            frames.append(end)
            self.layer_messages += 1
            await self.send(frames)

    async def _flush_loop(self) -> None:
        while True:
            await self._dirty.wait()
            delay = self._last_flush + self.interval_s - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            async with self._lock:
                self._dirty.clear()
                frames = self._take_pending()
                if frames:
                    self._last_flush = time.monotonic()
                    self.layer_messages += 1
                    await self.send(frames)

    def _take_pending(self) -> list[Frame]:
        if not self._pending:
            return []
        text = "".join(self._pending)
        self._pending.clear()
        frame = {"type": "reply.delta", "seq": self.seq, "text": text, "_offset": self.sent_chars}
        self.sent_chars += len(text)
        return [frame]


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
        group: str,
        control_group: str,
        user_message: ChatMessage,
        assistant_message: ChatMessage,
        history: list[tuple[str, str]],
        locale: str = "",
        announce: list[Frame] | None = None,
        origin: str | None = None,
    ) -> None:
        self.session_pk = session_pk
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
        self.origin = origin
        self.task: asyncio.Task[None] | None = None
        self._parts: list[str] = []
        self._stop_requested = False
        #: Whether a `stop` may cancel the task now: only while text is generated, never while
        #: the outcome is stored and announced (a cancel there lost the `reply.end`).
        self._generating = False
        #: Whether other processes need this reply's frames (see `has_remote_members`).
        self.remote = False
        self.coalescer = self._new_coalescer()

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
        """Generation (re)starts: a `stop` that came meanwhile takes effect now."""
        self._generating = True
        if self._stop_requested:
            raise asyncio.CancelledError

    def snapshot_frame(self) -> Frame:
        """The whole text so far, for a connection that joined mid-reply."""
        return {"type": "chat.snapshot", "seq": self.seq, "text": self.text}

    async def run(self) -> None:
        """The task body: stream through the provider chain, then store and announce the end."""
        started = time.monotonic()
        control_channel = await self._join_control_group()
        # After the join: a tab that joins the session group later reads this reply's row from
        # the database and asks for a snapshot, which reaches us and switches `remote` on.
        self.remote = await has_remote_members(self.group)
        await self._publish([*self.announce, self._start_frame()])
        checkpoints = asyncio.create_task(self._checkpoint_loop())
        result, hits, router, cache_key = _Result(), (), None, None
        cancelled_by_shutdown = False
        try:
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
        checkpoints: asyncio.Task[None],
    ) -> None:
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
        await self._announce_end(outcome, calls)
        self.segment = _Segment(
            pk=replacement.pk,
            message_id=str(replacement.public_id),
            seq=replacement.seq,
            started=time.monotonic(),
            retry_of=old.seq,
        )
        self.segment_pks.append(replacement.pk)
        self._parts = []
        self.coalescer = self._new_coalescer()
        await self._publish([self._start_frame()])
        self._generate()

    def _broken(self) -> str:
        return ChatMessage.Status.INTERRUPTED if self._parts else ChatMessage.Status.FAILED

    def _search(self) -> list[SearchHit]:
        return get_knowledge_base().search(self.query, limit=settings.KNOWLEDGE_MAX_SECTIONS)

    def _new_coalescer(self) -> DeltaCoalescer:
        return DeltaCoalescer(send=self._publish, seq=self.seq, interval_s=settings.CHAT_DELTA_INTERVAL_MS / 1000)

    def _start_frame(self) -> Frame:
        frame: Frame = {
            "type": "reply.start",
            "seq": self.segment.seq,
            "message_id": self.segment.message_id,
            "reply_to": self.reply_to,
        }
        if self.segment.retry_of is not None:
            frame["retry_of"] = self.segment.retry_of
        return frame

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

    @staticmethod
    def orphan_end_frame(item: protocol.HistoryMessage) -> Frame:
        """`reply.end` of a reply whose process died (`services.SessionOpened.interrupted`)."""
        return {
            "type": "reply.end",
            "seq": item["seq"],
            "message_id": item["message_id"],
            "status": item["status"],
            "provider": "",
            "model": "",
            "ttft_ms": None,
            "duration_ms": None,
            "usage": {"input_tokens": None, "output_tokens": None},
            "cached": False,
            "sources": [],
            "_text": item["text"],  # fills the gap of a tab that saw less than the last checkpoint
        }

    async def _announce_end(self, outcome: services.ReplyOutcome, calls: list[services.ProviderCallRecord]) -> None:
        end_frame: Frame = {
            "type": "reply.end",
            "seq": self.seq,
            "message_id": self.segment.message_id,
            "status": outcome.status,
            "provider": outcome.provider,
            "model": outcome.model,
            "ttft_ms": outcome.ttft_ms,
            "duration_ms": outcome.duration_ms,
            "usage": {"input_tokens": outcome.input_tokens, "output_tokens": outcome.output_tokens},
            "cached": outcome.cached,
            "sources": outcome.knowledge_sections,
        }
        if outcome.error_code:
            end_frame["error"] = outcome.error_code
        # For the analytics tracker (underscore fields never reach clients): the same counts
        # analytics rebuilds from this reply's ProviderCall rows.
        end_frame["_failovers"] = sum(1 for call in calls if call.fallback_from)
        end_frame["_errors"] = sum(1 for call in calls if call.outcome in {"error", "interrupted"})
        if not self.remote:
            # A remote tab that read this reply as streaming before `reply_finish` committed is
            # in the group by now; its snapshot request may come too late to reach us.
            self.remote = await has_remote_members(self.group)
        await self.coalescer.finish(end_frame, self.text)

    async def _publish(self, frames: list[Frame]) -> None:
        await publish(self.group, frames, origin=self.origin, remote=self.remote)

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
                await save(message_id=self.message_pk, text=self.text)
            except Exception:
                logger.exception("Checkpoint of reply %s failed", self.seq)


def _sources(hits: tuple[SearchHit, ...], provider: str) -> list[dict[str, object]]:
    """The sections a reply drew on: the ones the local assistant quoted, or all that were sent."""
    chosen = used_hits(hits) if provider == "local" else list(hits)
    return [{"id": hit.section.id, "title": hit.section.label, "score": hit.score} for hit in chosen]


def _ms_since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
