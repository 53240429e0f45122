"""A bare Channels websocket consumer: the baseline the chat path is compared with."""

from __future__ import annotations

from channels.generic.websocket import AsyncWebsocketConsumer


class EchoConsumer(AsyncWebsocketConsumer):
    """Send every text frame straight back: no database, no channel layer, no JSON."""

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """Echo the frame unchanged (text as text, bytes as bytes)."""
        if text_data is not None:
            await self.send(text_data=text_data)
        elif bytes_data is not None:
            await self.send(bytes_data=bytes_data)
