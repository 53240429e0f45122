"""OpenAI chat completions, and every server that speaks the same API (Ollama, vLLM, OpenRouter…).

Streaming with `stream_options.include_usage`, so token usage arrives as the stream's last
chunk. The SDK's own retries are off (`max_retries=0`): the router owns retries and failover.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx2
import openai

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


class OpenAIProvider(AIProvider):
    """`POST /v1/chat/completions` with `stream: true` through the official async SDK."""

    name = "openai"

    def __init__(
        self,
        *,
        api_key: str,
        model: str,
        base_url: str | None = None,
        temperature: float = 0.3,
        max_tokens: int = 800,
        connect_timeout_s: float = 5.0,
        read_timeout_s: float = 30.0,
    ) -> None:
        super().__init__(model=model)
        self.temperature = temperature
        self.max_tokens = max_tokens
        # api.openai.com wants max_completion_tokens (reasoning models refuse max_tokens); the
        # compatible servers (Ollama, vLLM, llama.cpp) only know max_tokens.
        self.token_limit_field = "max_tokens" if base_url else "max_completion_tokens"
        self.client = openai.AsyncOpenAI(
            api_key=api_key,
            base_url=base_url,
            max_retries=0,
            timeout=httpx2.Timeout(read_timeout_s, connect=connect_timeout_s),
        )

    async def aclose(self) -> None:
        """Close the SDK's HTTP connection pool."""
        await self.client.close()

    async def stream(self, request: ReplyRequest) -> AsyncIterator[StreamEvent]:
        """Yield text deltas, then the usage the final chunk reports."""
        messages = [{"role": "system", "content": system_text(request)}]
        messages += [{"role": message.role, "content": message.text} for message in conversation(request)]
        usage: UsageReport | None = None
        try:
            stream = await self.client.chat.completions.create(
                model=self.model,
                messages=messages,  # type: ignore[arg-type]
                stream=True,
                stream_options={"include_usage": True},
                temperature=self.temperature,
                **{self.token_limit_field: self.max_tokens},  # type: ignore[arg-type]
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
        except ProviderError:
            raise
        except openai.APIStatusError as exc:
            raise error_for_status(self.name, exc.status_code, exc.message, exc.response.headers) from exc
        except openai.APITimeoutError as exc:
            raise ProviderTimeout(f"request timed out: {exc}", self.name) from exc
        except openai.APIConnectionError as exc:
            raise connection_error(self.name, exc) from exc
        except Exception as exc:  # an error event in the stream, a cut body, malformed JSON
            if connection_refused(exc):
                raise connection_error(self.name, exc) from exc
            raise ProviderRetryable(f"stream broke: {type(exc).__name__}: {exc}", self.name) from exc
        if usage is not None:
            yield usage
