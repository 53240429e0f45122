"""One owner for the background work of an event loop: spawn, name, cancel, drain.

A server process runs one event loop, and everything that outlives the request or frame that
started it runs here: reply tasks, the analytics writer and its final rebuilds, title calls,
the live dashboard feed, the periodic sweep and the reply control listener. Before this module
each of them kept its own set of tasks and its own `drain()`, and nothing drained them at
shutdown. Now each spawns through `current()`, under a *kind*, and shutdown (see
`project.server`) and the tests drain them in one order:

1. ``replies`` finish (up to a grace period, then they are cancelled and store themselves
   as `interrupted`);
2. the ``before_close`` hooks run (analytics flushes every tracker), then the other kinds
   are waited for, in `DRAIN_ORDER`;
3. services (the sweep, the control listener) are stopped by their ``on_stop`` hooks.

Tests run many event loops in one process; state is kept per loop and forgotten with it.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

logger = logging.getLogger(__name__)

#: Kinds of background task, waited for in this order by `Runtime.drain` (unknown kinds last).
REPLIES = "replies"
TITLES = "titles"
ANALYSIS = "analysis"  # conversation analyses started when a session closes (analytics.intelligence.hook)
ANALYTICS = "analytics"
LIVE = "live"
SERVICE = "service"  # long-lived loops (sweep, control listener): stopped, not waited for
DRAIN_ORDER = (REPLIES, TITLES, ANALYSIS, "subscribers", ANALYTICS, LIVE)

Hook = Callable[[], Awaitable[None] | None]


class Runtime:
    """The background tasks and per-loop state of one event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        # Weakly: the loop is the key of `_runtimes`, and a strong reference here would keep
        # every test's loop (and its trackers and tasks) alive for the whole run.
        self._loop = weakref.ref(loop)
        self._tasks: dict[asyncio.Task[Any], str] = {}
        self._services: dict[str, asyncio.Task[Any]] = {}
        self._state: dict[str, Any] = {}
        self._before_close: list[tuple[int, Hook]] = []
        self._on_stop: list[tuple[int, Hook]] = []
        #: Set once shutdown began: no new replies, no new service loops.
        self.stopping = False

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The event loop this runtime belongs to."""
        loop = self._loop()
        if loop is None:
            raise RuntimeError("This runtime's event loop is gone.")
        return loop

    # --- tasks -----------------------------------------------------------------------------
    def spawn(self, coro: Coroutine[Any, Any, Any], *, name: str, kind: str) -> asyncio.Task[Any]:
        """Run `coro` as a named task of `kind`, kept until it ends (its failure is logged)."""
        task = self.loop.create_task(coro, name=name)
        self._tasks[task] = kind
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.pop(task, None)
        if not task.cancelled() and task.exception() is not None:
            logger.error("Background task %s failed", task.get_name(), exc_info=task.exception())

    def tasks(self, kind: str | None = None) -> list[asyncio.Task[Any]]:
        """The running tasks of `kind` (all kinds when None)."""
        return [task for task, k in self._tasks.items() if kind is None or k == kind]

    def service(self, name: str, start: Callable[[], Coroutine[Any, Any, Any]]) -> asyncio.Task[Any] | None:
        """Run one long-lived loop named `name` per event loop: started once, restarted if it ended.

        Returns None (and starts nothing) once shutdown began.
        """
        task = self._services.get(name)
        if task is not None and not task.done():
            return task
        if self.stopping:
            return None
        task = self.loop.create_task(start(), name=name)
        self._services[name] = task
        return task

    async def stop_service(self, name: str) -> None:
        """Cancel the loop `name` and wait for it."""
        task = self._services.pop(name, None)
        if task is not None and not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def wait(self, kind: str, timeout: float | None = None) -> bool:
        """Wait for the tasks of `kind`, and for those they start meanwhile; False on timeout."""
        deadline = None if timeout is None else self.loop.time() + timeout
        while tasks := self.tasks(kind):
            remaining = None if deadline is None else deadline - self.loop.time()
            if remaining is not None and remaining <= 0:
                return False
            _, pending = await asyncio.wait(tasks, timeout=remaining)
            if pending and deadline is not None and self.loop.time() >= deadline:
                return False
        return True

    async def cancel(self, kind: str) -> None:
        """Cancel the tasks of `kind` and wait until they have ended (they may clean up)."""
        await asyncio.sleep(0)  # a task created just now takes its first step, so it can clean up
        tasks = self.tasks(kind)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    # --- hooks and state -------------------------------------------------------------------
    def before_close(self, hook: Hook, *, order: int = 0) -> None:
        """Run `hook` in `drain`, after the replies ended and before the other kinds are waited for."""
        self._before_close.append((order, hook))

    def on_stop(self, hook: Hook, *, order: int = 0) -> None:
        """Run `hook` at the end of `drain(stop=True)` (closing listeners and clients)."""
        self._on_stop.append((order, hook))

    def state(self, key: str, factory: Callable[[], Any]) -> Any:
        """This loop's object for `key`, made by `factory` on first use (e.g. a writer or a feed)."""
        value = self._state.get(key)
        if value is None:
            value = self._state[key] = factory()
        return value

    def peek(self, key: str) -> Any:
        """This loop's object for `key`, or None when none was made."""
        return self._state.get(key)

    # --- draining --------------------------------------------------------------------------
    async def drain(self, *, reply_grace_s: float | None = None, stop: bool = False) -> None:
        """Let the background work end, in `DRAIN_ORDER`.

        `reply_grace_s`: how long replies may still run; those still running after it are
        cancelled (they store themselves as `interrupted`). None waits for them however long.
        `stop`: also stop the service loops and run the `on_stop` hooks (shutdown; tests that
        end their event loop).
        """
        if stop:
            self.stopping = True
        if not await self.wait(REPLIES, reply_grace_s):
            logger.warning(
                "Shutdown: %d repl(ies) still running after %s s are interrupted",
                len(self.tasks(REPLIES)),
                reply_grace_s,
            )
            await self.cancel(REPLIES)
        for _, hook in sorted(self._before_close, key=lambda item: item[0]):
            await _run_hook(hook)
        kinds = [*DRAIN_ORDER[1:], *sorted({k for k in self._tasks.values() if k not in DRAIN_ORDER})]
        for kind in kinds:
            await self.wait(kind)
        if stop:
            for _, hook in sorted(self._on_stop, key=lambda item: item[0]):
                await _run_hook(hook)
            for name in list(self._services):
                await self.stop_service(name)


async def _run_hook(hook: Hook) -> None:
    try:
        result = hook()
        if result is not None:
            await result
    except Exception:
        logger.exception("Runtime hook %r failed", hook)


_runtimes: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Runtime] = weakref.WeakKeyDictionary()
#: Called with each new Runtime, so apps can register their hooks on every event loop.
_setups: list[Callable[[Runtime], None]] = []


def current() -> Runtime:
    """The running event loop's runtime (made on first use)."""
    loop = asyncio.get_running_loop()
    runtime = _runtimes.get(loop)
    if runtime is None:
        runtime = _runtimes[loop] = Runtime(loop)
        for setup in _setups:
            try:
                setup(runtime)
            except Exception:
                logger.exception("Runtime setup %r failed", setup)
    return runtime


def honour_lost_cancel() -> None:
    """Raise `CancelledError` in a task whose cancel was requested but never arrived.

    On Python 3.11 `asyncio.wait_for` returns its inner result when a cancel lands in the same
    loop iteration as that result, and the cancel is gone (CPython gh-86296, fixed in 3.12).
    redis-py wraps every socket write in `wait_for`, so with the Redis layer a shutdown's cancel
    that reached a reply during a group_add or a publish vanished and the reply ran to its end.
    The task's cancel count still records the request: long tasks call this at their
    checkpoints (each chunk of a reply), and the cancel takes effect at the next one.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def on_new_runtime(setup: Callable[[Runtime], None]) -> None:
    """Call `setup` for every event loop's runtime (apps register hooks from `AppConfig.ready`)."""
    _setups.append(setup)
    for runtime in list(_runtimes.values()):
        setup(runtime)


# --- process lifecycle (manage.py serve) -----------------------------------------------------
_startup: list[Callable[[], None]] = []


def on_startup(hook: Callable[[], None]) -> None:
    """Run `hook` when a server process starts, before it accepts connections (sync, may block)."""
    _startup.append(hook)


def run_startup() -> None:
    """Called by `manage.py serve` before it listens; a failing hook is logged, not raised."""
    for hook in _startup:
        try:
            hook()
        except Exception:
            logger.exception("Startup hook %r failed", hook)


_serving: list[Callable[[], None]] = []


def on_serving(hook: Callable[[], None]) -> None:
    """Run `hook` on the server's event loop once it runs (`manage.py serve`): start a service
    that must not wait for the first connection (e.g. the webhook dispatcher)."""
    _serving.append(hook)


def run_serving() -> None:
    """Called by `manage.py serve` as its event loop starts: the serving hooks run on it, in order."""
    asyncio.get_event_loop().call_soon(_run_serving)


def _run_serving() -> None:
    for hook in _serving:
        try:
            hook()
        except Exception:
            logger.exception("Serving hook %r failed", hook)
