"""Anthropic messages API, streamed through the official async SDK.

The system prompt goes in `system`; usage comes from `message_start` (input, cache reads) and
`message_delta` (output). An `event: error` inside the stream (such as `overloaded_error`) is
raised by the SDK and becomes a provider error like any other. SDK retries are off. The
Messages API version this SDK speaks has no temperature parameter.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import anthropic

from assistant.providers.base import ReplyRequest, StreamEvent, TextChunk, UsageReport
from assistant.providers.cloud import CloudProvider
from assistant.providers.prompt import conversation, system_text


class AnthropicProvider(CloudProvider):
    """`POST /v1/messages` with `stream: true`."""

    name = "anthropic"

    def make_client(self, api_key: str) -> anthropic.AsyncAnthropic:
        """The SDK client, no retries."""
        return anthropic.AsyncAnthropic(
            api_key=api_key, base_url=self.base_url, max_retries=0, timeout=self.http_timeout()
        )

    async def aclose(self) -> None:
        """Close the SDK's HTTP connection pool."""
        await self.client.close()

    async def stream(self, request: ReplyRequest) -> AsyncIterator[StreamEvent]:
        """Yield text deltas, then usage."""
        input_tokens: int | None = None
        cached_tokens: int | None = None
        output_tokens: int | None = None
        with self.vendor_errors():
            stream = await self.client.messages.create(
                model=self.model,
                max_tokens=self.max_tokens,
                system=system_text(request),
                messages=[{"role": m.role, "content": m.text} for m in conversation(request)],  # type: ignore[misc]
                stream=True,
            )
            async with stream:
                async for event in stream:
                    if event.type == "content_block_delta" and event.delta.type == "text_delta":
                        if event.delta.text:
                            yield TextChunk(event.delta.text)
                    elif event.type == "message_start":
                        usage = event.message.usage
                        input_tokens = usage.input_tokens
                        cached_tokens = usage.cache_read_input_tokens
                    elif event.type == "message_delta":
                        output_tokens = event.usage.output_tokens
        if input_tokens is not None or output_tokens is not None:
            yield UsageReport(input_tokens=input_tokens, output_tokens=output_tokens, cached_tokens=cached_tokens)
