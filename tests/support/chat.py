"""A small test client for the `/ws/chat/` protocol over Channels' WebsocketCommunicator."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from channels.testing import WebsocketCommunicator

from project.asgi import application


def with_client(ip: str):
    """The real ASGI application, seen from client address `ip`."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await application(dict(scope, client=(ip, 50000)), receive, send)

    return app


class ChatClient:
    """Send frames, read frames, with timeouts so a hang fails the test instead of stalling it."""

    def __init__(self, communicator: WebsocketCommunicator) -> None:
        self.communicator = communicator
        self.close_code: int | None = None

    async def send(self, frame: dict[str, Any] | str) -> None:
        await self.communicator.send_to(text_data=frame if isinstance(frame, str) else json.dumps(frame))

    async def recv(self, timeout: float = 5) -> dict[str, Any]:
        output = await self.communicator.receive_output(timeout)
        if output["type"] == "websocket.close":
            self.close_code = output.get("code")
            raise ConnectionError(f"closed with {self.close_code}")
        return json.loads(output["text"])

    async def recv_type(self, frame_type: str, timeout: float = 5) -> dict[str, Any]:
        """Skip frames until one of `frame_type` arrives."""
        while True:
            frame = await self.recv(timeout)
            if frame["type"] == frame_type:
                return frame

    async def hello(self, **fields: Any) -> dict[str, Any]:
        await self.send({"type": "hello", **fields})
        return await self.recv_type("welcome")

    async def say(self, text: str, client_id: str) -> tuple[dict[str, Any], str, dict[str, Any]]:
        """Send a message; return its ack, the streamed reply text and the reply.end frame."""
        await self.send({"type": "message", "text": text, "client_id": client_id})
        ack = await self.recv_type("ack")
        return ack, *await self.read_reply()

    async def read_reply(self, timeout: float = 10) -> tuple[str, dict[str, Any]]:
        text = ""
        while True:
            frame = await self.recv(timeout)
            if frame["type"] == "reply.delta":
                text += frame["text"]
            elif frame["type"] == "reply.end":
                return text, frame

    async def nothing_more(self, timeout: float = 0.2) -> bool:
        return await self.communicator.receive_nothing(timeout)

    async def close(self) -> None:
        await self.communicator.disconnect()


async def open_client(
    *, ip: str = "127.0.0.1", origin: str | None = None, host: str = "testserver", path: str = "/ws/chat/"
) -> tuple[ChatClient, bool, int | None]:
    """Connect; returns the client, whether it was accepted and stayed open, and any close code."""
    headers = [(b"host", host.encode())]
    if origin is not None:
        headers.append((b"origin", origin.encode()))
    communicator = WebsocketCommunicator(with_client(ip), path, headers=headers)
    connected, code = await communicator.connect(timeout=5)
    client = ChatClient(communicator)
    if connected:
        # A refused connection is accepted and then closed at once with the reason code.
        try:
            output = await asyncio.wait_for(communicator.output_queue.get(), 0.1)
        except TimeoutError:
            return client, True, None
        if output["type"] == "websocket.close":
            return client, False, output.get("code")
        communicator.output_queue.put_nowait(output)
    return client, connected, code
