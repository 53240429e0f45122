"""Graceful shutdown of `manage.py serve`, for rolling restarts behind a proxy.

daphne's own SIGTERM handler stops the reactor at once: every reply being generated is cut
(its row stays `streaming` until the liveness rules end it) and every widget sees its socket
drop (1006) and reconnects after a backoff. Here SIGTERM (and Ctrl-C) start a sequence instead,
one INFO line per phase:

1. **Stop listening.** The listening sockets close, so new connections are refused and a proxy
   in front (deploy/nginx.conf) sends them to another process. The runtime is marked stopping:
   a visitor `message` is answered `restarting` (not stored, no `ack`), and the widget takes it
   to another process at once (docs/protocol.md).
2. **Replies finish**, for up to SHUTDOWN_GRACE_S; those still running then are cancelled and
   store themselves as `interrupted` (`Runtime.drain`), then the `before_close` hooks run
   (analytics flushes its trackers).
3. **Websockets close with 1012** (service restart), once the consumers have sent what the
   replies left for them (each `reply.end`). The widget reconnects at once, resumes its session
   and sends again the messages it has no `ack` for.
4. **Consumers end**: each runs its disconnect (releasing its slot, groups and tracker), for up
   to APPLICATION_CLOSE_S; the rest are cancelled when the reactor stops.
5. **Background work drains** and the service loops stop (`drain(stop=True)`); then the reactor
   stops, and `serve` records the process as stopped (`liveness.heartbeat.stop`).

A second signal means stop now: the replies are interrupted at once and every later wait is cut
to HURRY_S. A third stops the reactor without waiting for anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Awaitable
from typing import Any

from daphne.server import Server
from daphne.ws_protocol import WebSocketProtocol
from twisted.internet import defer, error

from assistant.protocol import CLOSE_SERVICE_RESTART
from project import runtime
from project.server import HardenedWebSocketProtocol

logger = logging.getLogger("parley.shutdown")

#: How long the drain may take after the replies (hooks, titles, analytics writes).
TAIL_S = 4.0
#: The close frames wait until no frame has been sent for SETTLE_QUIET_S, at most SETTLE_MAX_S.
SETTLE_QUIET_S = 0.05
SETTLE_MAX_S = 1.0
#: How long the consumers get to end after the close frames (autobahn drops a connection 1 s
#: after its close frame when the client does not answer).
APPLICATION_CLOSE_S = 3.0
#: After a second signal, each remaining phase gets at most this long.
HURRY_S = 2.0


class GracefulServer(Server):
    """daphne's `Server` that shuts down in phases on SIGTERM/SIGINT instead of stopping at once."""

    def __init__(self, *args: Any, grace_s: float, **kwargs: Any) -> None:
        kwargs["signal_handlers"] = False  # ours replace twisted's, which stop the reactor
        kwargs["ready_callable"] = self._install_signal_handlers
        super().__init__(*args, **kwargs)
        self.grace_s = grace_s
        self.ports: list[Any] = []
        self.shutdown: Shutdown | None = None

    def listen_success(self, port: Any) -> None:
        """Keep the listening port, to close it when shutdown begins."""
        self.ports.append(port)
        super().listen_success(port)

    def _install_signal_handlers(self) -> None:
        loop = asyncio.get_event_loop()  # the reactor's, set by `Server.run` just before this call
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.on_signal, signum)

    def on_signal(self, signum: int) -> None:
        """First signal: begin the shutdown; second: hurry it; third: stop the reactor now."""
        name = signal.Signals(signum).name
        if self.shutdown is None:
            logger.info("Shutdown: %s received; replies get up to %s s to finish", name, self.grace_s)
            self.shutdown = Shutdown(self)
            self.shutdown.start()
        elif not self.shutdown.hurried.is_set():
            logger.warning("Shutdown: second %s; interrupting the replies and stopping now", name)
            self.shutdown.hurry()
        else:
            logger.warning("Shutdown: third %s; stopping the reactor without waiting", name)
            self.stop()

    def stop(self) -> None:
        """Stop the reactor (once)."""
        with contextlib.suppress(error.ReactorNotRunning):
            super().stop()

    def kill_all_applications(self) -> defer.Deferred[Any]:
        """daphne's, skipping connections that have no application (still sending their request head)."""
        pending = [details["application_instance"] for details in self.connections.values() if _running(details)]
        for instance in pending:
            instance.cancel()
        if pending:
            logger.info("Shutdown: cancelled %d application instance(s) still running", len(pending))
        waited = defer.Deferred.fromFuture(asyncio.ensure_future(_after_cancelled(pending)))
        waited.addErrback(lambda _: None)
        return waited


class Shutdown:
    """One run of the shutdown sequence on the server's event loop."""

    def __init__(self, server: GracefulServer) -> None:
        self.server = server
        self.loop = asyncio.get_running_loop()
        self.hurried = asyncio.Event()
        self.hurry_deadline = float("inf")
        self.started = time.monotonic()
        self.tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        """Run the sequence as a task (not a runtime task: the drain it runs would wait for it)."""
        self.tasks.append(self.loop.create_task(self.run(), name="shutdown"))

    def hurry(self) -> None:
        """Stop now: interrupt every reply at once and cut the remaining waits to HURRY_S."""
        self.hurry_deadline = self.loop.time() + HURRY_S
        self.hurried.set()
        self.tasks.append(self.loop.create_task(runtime.current().cancel(runtime.REPLIES), name="shutdown-interrupt"))

    async def run(self) -> None:
        """The five phases, then the reactor stops whatever happened."""
        try:
            await self._phases()
        except Exception:
            logger.exception("Shutdown failed; stopping now")
        finally:
            self.server.stop()

    async def _phases(self) -> None:
        rt = runtime.current()
        sockets = len(self._websockets())
        ports = await self._stop_listening()
        rt.stopping = True  # no new replies: a `message` is answered `restarting`
        running = rt.tasks(runtime.REPLIES)
        logger.info(
            "Shutdown 1/5: stopped listening on %d port(s); %d websocket(s) open, %d repl(ies) running",
            ports,
            sockets,
            len(running),
        )

        await self._bounded(rt.drain(reply_grace_s=self.server.grace_s), self.server.grace_s + TAIL_S, "the drain")
        interrupted = sum(1 for task in running if task.cancelled())
        unfinished = sum(1 for task in running if not task.done())
        logger.info(
            "Shutdown 2/5: %d repl(ies) finished, %d interrupted%s",
            len(running) - interrupted - unfinished,
            interrupted,
            f", {unfinished} still running" if unfinished else "",
        )

        await self._settle()
        closed = self._close_websockets()
        logger.info("Shutdown 3/5: %d websocket(s) closed with %d (service restart)", closed, CLOSE_SERVICE_RESTART)

        ended, left = await self._wait_applications()
        logger.info("Shutdown 4/5: %d connection(s) ended, %d still running", ended, left)

        await self._bounded(rt.drain(reply_grace_s=0, stop=True), TAIL_S, "the final drain")
        logger.info("Shutdown 5/5: background work drained; stopping after %.1f s", time.monotonic() - self.started)

    # --- phases ----------------------------------------------------------------------------
    async def _stop_listening(self) -> int:
        """Close the listening sockets: new connections are refused from now on."""
        ports, self.server.ports = self.server.ports, []
        closing = [defer.maybeDeferred(port.stopListening).asFuture(self.loop) for port in ports]
        for outcome in await asyncio.gather(*closing, return_exceptions=True):
            if isinstance(outcome, BaseException):
                logger.warning("Shutdown: could not stop listening: %s", outcome)
        return len(ports)

    async def _settle(self) -> None:
        """Let the consumers send the frames the replies queued for them before the close frames."""
        deadline = min(self.loop.time() + SETTLE_MAX_S, self.hurry_deadline)
        while self.loop.time() < deadline:
            sent = HardenedWebSocketProtocol.frames_sent
            await asyncio.sleep(SETTLE_QUIET_S)
            if HardenedWebSocketProtocol.frames_sent == sent:
                return

    def _websockets(self) -> list[WebSocketProtocol]:
        """The websockets still open."""
        return [
            protocol
            for protocol in self.server.connections
            if isinstance(protocol, WebSocketProtocol) and protocol.state == protocol.STATE_OPEN
        ]

    def _close_websockets(self) -> int:
        """Send every open websocket a 1012 close frame; drop those still in their handshake."""
        closed = 0
        for protocol in list(self.server.connections):
            if not isinstance(protocol, WebSocketProtocol):
                continue
            if protocol.state == protocol.STATE_OPEN:
                # sendClose() accepts only 1000 and 3000-4999 from an application; 1012 is ours.
                protocol.sendCloseFrame(code=CLOSE_SERVICE_RESTART, reasonUtf8=b"service restart")
                closed += 1
            elif protocol.state == protocol.STATE_CONNECTING:
                protocol.dropConnection(abort=True)
        return closed

    async def _wait_applications(self) -> tuple[int, int]:
        """Wait for the application instances (consumers, HTTP views) to end; (ended, still running)."""
        running = {
            protocol: details["application_instance"]
            for protocol, details in self.server.connections.items()
            if _running(details)
        }
        timeout = min(APPLICATION_CLOSE_S, max(0.0, self.hurry_deadline - self.loop.time()))
        if running and timeout > 0:
            await asyncio.wait(running.values(), timeout=timeout)
        left = [protocol for protocol, instance in running.items() if not instance.done()]
        if left:
            logger.warning("Shutdown: still running after the close: %s", ", ".join(map(repr, left[:5])))
        return len(running) - len(left), len(left)

    async def _bounded(self, work: Awaitable[None], timeout: float, what: str) -> None:
        """Await `work` for up to `timeout` (HURRY_S from a second signal); cancel it after that."""
        task = asyncio.ensure_future(work)
        deadline = self.loop.time() + timeout
        while not task.done():
            remaining = min(deadline, self.hurry_deadline) - self.loop.time()
            if remaining <= 0:
                logger.warning("Shutdown: %s did not end in time; going on without it", what)
                task.cancel()
                await asyncio.wait({task}, timeout=1)
                return
            if self.hurried.is_set():
                await asyncio.wait({task}, timeout=remaining)
                continue
            hurried = self.loop.create_task(self.hurried.wait())
            await asyncio.wait({task, hurried}, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
            hurried.cancel()
        if not task.cancelled() and task.exception() is not None:
            logger.error("Shutdown: %s failed; going on", what, exc_info=task.exception())


async def _after_cancelled(pending: list[Any]) -> None:
    """Wait for cancelled consumers, then (briefly) for the analytics writes their closing started."""
    await asyncio.gather(*pending, return_exceptions=True)
    if pending:
        with contextlib.suppress(Exception):
            await runtime.current().wait(runtime.ANALYTICS, timeout=HURRY_S)


def _running(details: dict[str, Any]) -> bool:
    """Whether a daphne connection's application instance is still running."""
    instance = details.get("application_instance")
    return instance is not None and not instance.done()
