"""Anthropic messages API, streamed through the official async SDK.

The SDK sends and checks the request; the SSE events are read here (`cloud.sse_events`). The
system prompt goes in `system`; usage comes from `message_start` (input, cache reads) and
`message_delta` (output). An `event: error` inside the stream (such as `overloaded_error`)
becomes a provider error like any other. SDK retries are off. The Messages API version this
SDK speaks has no temperature parameter.

Structured output: this SDK (2.11) has no JSON mode portable across Claude models, and an
assistant prefill of "{" is refused by the newest models (and with extended thinking), so a
`response_schema` is put in the system prompt with the instruction to answer with one JSON
object; the caller validates the answer (and retries once on a bad one). A model that declines
ends the message with `stop_reason: "refusal"`: that raises `ProviderRefused`.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import anthropic

from assistant.providers.base import (
    ProviderRefused,
    ProviderRetryable,
    ReplyRequest,
    StreamEvent,
    TextChunk,
    UsageReport,
)
from assistant.providers.cloud import CloudProvider, sse_events
from assistant.providers.prompt import conversation, system_text

_INPUT_PARTS = ("input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")


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
        system = system_text(request)
        if request.response_schema is not None:
            schema = json.dumps(request.response_schema, separators=(",", ":"))
            system += (
                "\n\nAnswer with one JSON object and nothing else (no prose, no code fence), "
                f"valid against this JSON schema:\n{schema}"
            )
        stop_reason = ""
        with self.vendor_errors():
            # The SDK builds, sends and checks the request; the SSE body is parsed here with
            # json.loads (see cloud.sse_events) rather than into typed event objects.
            async with self.client.messages.with_streaming_response.create(
                model=self.model,
                max_tokens=self.max_tokens,
                system=system,
                messages=[{"role": m.role, "content": m.text} for m in conversation(request)],  # type: ignore[misc]
                stream=True,
            ) as response:
                async for event, data in sse_events(response.iter_lines()):
                    if event == "content_block_delta":
                        delta = json.loads(data).get("delta") or {}
                        if delta.get("type") == "text_delta" and delta.get("text"):
                            yield TextChunk(delta["text"])
                    elif event == "message_start":
                        usage = (json.loads(data).get("message") or {}).get("usage") or {}
                        cached_tokens = usage.get("cache_read_input_tokens")
                        # Anthropic's input_tokens leaves out cache reads and writes; Parley's
                        # input_tokens includes them, as OpenAI's and Gemini's counts do, so that
                        # cost (analytics.metrics.call_cost) reads every vendor the same way.
                        parts = [usage.get(key) for key in _INPUT_PARTS]
                        input_tokens = None if all(p is None for p in parts) else sum(p or 0 for p in parts)
                    elif event == "message_delta":
                        body = json.loads(data)
                        output_tokens = (body.get("usage") or {}).get("output_tokens", output_tokens)
                        stop_reason = (body.get("delta") or {}).get("stop_reason") or stop_reason
                    elif event == "error":
                        error = json.loads(data).get("error") or {}
                        kind = error.get("type", "error")
                        raise ProviderRetryable(f"{kind}: {error.get('message', '')}", self.name)
                    elif event == "message_stop":
                        break
        if stop_reason == "refusal":
            raise ProviderRefused("refusal: the model declined to answer (stop_reason refusal)", self.name)
        if input_tokens is not None or output_tokens is not None:
            yield UsageReport(input_tokens=input_tokens, output_tokens=output_tokens, cached_tokens=cached_tokens)
