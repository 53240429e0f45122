"""Anthropic messages API, streamed through the official async SDK.

The system prompt goes in `system`; usage comes from `message_start` (input, cache reads) and
`message_delta` (output). An `event: error` inside the stream (such as `overloaded_error`) is
raised by the SDK and becomes a provider error like any other. SDK retries are off.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import anthropic
import httpx2

from assistant.providers.base import (
    AIProvider,
    ProviderError,
    ProviderRetryable,
    ProviderTimeout,
    ReplyRequest,
    StreamEvent,
    TextChunk,
    UsageReport,
    connection_error,
    connection_refused,
    error_for_status,
)
from assistant.providers.prompt import conversation, system_text


class AnthropicProvider(AIProvider):
    """`POST /v1/messages` with `stream: true`."""

    name = "anthropic"

    def __init__(
        self,
        *,
        api_key: str,
        model: str,
        base_url: str | None = None,
        max_tokens: int = 800,
        connect_timeout_s: float = 5.0,
        read_timeout_s: float = 30.0,
    ) -> None:
        super().__init__(model=model)
        self.max_tokens = max_tokens
        self.client = anthropic.AsyncAnthropic(
            api_key=api_key,
            base_url=base_url,
            max_retries=0,
            timeout=httpx2.Timeout(read_timeout_s, connect=connect_timeout_s),
        )

    async def aclose(self) -> None:
        """Close the SDK's HTTP connection pool."""
        await self.client.close()

    async def stream(self, request: ReplyRequest) -> AsyncIterator[StreamEvent]:
        """Yield text deltas, then usage."""
        input_tokens: int | None = None
        cached_tokens: int | None = None
        output_tokens: int | None = None
        try:
            stream = await self.client.messages.create(
                model=self.model,
                max_tokens=self.max_tokens,
                system=system_text(request),
                messages=[{"role": message.role, "content": message.text} for message in conversation(request)],  # type: ignore[misc]
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
        except ProviderError:
            raise
        except anthropic.APIStatusError as exc:
            raise error_for_status(self.name, exc.status_code, exc.message, exc.response.headers) from exc
        except anthropic.APITimeoutError as exc:
            raise ProviderTimeout(f"request timed out: {exc}", self.name) from exc
        except anthropic.APIConnectionError as exc:
            raise connection_error(self.name, exc) from exc
        except Exception as exc:  # an error event in the stream, a cut body, malformed JSON
            if connection_refused(exc):
                raise connection_error(self.name, exc) from exc
            raise ProviderRetryable(f"stream broke: {type(exc).__name__}: {exc}", self.name) from exc
        if input_tokens is not None or output_tokens is not None:
            yield UsageReport(input_tokens=input_tokens, output_tokens=output_tokens, cached_tokens=cached_tokens)
