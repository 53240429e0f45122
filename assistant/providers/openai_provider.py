"""OpenAI chat completions, and every server that speaks the same API (Ollama, vLLM, OpenRouter…).

Streaming with `stream_options.include_usage`, so token usage arrives as the stream's last
chunk. The SDK's own retries are off (`max_retries=0`): the router owns retries and failover.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import openai

from assistant.providers.base import ReplyRequest, StreamEvent, TextChunk, UsageReport
from assistant.providers.cloud import CloudProvider
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
        usage: UsageReport | None = None
        with self.vendor_errors():
            stream = await self.client.chat.completions.create(
                model=self.model,
                messages=messages,  # type: ignore[arg-type]
                stream=True,
                stream_options={"include_usage": True},
                **limit,  # type: ignore[arg-type]
            )
            async with stream:
                async for chunk in stream:
                    if chunk.choices:
                        text = chunk.choices[0].delta.content
                        if text:
                            yield TextChunk(text)
                    if chunk.usage is not None:
                        details = chunk.usage.prompt_tokens_details
                        usage = UsageReport(
                            input_tokens=chunk.usage.prompt_tokens,
                            output_tokens=chunk.usage.completion_tokens,
                            cached_tokens=details.cached_tokens if details is not None else None,
                        )
        if usage is not None:
            yield usage
