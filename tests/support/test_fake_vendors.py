"""The fake vendor servers, driven through the real OpenAI, Anthropic and Gemini SDKs.

These tests pin two things: that each fake speaks its vendor's wire protocol well enough for the
unmodified SDK, and what each SDK raises, and when, for every fault. The second is what the
provider modules translate into the error taxonomy, so the tables below double as documentation.

status:NNN     openai, anthropic: raised by `await create()`, the class chosen by status (RateLimitError,
               AuthenticationError, ...; anthropic 503 -> ServiceUnavailableError, an InternalServerError);
               Retry-After is on `exc.response.headers` (an httpx2.Response).
               gemini: `await generate_content_stream()` returns a lazy generator; the request, so the
               error (ClientError for 4xx, ServerError for 5xx, `.code` = status), comes at the first
               iteration. `exc.response` is the httpx2.Response there too.
cut:N          after N chunks, from iteration. openai: APIConnectionError (__cause__ httpx2.RemoteProtocolError);
               anthropic and gemini: httpx2.RemoteProtocolError itself, not wrapped in an SDK error.
error_event:N  after N chunks, from iteration. openai: `openai.APIError`, the base class (no status_code);
               anthropic: `APIStatusError` with status_code 200 and `.type == "overloaded_error"` (not
               OverloadedError: that class is picked by HTTP status 529 only); gemini: ServerError code 503,
               whose `.response` is google.genai's own HttpResponse, not an httpx2.Response.
malformed:N    after N chunks, from iteration. openai, anthropic: a raw json.JSONDecodeError (not an SDK
               error); gemini: errors.UnknownApiResponseError (a ValueError).
hang           openai, anthropic: APITimeoutError from `await create()`; gemini: httpx2.ReadTimeout, not
               wrapped, at the first iteration (HttpOptions.timeout is in milliseconds).
refused        openai, anthropic: APIConnectionError from `await create()`; gemini: httpx2.ConnectError at
               the first iteration.

Retries: OpenAI and Anthropic retry 408/409/429/5xx and connection errors twice by default, honouring
retry-after-ms then Retry-After (OpenAI only up to 120 s, and not at all beyond; Anthropic however long the
server says); `max_retries=0` turns that off. Gemini retries nothing unless `HttpOptions.retry_options` is
set, but its stream "automatic continuation" re-requests a dropped stream when the server had sent
continuation tokens (the fake never does, so one request each). If aiohttp is ever installed, google-genai
switches its transport to it: the exception classes above change and connection errors get an implicit
retry after a 1-10 s sleep.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anthropic
import httpx2
import openai
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types as genai_types

from tests.support.fake_vendors import DEFAULT_TOKENS, VENDORS, FakeVendor, parse_fault, refused_url

MESSAGES = [{"role": "user", "content": "Say hello."}]


@dataclass
class Reply:
    """What one streamed call delivered, kept when the SDK raises part way through."""

    opened: bool = False  # the SDK call returned a stream object (no error yet)
    pieces: list[str] = field(default_factory=list)
    usage: tuple[int, int, int] | None = None  # input, output, cached
    started_at: float = 0.0
    piece_at: list[float] = field(default_factory=list)


@asynccontextmanager
async def sdk_client(vendor: str, base_url: str, *, timeout: float = 5.0) -> AsyncIterator[Any]:
    """The vendor's real async client pointed at `base_url`, with SDK retries off as the router wants."""
    if vendor == "openai":
        async with openai.AsyncOpenAI(
            api_key="sk-test", base_url=f"{base_url}/v1", max_retries=0, timeout=timeout
        ) as client:
            yield client
    elif vendor == "anthropic":
        async with anthropic.AsyncAnthropic(
            api_key="sk-ant-test", base_url=base_url, max_retries=0, timeout=timeout
        ) as client:
            yield client
    else:
        options = genai_types.HttpOptions(base_url=base_url, timeout=round(timeout * 1000))  # milliseconds
        client = genai.Client(api_key="gm-test", http_options=options)
        try:
            yield client.aio
        finally:
            await client.aio.aclose()


async def stream_reply(vendor: str, client: Any, reply: Reply) -> Reply:
    """Stream one reply through `client` into `reply`; SDK exceptions propagate."""
    reply.started_at = time.monotonic()

    def piece(text: str | None) -> None:
        if text:
            reply.pieces.append(text)
            reply.piece_at.append(time.monotonic())

    if vendor == "openai":
        stream = await client.chat.completions.create(
            model="gpt-test", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
        reply.opened = True
        async for chunk in stream:
            if chunk.choices:
                piece(chunk.choices[0].delta.content)
            if chunk.usage:
                details = chunk.usage.prompt_tokens_details
                cached = (details.cached_tokens or 0) if details else 0
                reply.usage = (chunk.usage.prompt_tokens, chunk.usage.completion_tokens, cached)
    elif vendor == "anthropic":
        stream = await client.messages.create(
            model="claude-test", max_tokens=64, system="Be brief.", messages=MESSAGES, stream=True
        )
        reply.opened = True
        input_tokens = cached = 0
        async for event in stream:
            if event.type == "message_start":
                cached = event.message.usage.cache_read_input_tokens or 0
                # Anthropic's input_tokens leaves cache reads out; the fake's usage tuple includes them.
                input_tokens = event.message.usage.input_tokens + cached
            elif event.type == "content_block_delta" and event.delta.type == "text_delta":
                piece(event.delta.text)
            elif event.type == "message_delta":
                reply.usage = (input_tokens, event.usage.output_tokens, cached)
    else:
        stream = await client.models.generate_content_stream(
            model="gemini-test",
            contents="Say hello.",
            config=genai_types.GenerateContentConfig(system_instruction="Be brief."),
        )
        reply.opened = True
        async for chunk in stream:
            piece(chunk.text)
            meta = chunk.usage_metadata
            if meta and chunk.candidates and chunk.candidates[0].finish_reason:
                usage = (meta.prompt_token_count or 0, meta.candidates_token_count or 0)
                reply.usage = (*usage, meta.cached_content_token_count or 0)
    return reply


async def drive(vendor: str, base_url: str, reply: Reply, *, timeout: float = 5.0) -> Reply:
    """One streamed call on a fresh client, as a provider makes it."""
    async with sdk_client(vendor, base_url, timeout=timeout) as client:
        return await stream_reply(vendor, client, reply)


@pytest.fixture
def serve() -> Iterator[Any]:
    """Start fake vendors for one test and stop them all afterwards."""
    started: list[FakeVendor] = []

    def start(vendor: str, *faults: str, **options: Any) -> FakeVendor:
        server = FakeVendor(vendor, **options).start()
        server.faults.extend(faults)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
        assert not server.server_errors


vendors = pytest.mark.parametrize("vendor", VENDORS)

# -- ok --------------------------------------------------------------------------------------------


@vendors
async def test_ok_streams_full_text_and_usage(serve, vendor: str) -> None:
    server = serve(vendor, usage=(30, 0, 5))

    reply = await drive(vendor, server.base_url, Reply())

    assert reply.pieces == DEFAULT_TOKENS
    assert reply.usage == (30, len(DEFAULT_TOKENS), 5)
    [request] = server.requests
    assert (request.method, request.fault) == ("POST", "ok")
    assert len(server.chunk_sent_at[0]) == len(DEFAULT_TOKENS)


async def test_requests_are_recorded_as_each_sdk_sends_them(serve) -> None:
    servers = {vendor: serve(vendor) for vendor in VENDORS}
    for vendor, server in servers.items():
        await drive(vendor, server.base_url, Reply())

    openai_request = servers["openai"].requests[0]
    assert openai_request.path == "/v1/chat/completions"
    assert openai_request.headers["authorization"] == "Bearer sk-test"
    assert openai_request.json["stream_options"] == {"include_usage": True}
    anthropic_request = servers["anthropic"].requests[0]
    assert anthropic_request.path == "/v1/messages"
    # This SDK release sends the key as a bearer token, not as `x-api-key`.
    assert anthropic_request.headers["authorization"] == "Bearer sk-ant-test"
    assert anthropic_request.json["system"] == "Be brief."
    gemini_request = servers["gemini"].requests[0]
    # google-genai 3.x defaults to API version v1 (not v1beta) and always asks for SSE.
    assert gemini_request.path == "/v1/models/gemini-test:streamGenerateContent?alt=sse"
    assert gemini_request.headers["x-goog-api-key"] == "gm-test"
    assert gemini_request.json["systemInstruction"]["parts"] == [{"text": "Be brief."}]


async def test_openai_sends_no_usage_chunk_unless_asked(serve) -> None:
    server = serve("openai")
    async with openai.AsyncOpenAI(api_key="k", base_url=f"{server.base_url}/v1", max_retries=0) as client:
        stream = await client.chat.completions.create(model="gpt-test", messages=MESSAGES, stream=True)
        chunks = [chunk async for chunk in stream]

    assert all(chunk.usage is None for chunk in chunks)
    assert "".join(chunk.choices[0].delta.content or "" for chunk in chunks) == "".join(DEFAULT_TOKENS)


@vendors
async def test_sequential_requests_reuse_one_keep_alive_connection(serve, vendor: str) -> None:
    server = serve(vendor, "status:500", "ok", "ok")
    options: dict[str, Any] = {"api_key": "k", "max_retries": 0}

    if vendor == "openai":
        async with openai.AsyncOpenAI(base_url=f"{server.base_url}/v1", **options) as client:
            with pytest.raises(openai.InternalServerError):
                await client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
            for _ in range(2):
                stream = await client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
                assert len([chunk async for chunk in stream]) > len(DEFAULT_TOKENS)
    elif vendor == "anthropic":
        async with anthropic.AsyncAnthropic(base_url=server.base_url, **options) as client:
            with pytest.raises(anthropic.InternalServerError):
                await client.messages.create(model="m", max_tokens=8, messages=MESSAGES, stream=True)
            for _ in range(2):
                stream = await client.messages.create(model="m", max_tokens=8, messages=MESSAGES, stream=True)
                assert len([event async for event in stream]) > len(DEFAULT_TOKENS)
    else:
        client = genai.Client(api_key="k", http_options=genai_types.HttpOptions(base_url=server.base_url))
        with pytest.raises(genai_errors.ServerError):
            async for _ in await client.aio.models.generate_content_stream(model="m", contents="hi"):
                pass
        for _ in range(2):
            stream = await client.aio.models.generate_content_stream(model="m", contents="hi")
            assert len([chunk async for chunk in stream]) == len(DEFAULT_TOKENS)
        await client.aio.aclose()

    assert len({request.client_port for request in server.requests}) == 1
    assert [request.fault for request in server.requests] == ["status:500", "ok", "ok"]


def test_sync_sdk_and_sync_test_work_too() -> None:
    with FakeVendor("openai", tokens=["a", "b"]) as server:
        client = openai.OpenAI(api_key="k", base_url=f"{server.base_url}/v1", max_retries=0)
        stream = client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
        text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
        client.close()

    assert text == "ab"


# -- status faults ---------------------------------------------------------------------------------

STATUS_ERRORS: dict[str, dict[int, type[Exception]]] = {
    "openai": {
        400: openai.BadRequestError,
        401: openai.AuthenticationError,
        403: openai.PermissionDeniedError,
        404: openai.NotFoundError,
        429: openai.RateLimitError,
        500: openai.InternalServerError,
        503: openai.InternalServerError,
    },
    "anthropic": {
        400: anthropic.BadRequestError,
        401: anthropic.AuthenticationError,
        403: anthropic.PermissionDeniedError,
        404: anthropic.NotFoundError,
        429: anthropic.RateLimitError,
        500: anthropic.InternalServerError,
        503: anthropic.ServiceUnavailableError,
    },
    "gemini": {
        **dict.fromkeys((400, 401, 403, 404, 429), genai_errors.ClientError),
        **dict.fromkeys((500, 503), genai_errors.ServerError),
    },
}


@vendors
@pytest.mark.parametrize("status", [400, 401, 403, 404, 429, 500, 503])
async def test_status_fault_raises_the_sdks_error_class(serve, vendor: str, status: int) -> None:
    server = serve(vendor, f"status:{status}")
    reply = Reply()

    with pytest.raises(STATUS_ERRORS[vendor][status]) as caught:
        await drive(vendor, server.base_url, reply)

    error: Any = caught.value
    assert (error.code if vendor == "gemini" else error.status_code) == status
    # OpenAI and Anthropic raise from `await create()`; Gemini's await returns a lazy generator and
    # the request (so the error) happens at the first iteration.
    assert reply.opened is (vendor == "gemini")
    assert reply.pieces == []


RATE_LIMIT_BODY_MARKS = {
    "openai": ("code", "rate_limit_exceeded"),
    "anthropic": ("type", "rate_limit_error"),
    "gemini": ("status", "RESOURCE_EXHAUSTED"),
}


@vendors
async def test_rate_limit_exposes_retry_after_on_the_response_headers(serve, vendor: str) -> None:
    server = serve(vendor, "status:429:retry_after=1.5")

    with pytest.raises((openai.RateLimitError, anthropic.RateLimitError, genai_errors.ClientError)) as caught:
        await drive(vendor, server.base_url, Reply())

    error: Any = caught.value
    assert isinstance(error.response, httpx2.Response)
    assert error.response.headers["retry-after"] == "1.5"
    if vendor != "gemini":
        assert error.response.headers["retry-after-ms"] == "1500"
    key, value = RATE_LIMIT_BODY_MARKS[vendor]
    assert error.response.json()["error"][key] == value


@vendors
async def test_faults_apply_first_in_first_out_one_per_request(serve, vendor: str) -> None:
    server = serve(vendor, "status:503", "ok")

    with pytest.raises((openai.InternalServerError, anthropic.InternalServerError, genai_errors.ServerError)):
        await drive(vendor, server.base_url, Reply())
    reply = await drive(vendor, server.base_url, Reply())

    assert reply.pieces == DEFAULT_TOKENS
    assert [request.fault for request in server.requests] == ["status:503", "ok"]
    assert server.faults == []


# -- mid-stream faults -----------------------------------------------------------------------------

CUT_ERRORS: dict[str, type[Exception]] = {
    "openai": openai.APIConnectionError,  # __cause__ is httpx2.RemoteProtocolError
    "anthropic": httpx2.RemoteProtocolError,  # the SDK does not wrap errors raised while iterating
    "gemini": httpx2.RemoteProtocolError,  # nor does google-genai
}


@vendors
async def test_cut_connection_raises_from_iteration_after_n_chunks(serve, vendor: str) -> None:
    server = serve(vendor, "cut:2")
    reply = Reply()

    with pytest.raises(CUT_ERRORS[vendor]) as caught:
        await drive(vendor, server.base_url, reply)

    assert reply.opened
    assert reply.pieces == DEFAULT_TOKENS[:2]
    assert "incomplete chunked read" in str(caught.value.__cause__ or caught.value)
    assert len(server.requests) == 1  # no hidden retry (Gemini's continuation has no token to resume from)


ERROR_EVENT_ERRORS: dict[str, type[Exception]] = {
    # `data: {"error": {...}}` -> openai.APIError: the base class, no status_code (the response was a 200).
    "openai": openai.APIError,
    # `event: error` -> anthropic.APIStatusError built from the 200 response: status_code 200, .type
    # "overloaded_error"; not OverloadedError, whose class is chosen by HTTP status (529) only.
    "anthropic": anthropic.APIStatusError,
    # A `data:` object starting with "error" -> ClientError/ServerError by its "code" (503 here), whose
    # .response is google.genai._api_client.HttpResponse rather than httpx2.Response.
    "gemini": genai_errors.ServerError,
}


@vendors
async def test_error_event_raises_from_iteration_after_n_chunks(serve, vendor: str) -> None:
    server = serve(vendor, "error_event:2")
    reply = Reply()

    with pytest.raises(ERROR_EVENT_ERRORS[vendor]) as caught:
        await drive(vendor, server.base_url, reply)

    error: Any = caught.value
    assert reply.pieces == DEFAULT_TOKENS[:2]
    if vendor == "openai":
        assert not isinstance(error, openai.APIStatusError)
        assert error.type == "server_error"
    elif vendor == "anthropic":
        assert (error.status_code, error.type) == (200, "overloaded_error")
    else:
        assert (error.code, error.status) == (503, "UNAVAILABLE")


MALFORMED_ERRORS: dict[str, type[Exception]] = {
    "openai": json.JSONDecodeError,  # raw from sse.json(); not an openai.OpenAIError
    "anthropic": json.JSONDecodeError,  # likewise
    "gemini": genai_errors.UnknownApiResponseError,  # a ValueError, __cause__ JSONDecodeError
}


@vendors
async def test_malformed_event_raises_from_iteration(serve, vendor: str) -> None:
    server = serve(vendor, "malformed:1")
    reply = Reply()

    with pytest.raises(MALFORMED_ERRORS[vendor]):
        await drive(vendor, server.base_url, reply)

    assert reply.pieces == DEFAULT_TOKENS[:1]


HANG_ERRORS: dict[str, type[Exception]] = {
    "openai": openai.APITimeoutError,
    "anthropic": anthropic.APITimeoutError,
    "gemini": httpx2.ReadTimeout,  # HttpOptions.timeout (milliseconds) becomes httpx2's timeout, unwrapped
}


@vendors
async def test_hang_is_caught_by_the_sdk_timeout(serve, vendor: str) -> None:
    server = serve(vendor, "hang")
    reply = Reply()

    with pytest.raises(HANG_ERRORS[vendor]):
        await drive(vendor, server.base_url, reply, timeout=0.3)

    assert 0.25 <= time.monotonic() - reply.started_at < 2
    assert reply.opened is (vendor == "gemini")
    assert len(server.requests) == 1


@vendors
async def test_slow_first_delays_the_first_token(serve, vendor: str) -> None:
    server = serve(vendor, "slow_first:0.3")

    reply = await drive(vendor, server.base_url, Reply())

    assert reply.pieces == DEFAULT_TOKENS
    assert reply.piece_at[0] - reply.started_at >= 0.3
    assert reply.piece_at[-1] - reply.piece_at[0] < 0.3  # the wait came before the first token, not spread out


@vendors
async def test_stall_pauses_between_chunks(serve, vendor: str) -> None:
    server = serve(vendor, "stall:2:0.3")

    reply = await drive(vendor, server.base_url, Reply())

    assert reply.pieces == DEFAULT_TOKENS
    sent = server.chunk_sent_at[0]
    assert sent[2] - sent[1] >= 0.3
    assert reply.piece_at[2] - reply.piece_at[1] >= 0.25  # client-side: less exact, delivery times jitter
    assert reply.piece_at[1] - reply.started_at < 0.3


async def test_token_interval_spaces_chunks(serve) -> None:
    server = serve("anthropic", tokens=["a", "b", "c", "d"], token_interval_s=0.05)

    reply = await drive("anthropic", server.base_url, Reply())

    sent = server.chunk_sent_at[0]
    assert reply.pieces == ["a", "b", "c", "d"]
    assert all(later - earlier >= 0.045 for earlier, later in itertools.pairwise(sent))
    assert all(received >= sent_at for received, sent_at in zip(reply.piece_at, sent, strict=True))


# -- connection-level ------------------------------------------------------------------------------

REFUSED_ERRORS: dict[str, type[Exception]] = {
    "openai": openai.APIConnectionError,
    "anthropic": anthropic.APIConnectionError,
    "gemini": httpx2.ConnectError,
}


@vendors
async def test_refused_url_refuses_connections(vendor: str) -> None:
    reply = Reply()

    with pytest.raises(REFUSED_ERRORS[vendor]):
        await drive(vendor, refused_url(), reply)

    assert time.monotonic() - reply.started_at < 1


async def test_many_concurrent_streams(serve) -> None:
    server = serve("openai", token_interval_s=0.02)

    async with sdk_client("openai", server.base_url) as client:
        replies = await asyncio.gather(*(stream_reply("openai", client, Reply()) for _ in range(120)))

    assert all(reply.pieces == DEFAULT_TOKENS for reply in replies)
    assert len({request.client_port for request in server.requests}) == 120  # all open at the same time


async def test_stop_closes_hung_connections_promptly() -> None:
    # OpenAI's pool allows 1000 connections; google-genai keeps httpx2's default of 100 per client, so a
    # 101st concurrent Gemini stream would wait for a pool slot.
    server = FakeVendor("openai").start()
    server.faults.extend(["hang"] * 110)
    async with sdk_client("openai", server.base_url, timeout=30) as client:
        calls = [asyncio.create_task(stream_reply("openai", client, Reply())) for _ in range(110)]
        assert await asyncio.to_thread(server.wait_for_requests, 110, timeout=5)

        began = time.monotonic()
        server.stop()
        stopped = time.monotonic() - began
        results = await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), 2)

    assert stopped < 1
    assert all(type(result) is openai.APIConnectionError for result in results)
    assert not [thread for thread in threading.enumerate() if thread.name.startswith("fake-")]


# -- misuse is loud --------------------------------------------------------------------------------


async def test_unknown_route_gets_the_vendors_404_and_keeps_the_fault(serve) -> None:
    server = serve("openai", "status:500")

    with pytest.raises(openai.NotFoundError):
        await drive("openai", server.base_url.removesuffix("/") + "/oops", Reply())

    assert server.requests[0].fault == ""
    assert server.faults == ["status:500"]


def test_parse_fault_rejects_typos() -> None:
    assert parse_fault("stall:2:0.5").count == 2
    assert parse_fault("status:429:retry_after=1.5").retry_after == "1.5"
    for spec in ["cut2", "cut:-1", "status:200", "status:429:after=1", "stall:2", "slow_first:x", "hang:1"]:
        with pytest.raises(ValueError, match="bad fault spec"):
            parse_fault(spec)


async def test_bad_fault_spec_answers_500_and_is_reported() -> None:
    with FakeVendor("anthropic") as server:
        server.faults.append("cut2")
        with pytest.raises(anthropic.InternalServerError, match="bad fault spec"):
            await drive("anthropic", server.base_url, Reply())

    assert [type(error) for error in server.server_errors] == [ValueError]


# -- refusal, default fault, in-flight count -------------------------------------------------------


@vendors
async def test_refusal_arrives_in_each_vendors_shape(serve, vendor: str) -> None:
    server = serve(vendor, "refusal")
    async with sdk_client(vendor, server.base_url) as client:
        if vendor == "openai":
            stream = await client.chat.completions.create(model="gpt-test", messages=MESSAGES, stream=True)
            refusal = "".join([c.choices[0].delta.refusal or "" async for c in stream if c.choices])
            assert refusal == "I'm sorry, I can't help with that."
        elif vendor == "anthropic":
            stream = await client.messages.create(model="claude-test", max_tokens=64, messages=MESSAGES, stream=True)
            reasons = [e.delta.stop_reason async for e in stream if e.type == "message_delta"]
            assert reasons == ["refusal"]
        else:
            stream = await client.models.generate_content_stream(model="gemini-test", contents="Say hello.")
            chunks = [chunk async for chunk in stream]
            assert chunks[-1].candidates[0].finish_reason == genai_types.FinishReason.SAFETY


async def test_default_fault_answers_once_the_queue_is_empty_and_in_flight_is_counted(serve) -> None:
    server = serve("openai")
    server.default_fault = "slow_first:0.2"
    replies = await asyncio.gather(*(drive("openai", server.base_url, Reply()) for _ in range(4)))
    assert all("".join(reply.pieces) == "".join(DEFAULT_TOKENS) for reply in replies)
    assert [request.fault for request in server.requests] == ["slow_first:0.2"] * 4
    assert server.max_in_flight == 4 and server.in_flight == 0


async def test_a_malformed_response_format_gets_openais_400(serve) -> None:
    server = serve("openai")
    async with sdk_client("openai", server.base_url) as client:
        with pytest.raises(openai.BadRequestError):
            await client.chat.completions.create(
                model="gpt-test", messages=MESSAGES, stream=True, response_format={"type": "json_schema"}
            )


async def test_token_queue_gives_each_answer_its_own_text_then_tokens(serve) -> None:
    server = serve("openai", "status:503", "ok", "ok")
    server.token_queue.append(["first"])
    with pytest.raises(openai.InternalServerError):
        await drive("openai", server.base_url, Reply())  # a status answer takes nothing from the queue
    assert "".join((await drive("openai", server.base_url, Reply())).pieces) == "first"
    assert "".join((await drive("openai", server.base_url, Reply())).pieces) == "".join(DEFAULT_TOKENS)
