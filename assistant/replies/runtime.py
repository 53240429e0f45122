"""The replies this process generates, and its one control channel for requests from others.

`registry` finds the reply of a session generated here (for `stop`, snapshots and titles);
its tasks belong to `project.runtime` (kind ``replies``), so shutdown and the tests drain them
with everything else. `control` is this process's one channel-layer channel for `stop` and
snapshot requests from connections in other processes.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
import weakref
from typing import TYPE_CHECKING, Any

from channels.layers import BaseChannelLayer, get_channel_layer

from assistant.delivery import layer_is_shared
from assistant.groups import reply_control_group
from project import runtime

if TYPE_CHECKING:
    from assistant.replies.job import ReplyJob

logger = logging.getLogger(__name__)


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
        job.started()
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
        self._hooked: weakref.WeakSet[runtime.Runtime] = weakref.WeakSet()

    async def name(self, layer: BaseChannelLayer) -> str:
        """The channel name on `layer`, starting the listener on first use in this event loop."""
        task = self._task
        if self._layer is not layer or task is None or task.done() or task.get_loop() is not asyncio.get_running_loop():
            self._layer = layer
            self._name = await layer.new_channel()
            self._task = asyncio.create_task(self._listen(layer, self._name), name="reply-control")
            loop_runtime = runtime.current()
            if loop_runtime not in self._hooked:
                self._hooked.add(loop_runtime)
                loop_runtime.on_stop(self.close)  # shutdown ends the listener with a message
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


async def request_stop(session_pk: int, public_id: uuid.UUID | str) -> None:
    """Stop the session's reply, in this process or (through its control group) in another."""
    layer = get_channel_layer()
    if not registry.stop(session_pk) and layer_is_shared(layer):
        await layer.group_send(reply_control_group(public_id), {"type": "chat.stop", "session": session_pk})


async def request_snapshot(
    session_pk: int, public_id: uuid.UUID | str, seq: int, reply_channel: str, inbox: asyncio.Queue[Any]
) -> None:
    """Ask the process generating reply `seq` for its text so far, sent to `reply_channel` (or `inbox` here)."""
    job = registry.get(session_pk)
    if job is not None and job.seq == seq:
        inbox.put_nowait(job.snapshot_frame())
        return
    layer = get_channel_layer()
    if layer_is_shared(layer):
        await layer.group_send(
            reply_control_group(public_id),
            {"type": "chat.snapshot_request", "session": session_pk, "seq": seq, "reply_channel": reply_channel},
        )
