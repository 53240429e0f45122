"""The background service that delivers the outbox: one per server process (a `project.runtime` service).

Started when `manage.py serve` begins serving (`ensure_running`, a runtime serving hook), it
loops: store the results of finished sends, claim as many due deliveries as it has free slots
(WEBHOOK_MAX_CONCURRENCY), send each as its own task, then sleep until woken: by a send that
finished, by a transaction of this process that wrote outbox rows (`wakeup.ring` after commit),
or after WEBHOOK_POLL_INTERVAL_S (rows of other processes, retries come due). Every N minutes it
also prunes old rows.

The chat path never waits for any of this: nothing is sent from a request or a consumer; the
dispatcher's database work runs on its own thread (`_db`), not the thread the chat's
`database_sync_to_async` calls share; results are stored in batches, one transaction each; and
while visitors keep the CPU busy the dispatcher gives way to them (`pacing`: one delivery every
0.2 s, for at most WEBHOOK_DEFER_MAX_S). `manage.py deliver_webhooks` runs the same loop in a
process of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from django.conf import settings
from django.core.mail import send_mail
from django.db import close_old_connections, connection
from django.utils import timezone

from assistant import liveness
from assistant import services as chat
from project import runtime
from webhooks import outbox, pacing, routes, wakeup
from webhooks.outbox import Claimed, Disabled, Result
from webhooks.sender import Sender

logger = logging.getLogger(__name__)

SERVICE = "webhooks-dispatcher"
PRUNE_EVERY_S = 600.0
T = TypeVar("T")

#: The dispatcher's own database thread (its own connection): the chat's shared one never waits for it.
_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="webhooks-db")
_owners = itertools.count(1)


def _db(fn: Callable[..., T]) -> Callable[..., Any]:
    return database_sync_to_async(fn, thread_sensitive=False, executor=_executor)


class Dispatcher:
    """Claims, sends and records deliveries for one event loop."""

    def __init__(self) -> None:
        #: This dispatcher's lease token: the process, then a counter (tests run several loops).
        self.owner = f"{liveness.PROCESS_ID}:{next(_owners)}"
        self.wake = asyncio.Event()
        self.sender = Sender()
        self.pacer = pacing.current()
        self.sending: set[asyncio.Task[None]] = set()
        self.results: list[Result] = []
        #: One flush at a time: `drain` must not return while the loop's own flush is still storing.
        self._flush_lock = asyncio.Lock()
        self.sent = 0  # attempts stored (tests, the benchmark)
        #: The oldest due delivery waited longer than WEBHOOK_DEFER_MAX_S: full speed, busy or not.
        self.late = False
        self.deferred = 0  # rounds that gave way to the chat (the benchmark)
        self._trickled_at = 0.0
        self._pruned_at = 0.0
        self.bell = wakeup.Bell(asyncio.get_running_loop(), self.wake)  # registered while `run` runs

    async def run(self) -> None:
        """Deliver until cancelled; what is in flight then is released for another try."""
        loop = asyncio.get_running_loop()
        self.bell = wakeup.register(loop, self.wake)
        try:
            while True:
                self.wake.clear()
                try:
                    pause = await self.step()
                except Exception:
                    logger.exception("Webhook dispatcher step failed; retrying")
                    pause = float(settings.WEBHOOK_POLL_INTERVAL_S)
                if pause > 0:
                    # Not `asyncio.wait_for`: on Python 3.11 it loses a cancel that lands as the
                    # event is set (CPython gh-86296), and shutdown would wait for us forever.
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(pause):
                            await self.wake.wait()
                runtime.honour_lost_cancel()
        finally:
            wakeup.unregister(self.wake)
            await self._stop()

    async def step(self) -> float:
        """One round: store results, claim and start sends, prune now and then.

        Returns how long to wait before the next round (unless woken): 0 when more may be due now.
        """
        if self.results:
            await self.flush()
        poll = float(settings.WEBHOOK_POLL_INTERVAL_S)
        free = settings.WEBHOOK_MAX_CONCURRENCY - len(self.sending)
        limit = free
        giving_way = free > 0 and not self.late and self.pacer.busy()
        if giving_way:  # the chat first: one delivery per BUSY_INTERVAL_S
            now = time.monotonic()
            limit = 1 if now - self._trickled_at >= pacing.BUSY_INTERVAL_S else 0
            self._trickled_at = now if limit else self._trickled_at
            self.deferred += 1
        claimed: list[Claimed] = []
        if limit > 0:
            claimed = await _db(outbox.claim)(limit=limit, owner=self.owner)
            for delivery in claimed:
                task = asyncio.get_running_loop().create_task(self._send(delivery), name=f"webhook-{delivery.pk}")
                self.sending.add(task)
                task.add_done_callback(self.sending.discard)
            self._note_lateness(claimed, full=limit == free)
        if time.monotonic() - self._pruned_at > PRUNE_EVERY_S:
            self._pruned_at = time.monotonic()
            try:
                await _db(outbox.prune)()
            except Exception:
                logger.exception("Could not prune old webhook deliveries")
        # New rows ring only when they could change something: not while giving way (the next
        # trickle comes by the clock), not with every slot busy (a finished send wakes us).
        self.bell.armed = not giving_way and len(self.sending) < settings.WEBHOOK_MAX_CONCURRENCY
        if giving_way:
            return min(poll, pacing.BUSY_INTERVAL_S)
        return 0.0 if claimed and len(claimed) == free else poll  # a full batch: more may be waiting

    def _note_lateness(self, claimed: list[Claimed], *, full: bool) -> None:
        """Go full speed once a due delivery waited WEBHOOK_DEFER_MAX_S; back to pacing once caught up."""
        defer_max = float(settings.WEBHOOK_DEFER_MAX_S)
        if not claimed:
            self.late = self.late and not full
            return
        waited = max((timezone.now() - delivery.due_at).total_seconds() for delivery in claimed)
        if waited > defer_max:
            if not self.late:
                logger.warning("Webhook deliveries waited %.0f s behind the chat; delivering at full speed", waited)
            self.late = True
        elif waited < defer_max / 2:
            self.late = False

    async def _send(self, delivery: Claimed) -> None:
        result = await self.sender.send(delivery)
        if not result.ok:
            logger.info(
                "Webhook %s (%s) to endpoint %s failed (attempt %d): %s",
                delivery.event_id,
                delivery.event_type,
                delivery.endpoint_id,
                result.attempts + 1,
                result.error,
            )
        self.results.append(result)
        self.wake.set()

    async def flush(self) -> None:
        """Store the results gathered so far (one transaction), then tell the owners of disabled endpoints."""
        async with self._flush_lock:
            results, self.results = self.results, []
            if not results:
                return
            try:
                disabled = await _db(outbox.finish)(results=results, owner=self.owner)
            except Exception:
                self.results = results + self.results  # kept for the next round; the leases still hold
                raise
            self.sent += len(results)
        if disabled:
            routes.invalidate()  # no new rows for them from this process (others: within the TTL)
        for endpoint in disabled:
            logger.warning("Webhook endpoint %s (%s) disabled: %s", endpoint.endpoint_id, endpoint.url, endpoint.reason)
            if endpoint.email:  # a thread of its own: an SMTP server may take EMAIL_TIMEOUT
                await sync_to_async(_tell_owner, thread_sensitive=False)(endpoint)

    async def drain(self, timeout: float = 10.0) -> None:
        """Wait for the sends in flight and store their results (tests, the benchmark)."""
        if self.sending:
            await asyncio.wait(list(self.sending), timeout=timeout)
        await self.flush()  # also waits for a flush of the loop's that is storing meanwhile

    async def _stop(self) -> None:
        """Cancel the sends in flight, store what finished, give back the other leases, close clients."""
        tasks = list(self.sending)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        try:
            if self.results:
                await self.flush()
            await _db(outbox.release)(owners=[self.owner])
        except Exception:
            logger.exception("Could not release this process's webhook leases; they expire in %s s", outbox.lease_s())
        await self.sender.close()
        self.pacer.stop()


def _tell_owner(endpoint: Disabled) -> None:
    """Email the owner of an endpoint disabled for failing (a failure to send is logged, not raised)."""
    name = endpoint.description or endpoint.url
    try:
        send_mail(
            subject=f"Parley disabled the webhook endpoint {name[:80]}",
            message=(
                f"The webhook endpoint {endpoint.url} kept failing and was disabled.\n\n{endpoint.reason}\n\n"
                "Deliveries still pending stay in the outbox. Fix the receiver, then switch the endpoint back "
                "on in the admin (Webhooks › Endpoints): they are sent again, and the delivery log shows "
                "every attempt.\n"
            ),
            from_email=None,
            recipient_list=[endpoint.email],
        )
    except Exception:
        logger.exception("Could not email %s that webhook endpoint %s was disabled", endpoint.email, endpoint.url)


# --- the per-loop service ------------------------------------------------------------------------
def current() -> Dispatcher:
    """This event loop's dispatcher (made on first use)."""
    return runtime.current().state("webhooks-dispatcher", Dispatcher)


def ensure_running() -> None:
    """Start this event loop's dispatcher, once (a runtime service: stopped at shutdown).

    Not with WEBHOOK_DELIVER off: this process only records (others, e.g. `manage.py
    deliver_webhooks`, deliver).
    """
    if settings.WEBHOOK_DELIVER:
        runtime.current().service(SERVICE, current().run)


async def stop() -> None:
    """Stop this event loop's dispatcher (tests)."""
    await runtime.current().stop_service(SERVICE)


def startup() -> None:
    """Before serving (`manage.py serve`): give back the leases of server processes known dead.

    A process killed mid-send leaves its lease; waiting for it to expire would delay that event
    (and the conversation's later ones) by WEBHOOK_TIMEOUT_S + 30 s. Alone on the in-memory
    layer, every lease is a dead predecessor's.
    """
    try:
        if liveness.sole_process():
            released = outbox.release()
        else:
            released = sum(outbox.release(prefix=f"{dead}:") for dead in chat.processes_dead(heard_within_s=86400))
    except Exception:
        logger.exception("Could not release the webhook leases of dead processes; they expire by themselves")
        return
    if released:
        logger.info("Webhooks: %d delivery lease(s) of a stopped process released", released)


def close_connection() -> None:
    """Close the dispatcher thread's database connection (tests, before the database goes)."""
    _executor.submit(_close).result(timeout=10)


def _close() -> None:
    close_old_connections()
    connection.close()
