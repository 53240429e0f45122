"""One signed POST to one endpoint: pinned to a checked address, bounded in time and in what is read.

The host is resolved and every address checked (`targets.resolve`) right before the request,
and the connection goes to that checked address (the URL's host travels in `Host` and, for
https, in SNI and the certificate check): a DNS answer cannot change between the check and the
connection. Redirects are not followed (a 3xx is a failure: it could point anywhere); no proxy
is used; at most `EXCERPT_BYTES` of the answer are kept and `MAX_DRAIN_BYTES` read; the whole
attempt, DNS included, is bounded by WEBHOOK_TIMEOUT_S.

HTTP/1.1 is spoken with `h11` (the protocol state machine httpx itself runs on) over asyncio
streams, with keep-alive connections per endpoint address: a delivery costs about 0.13 ms of
CPU this way against 0.87 ms through httpx2's client (docs/api.md, "Webhooks" › "Benchmark"),
and the dispatcher shares its process with the chat.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from dataclasses import dataclass, field
from datetime import datetime

import h11
from django.conf import settings
from django.utils import timezone

from webhooks import signing, targets
from webhooks.outbox import Claimed, Result

USER_AGENT = "Parley-Webhooks/1"
EXCERPT_BYTES = 1024
#: Read at most this much of an answer to keep its connection; a longer one is cut and closed.
MAX_DRAIN_BYTES = 64 * 1024
#: Idle keep-alive connections are closed after this long (receivers often close them at 5 s).
IDLE_S = 4.0
READ_CHUNK = 65_536

Key = tuple[str, str, int, str]  # scheme, address, port, host


@dataclass(slots=True)
class _Connection:
    """One HTTP/1.1 connection to one checked address, reusable between requests."""

    key: Key
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    protocol: h11.Connection = field(default_factory=lambda: h11.Connection(h11.CLIENT))
    idle_since: float = 0.0

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()


class _Stale(Exception):
    """A reused connection turned out closed before any answer: try once on a new one."""


class Sender:
    """Sends deliveries over a small pool of keep-alive connections."""

    def __init__(self) -> None:
        self._idle: dict[Key, list[_Connection]] = {}
        self._tls: ssl.SSLContext | None = None

    async def send(self, delivery: Claimed) -> Result:
        """Attempt `delivery` once; never raises (a failure is a `Result` with its error)."""
        attempted_at = timezone.now()
        started = time.monotonic()
        status: int | None = None
        error = excerpt = ""
        timeout = float(settings.WEBHOOK_TIMEOUT_S)
        try:
            async with asyncio.timeout(timeout):
                status, excerpt = await self._post(delivery, attempted_at)
            if not 200 <= status < 300:
                error = f"HTTP {status}" + (" (redirects are not followed)" if 300 <= status < 400 else "")
        except TimeoutError:
            error = f"timed out after {timeout:g} s"
        except ValueError as refused:  # the target check (h11's errors are not ValueErrors)
            error = f"refused: {refused}"
        except (h11.ProtocolError, OSError, asyncio.IncompleteReadError, _Stale) as failure:
            error = f"{type(failure).__name__}: {failure}".rstrip(": ")
        return Result(
            pk=delivery.pk,
            endpoint_id=delivery.endpoint_id,
            attempts=delivery.attempts,
            attempted_at=attempted_at,
            duration_ms=int((time.monotonic() - started) * 1000),
            status_code=status,
            error=error[:300],
            excerpt=excerpt,
        )

    async def _post(self, delivery: Claimed, attempted_at: datetime) -> tuple[int, str]:
        target = targets.parse(delivery.url)
        address = await targets.resolve(target)
        body = delivery.body.encode()
        headers = signing.headers(secret=delivery.secret, msg_id=delivery.event_id, timestamp=attempted_at, body=body)
        request = h11.Request(
            method="POST",
            target=target.path,
            headers=[
                ("host", target.host if target.default_port else f"{_bracketed(target.host)}:{target.port}"),
                ("user-agent", USER_AGENT),
                ("content-type", "application/json"),
                ("content-length", str(len(body))),
                *headers.items(),
            ],
        )
        key: Key = (target.scheme, address, target.port, target.host)
        connection = self._take_idle(key)
        if connection is not None:
            try:
                return await self._exchange(connection, request, body, reused=True)
            except _Stale:
                pass  # the receiver had closed it: once more on a new connection
        connection = await self._connect(key)
        return await self._exchange(connection, request, body, reused=False)

    async def _exchange(
        self, connection: _Connection, request: h11.Request, body: bytes, *, reused: bool
    ) -> tuple[int, str]:
        """Send the request, read the answer (bounded); keep the connection if it can be reused."""
        protocol = connection.protocol
        keep = False
        answered = False
        try:
            connection.writer.write(
                protocol.send(request) + protocol.send(h11.Data(data=body)) + protocol.send(h11.EndOfMessage())
            )
            await connection.writer.drain()
            status = 0
            excerpt = bytearray()
            read = 0
            while True:
                event = protocol.next_event()
                if event is h11.NEED_DATA:
                    data = await connection.reader.read(READ_CHUNK)
                    if not data and reused and not answered:
                        raise _Stale("the kept-alive connection was closed by the receiver")
                    answered = answered or bool(data)
                    protocol.receive_data(data)
                elif isinstance(event, h11.Response):
                    status = event.status_code
                elif isinstance(event, h11.Data):
                    read += len(event.data)
                    excerpt += event.data[: max(0, EXCERPT_BYTES - len(excerpt))]
                    if read > MAX_DRAIN_BYTES:
                        break  # enough: cut it and close the connection
                elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                    keep = protocol.our_state is h11.DONE and protocol.their_state is h11.DONE
                    break
            return status, excerpt.decode("utf-8", "replace")
        except (ConnectionResetError, BrokenPipeError) as error:
            if reused and not answered:
                raise _Stale(str(error)) from None
            raise
        finally:
            if keep:
                protocol.start_next_cycle()
                self._put_idle(connection)
            else:
                connection.close()

    async def _connect(self, key: Key) -> _Connection:
        scheme, address, port, host = key
        tls = self._tls_context() if scheme == "https" else None
        reader, writer = await asyncio.open_connection(
            address, port, ssl=tls, server_hostname=host if tls is not None else None, limit=READ_CHUNK
        )
        return _Connection(key=key, reader=reader, writer=writer)

    def _tls_context(self) -> ssl.SSLContext:
        if self._tls is None:
            self._tls = ssl.create_default_context()  # verifies the certificate against the URL's host
        return self._tls

    def _take_idle(self, key: Key) -> _Connection | None:
        idle = self._idle.get(key)
        now = time.monotonic()
        while idle:
            connection = idle.pop()
            if now - connection.idle_since < IDLE_S and not connection.reader.at_eof():
                return connection
            connection.close()
        return None

    def _put_idle(self, connection: _Connection) -> None:
        connection.idle_since = time.monotonic()
        idle = self._idle.setdefault(connection.key, [])
        if len(idle) >= settings.WEBHOOK_MAX_CONCURRENCY:
            connection.close()
        else:
            idle.append(connection)

    async def close(self) -> None:
        """Close every idle connection (the dispatcher stopping)."""
        idle, self._idle = self._idle, {}
        for connections in idle.values():
            for connection in connections:
                connection.close()


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host else host
