"""Which chat server processes are alive, so that what a dead one left behind is ended at once.

A streaming reply belongs to the process generating it (`ChatMessage.owner`), and a session to
the process that last served it (`ChatSession.served_by`). Each `manage.py serve` process records
itself as a `ServerProcess` row at startup, writes `heartbeat_at` every `PROCESS_HEARTBEAT_S` from
a thread, and sets `stopped_at` when it shuts down cleanly. A process is then known to be dead when:

* it stopped cleanly;
* it runs on this host (same hostname, boot and pid namespace) and its pid is gone, or now
  belongs to another process (pid start times differ): a restarted server knows its
  predecessor is dead the moment it starts, without waiting for a heartbeat to age;
* its last heartbeat is older than `PROCESS_DEAD_AFTER_S`, measured by the database's clock
  (both the write and the age), so clock skew between hosts plays no part.

A row with no owner, or an owner with no `ServerProcess` row (written before this record existed,
or by an ASGI server not started with `manage.py serve`), keeps the old rule: no checkpoint for
`services.stale_before()`. With the in-memory channel layer there is one process by definition,
so everything streaming when it starts is orphaned (`sole_process`).

The heartbeat runs in a thread rather than on the event loop: a loop busy for a few seconds must
not make a live process look dead and have its replies cut under it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import connection
from django.db.models.functions import Now
from django.utils import timezone

from assistant.models import ChatMessage, ServerProcess

logger = logging.getLogger(__name__)

#: This process: owner of the replies it generates, and the tag of its channel-layer messages.
PROCESS_ID = uuid.uuid4().hex
#: Process rows whose last heartbeat is older than this are deleted at startup.
PRUNE_AFTER = timedelta(days=1)


def _read(path: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return ""


def _pid_namespace() -> str:
    try:
        return str(os.stat("/proc/self/ns/pid").st_ino)
    except OSError:
        return ""


def pid_start(pid: int) -> str | None:
    """When `pid` started (Linux clock ticks since boot); None if it is gone or a zombie.

    "" where /proc is not available (then only the pid's existence is checked).
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    except OSError:
        return ""
    # The command name (field 2) may hold spaces and parentheses: split after its last ")".
    fields = stat[stat.rfind(")") + 2 :].split()
    if fields[0] in {"Z", "X"}:
        return None
    return fields[19]


#: Where a pid means the same process: hostname, boot and pid namespace.
HOST = "|".join([socket.gethostname(), _read("/proc/sys/kernel/random/boot_id"), _pid_namespace()])[:255]
PID = os.getpid()
PID_START = pid_start(PID) or ""


def pid_gone(pid: int, started: str) -> bool:
    """Whether the process `pid` (started at `started`) of this host no longer runs."""
    if pid == PID:
        return True  # our pid: the process that held it before us is gone
    current = pid_start(pid)
    if current is None:
        return True
    if current and started:
        return current != started  # the pid was reused by another process
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


@dataclass(frozen=True, slots=True)
class OwnerState:
    """What the database holds about the process owning a reply or a session."""

    process_id: str | None
    known: bool = False
    stopped: bool = False
    heartbeat_age_s: float = 0.0
    host: str = ""
    pid: int = 0
    pid_start: str = ""


def process_dead(owner: OwnerState) -> bool | None:
    """True when the owner is known to be dead, False when it is alive, None when unknown."""
    if owner.process_id is None or not owner.known:
        return None
    if owner.stopped:
        return True
    if owner.process_id == PROCESS_ID:
        return False
    if owner.heartbeat_age_s > settings.PROCESS_DEAD_AFTER_S:
        return True
    return owner.host == HOST and pid_gone(owner.pid, owner.pid_start)


def reply_orphaned(owner: OwnerState, *, stale: bool, silent: bool) -> bool:
    """Whether a streaming reply has nobody left to finish it.

    `stale`: not checkpointed for `stale_before()` (the rule for an unknown owner). `silent`:
    not checkpointed for longer than any live reply can run (a live owner's reply then has
    certainly lost its task; a backstop, not the rule).
    """
    dead = process_dead(owner)
    if dead is None:
        return stale
    return dead or silent


def sole_process() -> bool:
    """Whether this process is the only one (the in-memory channel layer cannot be shared)."""
    return settings.CHANNEL_LAYERS["default"]["BACKEND"].endswith("InMemoryChannelLayer")


# --- this process's own record ----------------------------------------------------------------
def register() -> None:
    """Record this process (by the database's clock) and forget processes dead for a day."""
    ServerProcess.objects.update_or_create(
        pk=PROCESS_ID,
        defaults={
            "host": HOST,
            "pid": PID,
            "pid_start": PID_START,
            "started_at": Now(),
            "heartbeat_at": Now(),
            "stopped_at": None,
        },
    )
    ServerProcess.objects.filter(heartbeat_at__lt=timezone.now() - PRUNE_AFTER).delete()


def beat() -> None:
    """Prove this process is alive; re-register if the row went away (a restored database)."""
    if not ServerProcess.objects.filter(pk=PROCESS_ID).update(heartbeat_at=Now()):
        register()


def mark_stopped() -> int:
    """Record a clean shutdown and end this process's replies still streaming; how many."""
    now = timezone.now()
    ServerProcess.objects.filter(pk=PROCESS_ID).update(stopped_at=Now(), heartbeat_at=Now())
    return ChatMessage.objects.filter(owner=PROCESS_ID, status=ChatMessage.Status.STREAMING).update(
        status=ChatMessage.Status.INTERRUPTED, finished_at=now, updated_at=now
    )


class Heartbeat:
    """The thread that writes this process's heartbeat every `PROCESS_HEARTBEAT_S`."""

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Register this process and start beating (once)."""
        if self._thread is not None:
            return
        try:
            register()
        except Exception:
            # Serve anyway: until a beat registers it, this process's replies keep the old rule.
            logger.exception("Could not register this server process; the heartbeat will retry")
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="process-heartbeat", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop beating and record a clean shutdown."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stop.set()
        thread.join(10)
        try:
            interrupted = mark_stopped()
        except Exception:
            logger.exception("Could not record this server process as stopped")
            return
        if interrupted:
            logger.warning("Shutdown: %d reply(ies) still streaming marked interrupted", interrupted)

    def _run(self) -> None:
        try:
            while not self._stop.wait(settings.PROCESS_HEARTBEAT_S):
                try:
                    beat()
                except Exception:
                    logger.exception("Process heartbeat failed; retrying in %s s", settings.PROCESS_HEARTBEAT_S)
                    with contextlib.suppress(Exception):
                        connection.close()  # a broken connection is reopened by the next beat
        finally:
            with contextlib.suppress(Exception):
                connection.close()


heartbeat = Heartbeat()
