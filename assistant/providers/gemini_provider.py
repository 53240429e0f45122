"""Google Gemini through `google-genai`, the maintained successor of `google-generativeai`.

`google-generativeai` is deprecated and gets no new models or fixes; `google-genai` is Google's
supported SDK for the Gemini API (and Vertex AI), with native asyncio. Streaming is
`streamGenerateContent?alt=sse`; usage comes in `usageMetadata`. The SDK's retries (tenacity)
are off: the router owns retries.

Structured output: `response_mime_type="application/json"` with the request's schema as
`response_json_schema`. A reply blocked by the safety filters ends with `finishReason: SAFETY`
(or PROHIBITED_CONTENT, BLOCKLIST, SPII, RECITATION), a blocked prompt comes back with
`promptFeedback.blockReason`: both raise `ProviderRefused`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from google import genai
from google.genai import types

from assistant.providers.base import ProviderRefused, ReplyRequest, StreamEvent, TextChunk, UsageReport
from assistant.providers.cloud import CloudProvider
from assistant.providers.prompt import conversation, system_text

#: Finish reasons meaning the model's answer was withheld, not complete.
_REFUSED = frozenset({"SAFETY", "PROHIBITED_CONTENT", "BLOCKLIST", "SPII", "RECITATION", "IMAGE_SAFETY"})


class GeminiProvider(CloudProvider):
    """`generate_content_stream` on the async client."""

    name = "gemini"

    def make_client(self, api_key: str) -> genai.Client:
        """The SDK client, no retries."""
        return genai.Client(
            api_key=api_key,
            http_options=types.HttpOptions(
                base_url=self.base_url,
                # Milliseconds; google-genai applies it to each request as httpx's timeout
                # (connect and every read). The router's own first-token and idle timeouts are
                # tighter; this is the backstop.
                timeout=int(max(self.read_timeout_s, self.connect_timeout_s) * 1000),
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
        config = types.GenerateContentConfig(
            system_instruction=system_text(request),
            temperature=self.temperature,
            max_output_tokens=self.max_tokens,
        )
        if request.response_schema is not None:
            config.response_mime_type = "application/json"
            config.response_json_schema = dict(request.response_schema)
        usage: UsageReport | None = None
        with self.vendor_errors():
            # Lazy: the request (and any status or connection error) happens at the first iteration.
            stream = await self.client.aio.models.generate_content_stream(
                model=self.model, contents=contents, config=config
            )
            async for chunk in stream:
                _check_refusal(chunk, self.name)
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
        if usage is not None:
            yield usage


def _check_refusal(chunk: types.GenerateContentResponse, provider: str) -> None:
    """Raise ProviderRefused when the prompt was blocked or the answer withheld."""
    feedback = chunk.prompt_feedback
    if feedback is not None and feedback.block_reason:
        raise ProviderRefused(f"refusal: prompt blocked ({_name(feedback.block_reason)})", provider)
    if chunk.candidates:
        reason = _name(chunk.candidates[0].finish_reason)
        if reason in _REFUSED:
            raise ProviderRefused(f"refusal: finishReason {reason}", provider)


def _name(value: object) -> str:
    """An SDK enum's name, or the raw string an unknown value arrives as."""
    return str(getattr(value, "value", value) or "")


def _text_of(chunk: types.GenerateContentResponse) -> str:
    """The text parts of the first candidate (`chunk.text` warns on non-text parts)."""
    if not chunk.candidates:
        return ""
    content = chunk.candidates[0].content
    if content is None or not content.parts:
        return ""
    return "".join(part.text for part in content.parts if part.text and not part.thought)
