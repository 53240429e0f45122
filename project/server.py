"""daphne, hardened for the open internet: what `manage.py serve` runs.

daphne queues every websocket frame for the application as soon as it is read, without bound,
writes every frame the application sends into the socket's buffer, without bound, and gives a
client 60 s (twisted's idle timeout, reset by every byte) to finish an HTTP request head. One
connection flooding `ping` frames grew a server by 200 MB in 10 s; a thousand half-open
handshakes were held for 76 s. Here, at the protocol, before anything is queued:

* **Frame rate.** Each websocket has a token bucket (CHAT_FRAME_RATE_LIMIT_PER_MINUTE, burst
  CHAT_FRAME_BURST). A frame beyond it is dropped and the connection closed with 1008 (policy
  violation): it is never queued, so a flood costs the server nothing but reading it.
* **Unread output.** When the bytes written to a client and not yet taken by it pass
  CHAT_SEND_BUFFER_MAX_BYTES, the connection is dropped (a close frame would only queue behind
  the data the client is not reading).
* **Request heads.** A connection must deliver a complete HTTP request head (a websocket
  handshake included) within HTTP_HEADER_TIMEOUT_S of connecting, however slowly it trickles.

Each refusal logs one WARNING line. The chat consumer keeps a looser frame limit of its own for
other ASGI servers (assistant/consumers.py).
"""

from __future__ import annotations

import functools
import logging
from typing import Any, ClassVar

from daphne.http_protocol import HTTPFactory
from daphne.ws_protocol import WebSocketFactory, WebSocketProtocol
from django.conf import settings
from twisted.internet import reactor

from assistant.ratelimit import TokenBucket
from project.logs import client_warnings

logger = logging.getLogger("parley.server")

#: Close code for frames beyond the limit (RFC 6455 policy violation).
CLOSE_POLICY_VIOLATION = 1008


def unsent_bytes(transport: Any) -> int | None:
    """Bytes written to `transport` that the peer has not taken yet, or None if unknown.

    twisted's TCP transports (`abstract.FileDescriptor`) keep them in `dataBuffer` from
    `offset`, plus `_tempDataBuffer` not yet joined; TLS wraps one of those.
    """
    inner = getattr(transport, "transport", None)  # TLSMemoryBIOProtocol and other wrappers
    if inner is not None and not hasattr(transport, "dataBuffer"):
        transport = inner
    try:
        return len(transport.dataBuffer) - transport.offset + transport._tempDataLen
    except (AttributeError, TypeError):
        return None


class HardenedWebSocketProtocol(WebSocketProtocol):
    """daphne's websocket protocol with a frame limit before the queue and a bound on unread output."""

    bucket: TokenBucket | None = None
    refused = False
    #: Frames the application sent, every connection together: shutdown waits for it to stop
    #: growing before it closes the sockets, so that each reply's last frames go out first.
    frames_sent: ClassVar[int] = 0

    def onOpen(self) -> None:
        """Start the frame budget when the handshake is complete."""
        self.bucket = TokenBucket(per_minute=settings.CHAT_FRAME_RATE_LIMIT_PER_MINUTE, burst=settings.CHAT_FRAME_BURST)
        super().onOpen()

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        """Queue the frame for the application, unless the connection is over its frame limit."""
        if self.refused or self.state != self.STATE_OPEN:
            self._discard_buffered()  # closing: nothing more reaches the application
            return
        if self.bucket is not None and self.bucket.take() is not None:
            self.refused = True
            client_warnings.warning(
                logger,
                "frames",
                _peer(self),
                "Websocket %s sent frames faster than %d a minute (burst %d): closed with %d",
                _peer(self),
                settings.CHAT_FRAME_RATE_LIMIT_PER_MINUTE,
                settings.CHAT_FRAME_BURST,
                CLOSE_POLICY_VIOLATION,
            )
            # sendClose() accepts only 1000 and 3000-4999 from an application; 1008 is ours to send.
            self.sendCloseFrame(code=CLOSE_POLICY_VIOLATION, reasonUtf8=b"too many frames")
            self._stop_reading()
            self._discard_buffered()
            return
        super().onMessage(payload, isBinary)

    def serverClose(self, code: int | None = None) -> None:
        """The application closes (a refusal: 4403, 4429, 1009…): send the close, read no more.

        Waiting for the client's close frame means parsing whatever it keeps sending until the
        close handshake times out; a flooding client made the server parse millions of frames
        that way. The close frame is still sent; the connection is dropped when the close
        handshake times out (autobahn's `closeHandshakeTimeout`, 1 s) unless the client answers.
        """
        super().serverClose(code)
        self._stop_reading()

    def _discard_buffered(self) -> None:
        """Drop the frames already read but not parsed (one read can hold thousands).

        autobahn keeps them in `data` and parses frame after frame (unmasking each) until it is
        empty: a profile of a flood put 80 % of the server's time there. It has already cut the
        current frame out of `data` when `onMessage` runs, so emptying it ends the loop.
        """
        self.data = b""

    def _stop_reading(self) -> None:
        """Read nothing more from the client; autobahn drops the connection 1 s after the close.

        Not `loseConnection()`: closing a socket with unread data sends a reset, which can
        destroy the close frame before the client reads it. Paused, the client's further frames
        wait in the kernel's buffer and TCP flow control stops it, at no cost to the process.
        """
        transport = self.transport
        if transport is not None and getattr(transport, "connected", False):
            transport.pauseProducing()

    def serverSend(self, content: str | bytes, binary: bool = False) -> None:
        """Send, then drop a client that leaves more than CHAT_SEND_BUFFER_MAX_BYTES unread.

        Once the connection is closing, frames still on their way from the application (a
        reply streaming to every tab) are dropped: autobahn would raise `Disconnected` into the
        application for each.
        """
        if self.state in (self.STATE_CLOSING, self.STATE_CLOSED):
            return
        HardenedWebSocketProtocol.frames_sent += 1
        super().serverSend(content, binary)
        unsent = unsent_bytes(self.transport)
        if unsent is not None and unsent > settings.CHAT_SEND_BUFFER_MAX_BYTES and not self.refused:
            self.refused = True
            client_warnings.warning(
                logger,
                "unread",
                _peer(self),
                "Websocket %s left %d bytes unread (limit %d): dropped",
                _peer(self),
                unsent,
                settings.CHAT_SEND_BUFFER_MAX_BYTES,
            )
            self.dropConnection(abort=True)


class HardenedWebSocketFactory(WebSocketFactory):
    """Builds `HardenedWebSocketProtocol`s; a frame over the size limit gets a 1009 close frame.

    autobahn's default (`failByDrop`) drops the TCP connection instead, which browsers report
    as 1006 and which tells the client nothing. The oversized payload is still never buffered.
    """

    protocol = HardenedWebSocketProtocol

    def setProtocolOptions(self, **options: Any) -> None:
        """daphne's options, with a close frame instead of a dropped connection on errors."""
        options.setdefault("failByDrop", False)
        super().setProtocolOptions(**options)


class HardenedHTTPFactory(HTTPFactory):
    """daphne's HTTP factory with a deadline for the first request head of each connection."""

    def buildProtocol(self, addr: Any) -> Any:
        """Build the channel and arm its deadline (cancelled once its headers are complete)."""
        protocol = super().buildProtocol(addr)
        # Twisted would parse every multipart or form POST body in memory before the application
        # sees it (and answer an empty 400 of its own when that parse fails); Django parses the
        # body itself, streaming uploads to disk, so Twisted's copy is pure cost.
        protocol.requestFactory = functools.partial(protocol.requestFactory, parsePOSTFormSubmission=False)
        channel = getattr(protocol, "_channel", protocol)
        received = channel.allHeadersReceived
        deadline = reactor.callLater(settings.HTTP_HEADER_TIMEOUT_S, _expire, channel, addr)

        def all_headers_received() -> None:
            if deadline.active():
                deadline.cancel()
            received()

        lost = channel.connectionLost

        def connection_lost(reason: Any) -> None:
            if deadline.active():
                deadline.cancel()
            lost(reason)

        channel.allHeadersReceived = all_headers_received
        channel.connectionLost = connection_lost
        return protocol


def _expire(channel: Any, addr: Any) -> None:
    """Disconnect a client that did not finish its request head in time."""
    transport = getattr(channel, "transport", None)
    if transport is None or not getattr(transport, "connected", False):
        return
    host = str(getattr(addr, "host", addr))
    client_warnings.warning(
        logger,
        "head",
        host,
        "Client %s sent no complete request head within %.0f s: disconnected",
        host,
        settings.HTTP_HEADER_TIMEOUT_S,
    )
    transport.abortConnection()


def _peer(protocol: WebSocketProtocol) -> str:
    address = getattr(protocol, "client_addr", None)
    return str(address[0]) if address else "unknown"


def install() -> None:
    """Make daphne's `Server` build the hardened factories (call before `Server.run`)."""
    import daphne.server

    daphne.server.WebSocketFactory = HardenedWebSocketFactory  # type: ignore[misc]
    daphne.server.HTTPFactory = HardenedHTTPFactory  # type: ignore[misc]
