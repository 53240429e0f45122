"""Alerts on the chat's event seam: what `AlertsConfig.ready()` subscribes.

Alerts read their numbers from the analytics selectors, not from events; the events only make
sure a serving process runs the sweep (`alerts.sweep`): the first chat connection and the first
request for a person start it, like the analytics sweep, and `manage.py serve` starts it at once.
"""

from __future__ import annotations

from typing import Any

from alerts import sweep
from assistant import events
from project import runtime


def connect() -> None:
    """Subscribe alerts to the chat (once, from `AlertsConfig.ready`)."""
    events.subscribe(events.SessionOpened, start_sweep)
    events.subscribe(events.HandoffRequested, start_sweep)
    runtime.on_startup(sweep.startup)


def start_sweep(event: Any) -> None:
    """A chat happens in this process: make sure it evaluates the alert rules."""
    sweep.ensure_running_if_loop()
