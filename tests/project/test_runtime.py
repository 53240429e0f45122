"""project.runtime: one owner for each event loop's background tasks."""

from __future__ import annotations

import asyncio
import sys

import pytest

from project import runtime
from project.runtime import Runtime


async def test_spawned_tasks_are_kept_by_kind_until_they_end() -> None:
    rt = Runtime(asyncio.get_running_loop())
    gate = asyncio.Event()
    reply = rt.spawn(gate.wait(), name="reply-1", kind=runtime.REPLIES)
    rt.spawn(gate.wait(), name="title-1", kind=runtime.TITLES)
    assert rt.tasks(runtime.REPLIES) == [reply] and len(rt.tasks()) == 2
    gate.set()
    await rt.wait(runtime.REPLIES)
    await rt.wait(runtime.TITLES)
    assert rt.tasks() == []


async def test_a_cancel_lost_inside_wait_for_is_honoured_at_the_next_checkpoint() -> None:
    """redis-py wraps its socket writes in `asyncio.wait_for`; on Python 3.11 a cancel that lands
    as the awaited result arrives is dropped there (CPython gh-86296). The task's cancel count
    still shows it, and `honour_lost_cancel` raises it at the next checkpoint."""
    gate = asyncio.get_running_loop().create_future()
    reached: list[str] = []

    async def body() -> None:
        await asyncio.wait_for(gate, 5)
        reached.append("past wait_for")
        runtime.honour_lost_cancel()
        reached.append("past the checkpoint")

    task = asyncio.create_task(body())
    await asyncio.sleep(0)  # the task now waits inside wait_for
    gate.set_result(None)
    task.cancel()  # in the same loop iteration as the result
    with pytest.raises(asyncio.CancelledError):
        await task
    assert "past the checkpoint" not in reached
    if sys.version_info < (3, 12):
        assert reached == ["past wait_for"]  # the race this guards against is real here


async def test_honour_lost_cancel_does_nothing_in_a_task_that_was_not_cancelled() -> None:
    runtime.honour_lost_cancel()
    task = asyncio.create_task(asyncio.sleep(0.01))
    await task  # a stop that was handled (`uncancel`) leaves the count at zero as well
    runtime.honour_lost_cancel()


async def test_drain_lets_replies_finish_within_the_grace_and_cancels_the_rest() -> None:
    rt = Runtime(asyncio.get_running_loop())
    outcomes: list[str] = []

    async def reply(seconds: float, name: str) -> None:
        try:
            await asyncio.sleep(seconds)
            outcomes.append(f"{name} complete")
        except asyncio.CancelledError:
            outcomes.append(f"{name} interrupted")  # a reply stores itself, then ends
            raise

    rt.spawn(reply(0.01, "quick"), name="quick", kind=runtime.REPLIES)
    rt.spawn(reply(30, "slow"), name="slow", kind=runtime.REPLIES)
    await asyncio.wait_for(rt.drain(reply_grace_s=0.2), 5)
    assert sorted(outcomes) == ["quick complete", "slow interrupted"]
    assert rt.tasks() == []


async def test_drain_runs_before_close_hooks_after_the_replies_and_then_waits_for_what_they_started() -> None:
    rt = Runtime(asyncio.get_running_loop())
    order: list[str] = []

    async def reply() -> None:
        await asyncio.sleep(0.01)
        order.append("reply ended")

    async def write() -> None:
        await asyncio.sleep(0.01)
        order.append("written")

    def flush() -> None:
        order.append("flush")
        rt.spawn(write(), name="writer", kind=runtime.ANALYTICS)

    rt.before_close(flush)
    rt.spawn(reply(), name="reply", kind=runtime.REPLIES)
    await rt.drain()
    assert order == ["reply ended", "flush", "written"]


async def test_services_run_once_per_loop_and_stop_with_drain_stop() -> None:
    rt = Runtime(asyncio.get_running_loop())
    starts: list[int] = []
    stopped: list[str] = []

    async def loop_forever() -> None:
        starts.append(1)
        await asyncio.Event().wait()

    first = rt.service("sweep", loop_forever)
    assert rt.service("sweep", loop_forever) is first
    rt.on_stop(lambda: stopped.append("hook"))
    await asyncio.sleep(0)
    await rt.drain(stop=True)
    assert first is not None and first.cancelled() and starts == [1] and stopped == ["hook"]
    assert rt.stopping and rt.service("sweep", loop_forever) is None  # nothing new once stopping


async def test_a_failing_task_or_hook_is_logged_and_does_not_stop_the_drain(caplog) -> None:
    rt = Runtime(asyncio.get_running_loop())

    async def broken() -> None:
        raise RuntimeError("boom")

    def broken_hook() -> None:
        raise RuntimeError("hook boom")

    rt.before_close(broken_hook)
    rt.spawn(broken(), name="broken-task", kind=runtime.ANALYTICS)
    await rt.drain()
    messages = " ".join(record.getMessage() for record in caplog.records)
    assert "broken-task" in messages and "broken_hook" in messages


async def test_current_is_one_runtime_per_event_loop_with_the_apps_hooks() -> None:
    made: list[Runtime] = []
    runtime.on_new_runtime(made.append)
    try:
        here = runtime.current()
        assert runtime.current() is here and here in made
        other = await asyncio.to_thread(lambda: asyncio.run(_current_in_new_loop()))
        assert other is not here
    finally:
        runtime._setups.remove(made.append)


async def _current_in_new_loop() -> Runtime:
    return runtime.current()


def test_startup_hooks_run_in_order_and_a_failure_does_not_stop_the_others(monkeypatch) -> None:
    calls: list[str] = []
    monkeypatch.setattr(runtime, "_startup", [])
    runtime.on_startup(lambda: calls.append("a"))
    runtime.on_startup(lambda: (_ for _ in ()).throw(RuntimeError("boom")))
    runtime.on_startup(lambda: calls.append("c"))
    runtime.run_startup()
    assert calls == ["a", "c"]
