"""A real webhook receiver for the tests and the benchmark: an HTTP server on loopback, in a thread.

It verifies every request's Standard Webhooks signature with the `standardwebhooks` package (as
an integrator would), answers with the statuses it is told to (a script per path, then 200), and
keeps everything it got.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks import Webhook, WebhookVerificationError


@dataclass
class Received:
    """One request the receiver got."""

    path: str
    headers: dict[str, str]
    body: bytes
    status: int  # what the receiver answered
    verified: bool
    at: float = field(default_factory=time.monotonic)

    @property
    def id(self) -> str:
        return self.headers.get("webhook-id", "")

    @property
    def payload(self) -> dict[str, Any]:
        return json.loads(self.body)

    @property
    def type(self) -> str:
        return self.payload["type"]


class Receiver:
    """Start with `Receiver()`; `url(path)` for an endpoint; `close()` at the end."""

    def __init__(self, *, keep_bodies: bool = True) -> None:
        self.secrets: dict[str, str] = {}
        self.scripts: dict[str, list[int]] = {}
        self.received: list[Received] = []
        self.keep_bodies = keep_bodies
        self.count = 0
        self.delay_s = 0.0
        #: Decides the status instead of the scripts when set: `(path, body) -> status or None`.
        self.decide: Callable[[str, bytes], int | None] | None = None
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                receiver.answer(self, body)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, name="webhook-receiver", daemon=True)
        self.thread.start()

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def expect(self, path: str, secret: str, script: list[int] | None = None) -> None:
        """Verify requests to `path` with `secret`; answer them with `script` (then 200)."""
        with self._lock:
            self.secrets[path] = secret
            self.scripts[path] = list(script or [])

    def answer(self, handler: BaseHTTPRequestHandler, body: bytes) -> None:
        if self.delay_s:
            time.sleep(self.delay_s)
        path = handler.path
        headers = {key.lower(): value for key, value in handler.headers.items()}
        with self._lock:
            secret = self.secrets.get(path)
            script = self.scripts.get(path, [])
            decided = self.decide(path, body) if self.decide is not None else None
            status = decided if decided is not None else script.pop(0) if script else 200
        verified = False
        if secret is not None:
            try:
                Webhook(secret).verify(body, headers)
                verified = True
            except WebhookVerificationError:
                status = 401
        reply = b'{"ok": true}' if status < 300 else b"receiver says no"
        handler.send_response(status)
        handler.send_header("content-type", "application/json")
        handler.send_header("content-length", str(len(reply)))
        handler.end_headers()
        handler.wfile.write(reply)
        with self._changed:
            self.count += 1
            if self.keep_bodies:
                self.received.append(Received(path, headers, body, status, verified))
            self._changed.notify_all()

    def wait_for(self, condition: Callable[[Receiver], bool], timeout: float = 10.0) -> bool:
        """Block until `condition(self)` holds (checked at each request); False on timeout."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not condition(self):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(min(remaining, 0.2))
        return True

    async def until(self, condition: Callable[[Receiver], bool], timeout: float = 10.0) -> bool:
        """`wait_for` for async tests: polls without blocking the event loop (the dispatcher runs there)."""
        import asyncio

        deadline = time.monotonic() + timeout
        while not condition(self):
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.02)
        return True

    def accepted(self, path: str | None = None) -> list[Received]:
        """Requests answered 2xx (with a valid signature), in arrival order."""
        with self._lock:
            return [r for r in self.received if 200 <= r.status < 300 and (path is None or r.path == path)]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
