"""Log lines about clients, bounded per client address.

A visitor's bad input earns one WARNING line; an attacker who opens connection after connection
must not turn that into thousands of lines a minute (the abuse benchmark saw 4,000 per 30 s
flood). `client_warnings` lets one line through per (kind, client address) per minute and tells,
on the next line it lets through, how many it held back.
"""

from __future__ import annotations

import logging
import time

#: How long a key stays quiet after a line.
INTERVAL_S = 60.0
#: Keys remembered at most; past it the oldest windows are forgotten (a spoofed-address flood
#: must not grow this without bound either).
MAX_KEYS = 10_000


class ClientWarnings:
    """At most one WARNING per key per INTERVAL_S."""

    def __init__(self) -> None:
        self._windows: dict[tuple[str, str], tuple[float, int]] = {}

    def warning(self, logger: logging.Logger, kind: str, client: str, message: str, *args: object) -> None:
        """Log `message % args` unless `client` had a `kind` line in the last INTERVAL_S."""
        key, now = (kind, client), time.monotonic()
        window = self._windows.get(key)
        if window is not None and now - window[0] < INTERVAL_S:
            self._windows[key] = (window[0], window[1] + 1)
            return
        held_back = window[1] if window is not None else 0
        if len(self._windows) >= MAX_KEYS:
            self._forget_oldest()
        self._windows[key] = (now, 0)
        if held_back:
            message += f" ({held_back} similar line(s) for this client held back)"
        logger.warning(message, *args)

    def _forget_oldest(self) -> None:
        for key, _ in sorted(self._windows.items(), key=lambda item: item[1][0])[: MAX_KEYS // 10]:
            del self._windows[key]

    def reset(self) -> None:
        """Forget every window (tests)."""
        self._windows.clear()


client_warnings = ClientWarnings()
