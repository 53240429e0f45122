"""Chat first: the dispatcher gives way while the chat keeps this process's event loop busy.

The dispatcher shares its process and event loop with the chat, and a delivery costs CPU (about
0.3 ms: signing, HTTP, the outbox's writes). When the chat is saturating the loop, every
delivery made then is a turn not served, so deliveries wait (the outbox holds them) and the
dispatcher only trickles one every `BUSY_INTERVAL_S` — until the oldest due one has waited
WEBHOOK_DEFER_MAX_S: from then on it delivers at full speed whatever the load (the chat pays,
a webhook is never held back longer than that by load alone). WEBHOOK_DEFER_MAX_S=0 never defers.

"Busy" needs both signs: visitors are chatting here (a message in the last `ACTIVE_S`) and the
CPU is short: this process uses most of the one core its interpreter lock allows, or the host's
cores are nearly all in use (Linux: /proc/stat), measured every 0.1 s and smoothed, above
`BUSY_ABOVE` until below `CALM_BELOW`. Chat waiting on an AI vendor leaves the CPU idle and does
not count, and neither do deliveries keeping it busy alone. (Measured at saturation on 2 cores:
the loop's lateness stays at 1-2 ms and its thread's CPU near 40 %, the database thread doing
the rest; neither tells a saturated server from an idle one, the CPU shares do.)
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from django.conf import settings

from assistant import events
from project import runtime

TICK_S = 0.1
#: CPU pressure (the larger of the process's share of one core and the host's busy share,
#: smoothed) above which the chat counts as busy…
BUSY_ABOVE = 0.8
#: …and below which it is calm again.
CALM_BELOW = 0.6
#: A visitor or agent message this recently means the chat is active here.
ACTIVE_S = 1.0
#: While the chat is busy, one delivery per this many seconds.
BUSY_INTERVAL_S = 0.2
SMOOTHING = 0.3


class Pacer:
    """This event loop's view of how busy the chat keeps it."""

    def __init__(self) -> None:
        self.pressure = 0.0
        self.loaded = False
        self.active_at = -1e9
        self._watching: asyncio.Task[None] | None = None

    def chat_activity(self) -> None:
        """A visitor or agent message was handled here."""
        self.active_at = time.monotonic()

    def busy(self) -> bool:
        """Whether deliveries should give way now."""
        if settings.WEBHOOK_DEFER_MAX_S <= 0:
            return False
        self._watch()
        return self.loaded and time.monotonic() - self.active_at < ACTIVE_S

    def _watch(self) -> None:
        if self._watching is None or self._watching.done():
            self._watching = asyncio.get_running_loop().create_task(self._measure(), name="webhooks-pacer")

    async def _measure(self) -> None:
        """Measure the CPU pressure while the chat is active (an idle process pays nothing)."""
        host = _host_cpu()
        while time.monotonic() - self.active_at < 10 * ACTIVE_S:
            wall, cpu = time.monotonic(), time.process_time()
            await asyncio.sleep(TICK_S)
            process = (time.process_time() - cpu) / max(1e-3, time.monotonic() - wall)
            now = _host_cpu()
            busy_host = 0.0
            if host is not None and now is not None and now[1] > host[1]:
                busy_host = 1 - (now[0] - host[0]) / (now[1] - host[1])
            host = now
            self.pressure += SMOOTHING * (max(process, busy_host) - self.pressure)
            self.loaded = self.pressure > (CALM_BELOW if self.loaded else BUSY_ABOVE)
        self.pressure, self.loaded = 0.0, False

    def stop(self) -> None:
        if self._watching is not None:
            self._watching.cancel()


def _host_cpu() -> tuple[int, int] | None:
    """(idle, total) CPU ticks of the host since boot (/proc/stat); None where there is none."""
    try:
        with open("/proc/stat", "rb") as stat:
            fields = [int(value) for value in stat.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    return fields[3] + fields[4], sum(fields)  # idle + iowait; user…steal


def current() -> Pacer:
    """This event loop's pacer."""
    return runtime.current().state("webhooks-pacer", Pacer)


def chat_activity(event: Any) -> None:
    """Bus subscriber (`MessageStored`, `AgentMessageStored`): mark the chat active in this loop.

    Only the pacer of a loop whose dispatcher runs is kept up to date; others ignore it.
    """
    pacer = runtime.current().peek("webhooks-pacer")
    if pacer is not None:
        pacer.chat_activity()


def connect() -> None:
    """Subscribe to the chat's messages (originals only: a copy is another process's work)."""
    events.subscribe(events.MessageStored, chat_activity)
    events.subscribe(events.AgentMessageStored, chat_activity)
