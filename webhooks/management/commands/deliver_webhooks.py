"""`python manage.py deliver_webhooks`: a process that only delivers the webhook outbox.

Every `manage.py serve` delivers already; this is for deployments that keep delivery off the
chat's processes (`WEBHOOK_DELIVER=0` on the servers, one or more of these beside them, e.g. at
a lower CPU priority with `nice`). Several may run: leases keep them from sending the same
delivery at once. `--once` delivers what is due now and exits (cron, tests).
"""

from __future__ import annotations

import asyncio
import signal
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from webhooks import dispatcher


class Command(BaseCommand):
    help = "Deliver the webhook outbox until stopped (SIGTERM/SIGINT), or once with --once."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--once", action="store_true", help="Deliver what is due now, then exit.")

    def handle(self, *args: Any, **options: Any) -> None:
        dispatcher.startup()  # leases of dead processes first
        sent = asyncio.run(_once() if options["once"] else _forever())
        if options["once"]:
            self.stdout.write(f"{sent} attempt(s) made.")


async def _once() -> int:
    worker = dispatcher.Dispatcher()
    while True:
        before = worker.sent
        await worker.step()
        await worker.drain()
        if worker.sent == before:
            return worker.sent


async def _forever() -> int:
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    worker = dispatcher.Dispatcher()
    task = loop.create_task(worker.run(), name=dispatcher.SERVICE)
    await stopping.wait()
    task.cancel()  # the sends in flight are cancelled, the others' leases given back
    await asyncio.gather(task, return_exceptions=True)
    return worker.sent
