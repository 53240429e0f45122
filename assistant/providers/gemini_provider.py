"""Google Gemini through `google-genai`, the maintained successor of `google-generativeai`.

`google-generativeai` is deprecated and gets no new models or fixes; `google-genai` is Google's
supported SDK for the Gemini API (and Vertex AI), with native asyncio. Streaming is
`streamGenerateContent?alt=sse`; usage comes in `usageMetadata`. The SDK's retries (tenacity)
are off: the router owns retries.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx2
from google import genai
from google.genai import errors, types

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


class GeminiProvider(AIProvider):
    """`generate_content_stream` on the async client."""

    name = "gemini"

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
        self.config = types.GenerateContentConfig(temperature=temperature, max_output_tokens=max_tokens)
        self.client = genai.Client(
            api_key=api_key,
            http_options=types.HttpOptions(
                base_url=base_url,
                # Milliseconds; google-genai applies it to each request as httpx's timeout
                # (connect and every read). The router's own first-token and idle timeouts are
                # tighter; this is the backstop.
                timeout=int(max(read_timeout_s, connect_timeout_s) * 1000),
                retry_options=types.HttpRetryOptions(attempts=1),
            ),
        )

    async def aclose(self) -> None:
        """Close the SDK's HTTP connection pool."""
        await self.client.aio.aclose()

    async def stream(self, request: ReplyRequest) -> AsyncIterator[StreamEvent]:
        """Yield text parts, then the usage of the last chunk that had any."""
        contents = [
            types.Content(
                role="model" if message.role == "assistant" else "user", parts=[types.Part(text=message.text)]
            )
            for message in conversation(request)
        ]
        config = self.config.model_copy(update={"system_instruction": system_text(request)})
        usage: UsageReport | None = None
        try:
            stream = await self.client.aio.models.generate_content_stream(
                model=self.model, contents=contents, config=config
            )
            async for chunk in stream:
                text = _text_of(chunk)
                if text:
                    yield TextChunk(text)
                metadata = chunk.usage_metadata
                if metadata is not None and (metadata.prompt_token_count or metadata.candidates_token_count):
                    usage = UsageReport(
                        input_tokens=metadata.prompt_token_count,
                        output_tokens=metadata.candidates_token_count,
                        cached_tokens=metadata.cached_content_token_count,
                    )
        except ProviderError:
            raise
        except errors.APIError as exc:
            headers = getattr(getattr(exc, "response", None), "headers", None)
            raise error_for_status(self.name, exc.code or 500, exc.message or str(exc), headers) from exc
        except httpx2.TimeoutException as exc:
            raise ProviderTimeout(f"request timed out: {exc}", self.name) from exc
        except Exception as exc:  # connection refused or cut, malformed JSON in the stream
            if connection_refused(exc):
                raise connection_error(self.name, exc) from exc
            raise ProviderRetryable(f"stream broke: {type(exc).__name__}: {exc}", self.name) from exc
        if usage is not None:
            yield usage


def _text_of(chunk: types.GenerateContentResponse) -> str:
    """The text parts of the first candidate (`chunk.text` warns on non-text parts)."""
    if not chunk.candidates:
        return ""
    content = chunk.candidates[0].content
    if content is None or not content.parts:
        return ""
    return "".join(part.text for part in content.parts if part.text and not part.thought)
