"""OpenAI chat completions, and every server that speaks the same API (Ollama, vLLM, OpenRouter…).

Streaming with `stream_options.include_usage`, so token usage arrives as the stream's last
chunk. The SDK sends and checks the request; the SSE chunks are read here
(`cloud.sse_events`), including an `{"error": …}` chunk some servers send mid-stream. The SDK's
own retries are off (`max_retries=0`): the router owns retries and failover.

Structured output (`ReplyRequest.response_schema`) is `response_format: json_schema` with
`strict: true`. A model that declines streams its reason as `delta.refusal` instead of
`delta.content` (and a filtered reply ends with `finish_reason: content_filter`): both raise
`ProviderRefused` once the stream ends, so the router asks the next provider.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import openai

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


class OpenAIProvider(CloudProvider):
    """`POST /v1/chat/completions` with `stream: true` through the official async SDK."""

    name = "openai"

    def make_client(self, api_key: str) -> openai.AsyncOpenAI:
        """The SDK client, no retries."""
        return openai.AsyncOpenAI(api_key=api_key, base_url=self.base_url, max_retries=0, timeout=self.http_timeout())

    async def aclose(self) -> None:
        """Close the SDK's HTTP connection pool."""
        await self.client.close()

    async def stream(self, request: ReplyRequest) -> AsyncIterator[StreamEvent]:
        """Yield text deltas, then the usage the final chunk reports."""
        messages = [{"role": "system", "content": system_text(request)}]
        messages += [{"role": message.role, "content": message.text} for message in conversation(request)]
        # api.openai.com wants max_completion_tokens (reasoning models refuse max_tokens); the
        # compatible servers (Ollama, vLLM, llama.cpp) only know max_tokens.
        limit = {"max_tokens" if self.base_url else "max_completion_tokens": self.max_tokens}
        if self.temperature is not None:
            limit["temperature"] = self.temperature  # type: ignore[assignment]
        if request.response_schema is not None:
            limit["response_format"] = {  # type: ignore[assignment]
                "type": "json_schema",
                "json_schema": {"name": request.response_name, "schema": request.response_schema, "strict": True},
            }
        usage: UsageReport | None = None
        refusal: list[str] = []
        filtered = False
        with self.vendor_errors():
            # The SDK builds, sends and checks the request (a 4xx/5xx raises its typed error);
            # the body's SSE lines are parsed here with json.loads (see cloud.sse_events).
            async with self.client.chat.completions.with_streaming_response.create(
                model=self.model,
                messages=messages,  # type: ignore[arg-type]
                stream=True,
                stream_options={"include_usage": True},
                **limit,  # type: ignore[arg-type]
            ) as response:
                async for _, data in sse_events(response.iter_lines()):
                    if data == "[DONE]":
                        break
                    chunk = json.loads(data)
                    if chunk.get("error"):
                        error = chunk["error"]
                        raise ProviderRetryable(f"error event: {error.get('message') or error}", self.name)
                    choices = chunk.get("choices")
                    if choices:
                        delta = choices[0].get("delta") or {}
                        text = delta.get("content")
                        if text:
                            yield TextChunk(text)
                        if delta.get("refusal"):
                            refusal.append(delta["refusal"])
                        filtered = filtered or choices[0].get("finish_reason") == "content_filter"
                    reported = chunk.get("usage")
                    if reported:
                        details = reported.get("prompt_tokens_details") or {}
                        usage = UsageReport(
                            input_tokens=reported.get("prompt_tokens"),
                            output_tokens=reported.get("completion_tokens"),
                            cached_tokens=details.get("cached_tokens"),
                        )
        if refusal or filtered:
            raise ProviderRefused(f"refusal: {''.join(refusal) or 'content filter'}"[:300], self.name)
        if usage is not None:
            yield usage
