"""Running one assistant reply as a task, and broadcasting it to the session's group.

The reply is owned by the process that received the visitor message, not by the connection:
if the visitor disconnects, the reply still finishes and is stored. Every connection of the
session, in any process, sees the stream through the session's channel-layer group. The layer is
at-most-once, so deltas carry a private `_offset` and `reply.end` the full text: a connection
that missed a delta (or joined late) fills the gap instead of showing a hole.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings

from assistant import protocol, services
from assistant.knowledge import SearchHit, get_knowledge_base
from assistant.models import ChatMessage
from assistant.providers.base import PromptMessage, ProviderError, ReplyRequest, TextChunk, UsageReport
from assistant.providers.local import used_hits
from assistant.providers.registry import get_provider

logger = logging.getLogger(__name__)

Frame = dict[str, Any]


async def publish(group: str, frames: list[Frame], *, origin: str | None = None) -> None:
    """Send frames to every connection of a session; a layer outage is logged, never raised."""
    try:
        await get_channel_layer().group_send(group, {"type": "chat.frames", "frames": frames, "origin": origin})
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
        task = asyncio.create_task(job.run(), name=f"reply-{job.session_pk}-{job.seq}")
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
        """Wait for every running reply (tests and graceful shutdown)."""
        tasks = [job.task for job in list(self._jobs.values()) if job.task is not None]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)


registry = ReplyRegistry()


class DeltaCoalescer:
    """Batch reply text so at most one layer message per interval leaves for each reply."""

    def __init__(self, *, group: str, seq: int, interval_s: float) -> None:
        self.group = group
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
            await publish(self.group, frames)

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
                    await publish(self.group, frames)

    def _take_pending(self) -> list[Frame]:
        if not self._pending:
            return []
        text = "".join(self._pending)
        self._pending.clear()
        frame = {"type": "reply.delta", "seq": self.seq, "text": text, "_offset": self.sent_chars}
        self.sent_chars += len(text)
        return [frame]


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
        self.message_pk = assistant_message.pk
        self.message_id = str(assistant_message.public_id)
        self.seq = assistant_message.seq
        self.history = tuple(PromptMessage(role=role, text=text) for role, text in history)
        self.locale = locale
        self.announce = announce or []
        self.origin = origin
        self.task: asyncio.Task[None] | None = None
        self._parts: list[str] = []
        self._stop_requested = False
        self.coalescer = DeltaCoalescer(group=group, seq=self.seq, interval_s=settings.CHAT_DELTA_INTERVAL_MS / 1000)

    @property
    def text(self) -> str:
        """The reply so far."""
        return "".join(self._parts)

    def request_stop(self) -> None:
        """Stop generating now; the partial text is kept as `stopped`."""
        if not self._stop_requested and self.task is not None and not self.task.done():
            self._stop_requested = True
            self.task.cancel()

    def snapshot_frame(self) -> Frame:
        """The whole text so far, for a connection that joined mid-reply."""
        return {"type": "chat.snapshot", "seq": self.seq, "text": self.text}

    async def run(self) -> None:
        """The task body: stream from the provider, then store and announce the end."""
        started = time.monotonic()
        start_frame: Frame = {
            "type": "reply.start",
            "seq": self.seq,
            "message_id": self.message_id,
            "reply_to": self.reply_to,
        }
        await publish(self.group, [*self.announce, start_frame], origin=self.origin)
        checkpoints = asyncio.create_task(self._checkpoint_loop())
        control = await self._join_control_group()
        status, error, ttft_ms, usage, hits, provider_name, model = "complete", "", None, UsageReport(), (), "", ""
        cancelled_by_shutdown = False
        try:
            async with asyncio.timeout(settings.CHAT_REPLY_TIMEOUT_S):
                hits = tuple(await asyncio.to_thread(self._search))
                provider = get_provider()
                provider_name, model = provider.name, provider.model
                request = ReplyRequest(
                    query=self.query,
                    history=self.history,
                    hits=hits,
                    quick_replies=tuple(settings.ASSISTANT_QUICK_REPLIES),
                    locale=self.locale,
                )
                async for event in provider.stream(request):
                    if isinstance(event, TextChunk) and event.text:
                        if ttft_ms is None:
                            ttft_ms = _ms_since(started)
                        self._parts.append(event.text)
                        self.coalescer.append(event.text)
                    elif isinstance(event, UsageReport):
                        usage = event
        except asyncio.CancelledError:
            if self._stop_requested:
                status = ChatMessage.Status.STOPPED
                asyncio.current_task().uncancel()  # type: ignore[union-attr]
            else:
                status, cancelled_by_shutdown = ChatMessage.Status.INTERRUPTED, True
        except TimeoutError:
            status, error = self._broken(), protocol.REPLY_TIMEOUT
        except ProviderError as exc:
            logger.warning("Reply %s of session %s: %s", self.seq, self.session_pk, exc)
            status, error = self._broken(), protocol.PROVIDER_UNAVAILABLE
        except Exception:
            logger.exception("Reply %s of session %s crashed", self.seq, self.session_pk)
            status, error = self._broken(), protocol.INTERNAL_ERROR
        finally:
            checkpoints.cancel()
        await self._finish(status, error, ttft_ms, usage, hits, provider_name, model, started)
        await self._leave_control_group(control)
        if cancelled_by_shutdown:
            raise asyncio.CancelledError

    def _broken(self) -> str:
        return ChatMessage.Status.INTERRUPTED if self._parts else ChatMessage.Status.FAILED

    def _search(self) -> list[SearchHit]:
        return get_knowledge_base().search(self.query, limit=settings.KNOWLEDGE_MAX_SECTIONS)

    async def _finish(
        self,
        status: str,
        error: str,
        ttft_ms: int | None,
        usage: UsageReport,
        hits: tuple[SearchHit, ...],
        provider_name: str,
        model: str,
        started: float,
    ) -> None:
        text = self.text
        sources = [
            {"id": hit.section.id, "title": hit.section.label, "score": hit.score}
            for hit in (used_hits(hits) if provider_name == "local" else list(hits))
        ]
        outcome = services.ReplyOutcome(
            text=text,
            status=status,
            provider=provider_name,
            model=model,
            ttft_ms=ttft_ms,
            duration_ms=_ms_since(started),
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cached=False,
            error_code=error,
            knowledge_sections=sources,
        )
        try:
            await asyncio.shield(
                database_sync_to_async(services.reply_finish)(message_id=self.message_pk, outcome=outcome)
            )
        except Exception:
            logger.exception("Could not store reply %s of session %s", self.seq, self.session_pk)
        end_frame: Frame = {
            "type": "reply.end",
            "seq": self.seq,
            "message_id": self.message_id,
            "status": status,
            "provider": provider_name,
            "model": model,
            "ttft_ms": ttft_ms,
            "duration_ms": outcome.duration_ms,
            "usage": {"input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens},
            "cached": False,
            "sources": sources,
        }
        if error:
            end_frame["error"] = error
        await self.coalescer.finish(end_frame, text)

    async def _join_control_group(self) -> tuple[str, asyncio.Task[None]] | None:
        """Listen for `stop` and snapshot requests from connections on any process."""
        layer = get_channel_layer()
        try:
            # The default prefix: channels_redis runs one receive loop per prefix behind one lock,
            # so a second prefix would starve the consumers' channels in this process.
            channel = await layer.new_channel()
            await layer.group_add(self.control_group, channel)
        except Exception:
            logger.exception("Reply %s cannot hear stop requests from other processes", self.seq)
            return None
        return channel, asyncio.create_task(self._listen(channel))

    async def _leave_control_group(self, control: tuple[str, asyncio.Task[None]] | None) -> None:
        if control is None:
            return
        channel, listener = control
        layer = get_channel_layer()
        try:
            await layer.group_discard(self.control_group, channel)
            # End the listener with a message, not a cancel: cancelling a pending
            # channels_redis receive() breaks the process's shared receive loop.
            await layer.send(channel, {"type": "reply.done"})
            await asyncio.wait_for(asyncio.shield(listener), 5)
        except Exception:
            logger.exception("Could not leave %s cleanly", self.control_group)
            listener.cancel()

    async def _listen(self, channel: str) -> None:
        layer = get_channel_layer()
        while True:
            message = await layer.receive(channel)
            kind = message.get("type")
            if kind == "reply.done":
                return
            if kind == "chat.stop":
                self.request_stop()
            elif kind == "chat.snapshot_request" and message.get("seq") == self.seq:
                try:
                    await layer.send(message["reply_channel"], self.snapshot_frame())
                except Exception:
                    logger.exception("Could not send a snapshot of reply %s", self.seq)

    async def _checkpoint_loop(self) -> None:
        interval = settings.CHAT_CHECKPOINT_INTERVAL_S
        save = database_sync_to_async(services.reply_checkpoint)
        while True:
            await asyncio.sleep(interval)
            try:
                await save(message_id=self.message_pk, text=self.text)
            except Exception:
                logger.exception("Checkpoint of reply %s failed", self.seq)


def _ms_since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
