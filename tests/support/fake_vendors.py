"""Loopback servers that speak the OpenAI, Anthropic and Gemini streaming wire protocols.

Provider tests must exercise what production runs: the official SDKs' HTTP client, SSE decoder
and error mapping. Mocking SDK functions would test our guess of what they do. Instead each
`FakeVendor` is a real HTTP/1.1 server on 127.0.0.1 that the unmodified SDK is pointed at through
its base-URL setting, and faults (status errors, hangs, cut connections, broken SSE, in-stream
error events, slow or stalled streams) are injected one request at a time:

    with FakeVendor("anthropic") as vendor:
        vendor.faults.append("status:429:retry_after=1.5")
        client = AsyncAnthropic(api_key="k", base_url=vendor.base_url, max_retries=0)

Faults, one spec string per request ("token chunk" = one SSE event carrying text; a vendor's
preamble, such as OpenAI's role chunk or Anthropic's message_start/content_block_start/ping, is
always sent with the headers):

    ok                       the whole stream, then the vendor's end events and usage
    hang                     read the request, never answer (until the client gives up or stop())
    status:NNN               any 4xx/5xx with the vendor's real JSON error body
    status:429:retry_after=S adds `Retry-After: S` (and `retry-after-ms` for OpenAI and Anthropic)
    cut:N                    N token chunks, then close the connection mid-body
    malformed:N              N token chunks, then an event whose JSON is invalid, then end the body
    error_event:N            N token chunks, then the vendor's in-stream error event, then end the body
    slow_first:S             headers and preamble at once, S seconds before the first token chunk
    stall:N:S                N token chunks, S seconds' pause, then the rest
    refusal                  the model declines, in the vendor's real shape: OpenAI streams `delta.refusal`
                             text, Anthropic ends with `stop_reason: "refusal"`, Gemini `finishReason: SAFETY`

`token_queue` (token lists, first in first out) gives each streamed answer its own text, `tokens` once it is
empty (a model answering badly, then well). `default_fault` answers requests once `faults` is empty ("ok"
unless set, e.g. "slow_first:0.2" for a vendor that always takes 200 ms); `max_in_flight` is the most
requests the server was answering at once.
Structured-output request fields (OpenAI `response_format`, Gemini `generationConfig.responseJsonSchema`) are
recorded like the rest of the body; a malformed OpenAI `response_format` gets the real 400.

Bodies are written with `Transfer-Encoding: chunked`, one HTTP chunk per SSE event, so a "cut"
fault (connection closed without the terminating zero-length chunk) is a protocol error for the
client rather than a clean end of body. Responses keep the connection alive, as the SDKs' pools
expect. The server runs on its own event loop in a daemon thread, so the same object works from
sync tests, from async tests (whatever loop they use), and under load (100+ concurrent connections).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import http
import json
import re
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, ClassVar

__all__ = ["DEFAULT_TOKENS", "VENDORS", "FakeVendor", "Fault", "RecordedRequest", "parse_fault", "refused_url"]

VENDORS = ("openai", "anthropic", "gemini")
DEFAULT_TOKENS = ["Hello", " from", " the", " fake", " vendor", ":", " all", " good."]

_MAX_HEADER_BYTES = 1 << 20
_SERVER_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the server saw it, kept even when a fault answered it."""

    method: str
    path: str  # the request target as sent, query string included ("...:streamGenerateContent?alt=sse")
    headers: dict[str, str]  # lower-case names; repeated headers joined with ", "
    json: Any  # the decoded body, None when empty or not JSON
    received_at: float  # time.monotonic() once the whole request was read
    body: bytes = b""
    fault: str = "ok"  # the fault spec that answered it ("" for a request to an unknown route)
    client_port: int = 0  # the client's source port: equal ports mean a reused keep-alive connection


@dataclass(frozen=True)
class Fault:
    """A parsed fault spec; see `parse_fault` for the accepted strings."""

    kind: str  # ok | hang | status | cut | malformed | error_event | slow_first | stall | refusal
    status: int = 0
    retry_after: str | None = None
    count: int = 0
    seconds: float = 0.0


def parse_fault(spec: str) -> Fault:
    """Parse a fault string, raising ValueError on a typo so a test fails loudly instead of passing on "ok"."""
    kind, _, rest = spec.partition(":")
    args = rest.split(":") if rest else []
    try:
        if kind in {"ok", "hang", "refusal"} and not args:
            return Fault(kind)
        if kind == "status" and 1 <= len(args) <= 2:
            retry_after = None
            if len(args) == 2:
                name, _, value = args[1].partition("=")
                if name != "retry_after" or not value:
                    raise ValueError(args[1])
                float(value)
                retry_after = value
            status = int(args[0])
            if not 400 <= status <= 599:
                raise ValueError(status)
            return Fault("status", status=status, retry_after=retry_after)
        if kind in {"cut", "malformed", "error_event"} and len(args) == 1:
            return Fault(kind, count=int(_non_negative(int(args[0]))))
        if kind == "slow_first" and len(args) == 1:
            return Fault(kind, seconds=_non_negative(float(args[0])))
        if kind == "stall" and len(args) == 2:
            return Fault(kind, count=int(_non_negative(int(args[0]))), seconds=_non_negative(float(args[1])))
    except ValueError as exc:
        raise ValueError(f"bad fault spec {spec!r}: {exc}") from None
    raise ValueError(f"bad fault spec {spec!r}")


def _non_negative(value: float) -> float:
    if value < 0:
        raise ValueError(f"negative value {value}")
    return value


@functools.cache
def refused_url() -> str:
    """An http://127.0.0.1:<port> where nothing listens, so connecting is refused at once.

    The port stays bound (without `listen()`) for the life of the process: the kernel answers
    SYNs to it with RST, and no other test can start listening there by chance.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    _refused_sockets.append(sock)
    return f"http://127.0.0.1:{sock.getsockname()[1]}"


_refused_sockets: list[socket.socket] = []


@dataclass
class _Exchange:
    """What one streamed response needs to know about its request."""

    model: str
    tokens: list[str]
    usage: tuple[int, int, int]  # input, output, cached, with output resolved
    include_usage: bool  # openai: the caller asked for the usage chunk
    response_id: str = field(default_factory=lambda: uuid.uuid4().hex[:24])
    created: int = field(default_factory=lambda: int(time.time()))


def _sse(data: Any, event: str | None = None) -> bytes:
    payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    prefix = f"event: {event}\n" if event else ""
    return f"{prefix}data: {payload}\n\n".encode()


class _Protocol:
    """One vendor's routes, stream events and error bodies."""

    request_id_header: ClassVar[str | None] = None
    retry_after_ms: ClassVar[bool] = False

    def route(self, method: str, target: str) -> str | None:
        """The model name when `method target` is this vendor's streaming endpoint, else None."""
        raise NotImplementedError

    def bad_request(self, target: str, body: Any) -> str | None:
        """Why a routed request cannot be served as a stream (the fake only speaks streaming)."""
        return None

    def exchange(self, model: str, body: Any, tokens: list[str], usage: tuple[int, int, int]) -> _Exchange:
        return _Exchange(model=model, tokens=tokens, usage=usage, include_usage=True)

    def preamble(self, ex: _Exchange) -> list[bytes]:
        return []

    def token(self, ex: _Exchange, text: str, *, last: bool) -> bytes:
        raise NotImplementedError

    def epilogue(self, ex: _Exchange) -> list[bytes]:
        return []

    def malformed(self) -> bytes:
        raise NotImplementedError

    def error_event(self) -> bytes:
        raise NotImplementedError

    def refusal(self, ex: _Exchange) -> list[bytes]:
        """The events of a declined answer, after the preamble, up to the end of the stream."""
        raise NotImplementedError

    def error_body(self, status: int, message: str | None = None) -> dict[str, Any]:
        raise NotImplementedError


class _OpenAI(_Protocol):
    """Chat Completions streaming: `data: {chat.completion.chunk}` lines ending with `data: [DONE]`."""

    request_id_header = "x-request-id"
    retry_after_ms = True
    _errors: ClassVar[dict[int, tuple[str, str | None, str]]] = {
        400: ("invalid_request_error", None, "Invalid request."),
        401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
        403: ("invalid_request_error", "unsupported_country_region_territory", "Country not supported."),
        404: ("invalid_request_error", "model_not_found", "The model does not exist or you do not have access."),
        429: ("requests", "rate_limit_exceeded", "Rate limit reached for requests. Please try again later."),
        500: ("server_error", None, "The server had an error while processing your request."),
        503: ("server_error", None, "The engine is currently overloaded, please try again later."),
    }

    def route(self, method: str, target: str) -> str | None:
        return "" if (method, target.partition("?")[0]) == ("POST", "/v1/chat/completions") else None

    def bad_request(self, target: str, body: Any) -> str | None:
        if not isinstance(body, dict) or body.get("stream") is not True:
            return "the fake vendor only serves stream=true"
        response_format = body.get("response_format")
        if response_format is not None:
            schema = response_format.get("json_schema") if isinstance(response_format, dict) else None
            kind = response_format.get("type") if isinstance(response_format, dict) else None
            if kind == "json_schema" and not (
                isinstance(schema, dict) and schema.get("name") and isinstance(schema.get("schema"), dict)
            ):
                return "Missing required parameter: 'response_format.json_schema'."
            if kind not in {"text", "json_object", "json_schema"}:
                return f"Invalid value: {kind!r}. Supported values are: 'text', 'json_object', and 'json_schema'."
        return None

    def exchange(self, model: str, body: Any, tokens: list[str], usage: tuple[int, int, int]) -> _Exchange:
        options = body.get("stream_options") or {}
        return _Exchange(
            model=str(body.get("model", "")),
            tokens=tokens,
            usage=usage,
            include_usage=bool(options.get("include_usage")),
        )

    def _chunk(self, ex: _Exchange, choices: list[dict[str, Any]], **extra: Any) -> bytes:
        chunk: dict[str, Any] = {
            "id": f"chatcmpl-{ex.response_id}",
            "object": "chat.completion.chunk",
            "created": ex.created,
            "model": ex.model,
            "system_fingerprint": "fp_fake",
            "choices": choices,
        }
        if ex.include_usage:
            chunk["usage"] = None  # as the real API does on every chunk but the last when usage is requested
        chunk.update(extra)
        return _sse(chunk)

    def preamble(self, ex: _Exchange) -> list[bytes]:
        delta = {"role": "assistant", "content": "", "refusal": None}
        return [self._chunk(ex, [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}])]

    def token(self, ex: _Exchange, text: str, *, last: bool) -> bytes:
        return self._chunk(ex, [{"index": 0, "delta": {"content": text}, "logprobs": None, "finish_reason": None}])

    def epilogue(self, ex: _Exchange) -> list[bytes]:
        events = [self._chunk(ex, [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}])]
        if ex.include_usage:
            prompt, completion, cached = ex.usage
            usage = {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
                "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
                "completion_tokens_details": {
                    "reasoning_tokens": 0,
                    "audio_tokens": 0,
                    "accepted_prediction_tokens": 0,
                    "rejected_prediction_tokens": 0,
                },
            }
            events.append(self._chunk(ex, [], usage=usage))
        events.append(_sse("[DONE]"))
        return events

    def malformed(self) -> bytes:
        return _sse('{"choices": [')

    def error_event(self) -> bytes:
        error = {"message": "The server had an error while processing your request.", "type": "server_error"}
        return _sse({"error": {**error, "param": None, "code": None}})

    def refusal(self, ex: _Exchange) -> list[bytes]:
        pieces = ["I'm sorry,", " I can't", " help with that."]
        events = [
            self._chunk(ex, [{"index": 0, "delta": {"refusal": piece}, "logprobs": None, "finish_reason": None}])
            for piece in pieces
        ]
        return events + self.epilogue(ex)

    def error_body(self, status: int, message: str | None = None) -> dict[str, Any]:
        kind, code, default = self._errors.get(
            status, ("server_error" if status >= 500 else "invalid_request_error", None, "Error.")
        )
        return {"error": {"message": message or default, "type": kind, "param": None, "code": code}}


class _Anthropic(_Protocol):
    """Messages streaming: named SSE events from message_start to message_stop."""

    request_id_header = "request-id"
    retry_after_ms = True
    _errors: ClassVar[dict[int, tuple[str, str]]] = {
        400: ("invalid_request_error", "Invalid request."),
        401: ("authentication_error", "invalid x-api-key"),
        403: ("permission_error", "Your API key does not have permission to use the specified resource."),
        404: ("not_found_error", "The requested resource could not be found."),
        413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
        429: ("rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit."),
        500: ("api_error", "Internal server error"),
        503: ("overloaded_error", "Overloaded"),
        529: ("overloaded_error", "Overloaded"),
    }

    def route(self, method: str, target: str) -> str | None:
        return "" if (method, target.partition("?")[0]) == ("POST", "/v1/messages") else None

    def bad_request(self, target: str, body: Any) -> str | None:
        if not isinstance(body, dict) or body.get("stream") is not True:
            return "the fake vendor only serves stream: true"
        return None

    def exchange(self, model: str, body: Any, tokens: list[str], usage: tuple[int, int, int]) -> _Exchange:
        return _Exchange(model=str(body.get("model", "")), tokens=tokens, usage=usage, include_usage=True)

    def preamble(self, ex: _Exchange) -> list[bytes]:
        input_tokens, _, cached = ex.usage
        message = {
            "id": f"msg_{ex.response_id}",
            "type": "message",
            "role": "assistant",
            "model": ex.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {
                # Anthropic counts cache reads apart from input_tokens (OpenAI and Gemini include them).
                "input_tokens": input_tokens - cached,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": cached,
                "output_tokens": 1,
            },
        }
        return [
            _sse({"type": "message_start", "message": message}, "message_start"),
            _sse(
                {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
                "content_block_start",
            ),
            _sse({"type": "ping"}, "ping"),
        ]

    def token(self, ex: _Exchange, text: str, *, last: bool) -> bytes:
        delta = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}}
        return _sse(delta, "content_block_delta")

    def epilogue(self, ex: _Exchange) -> list[bytes]:
        delta = {"stop_reason": "end_turn", "stop_sequence": None}
        return [
            _sse({"type": "content_block_stop", "index": 0}, "content_block_stop"),
            _sse({"type": "message_delta", "delta": delta, "usage": {"output_tokens": ex.usage[1]}}, "message_delta"),
            _sse({"type": "message_stop"}, "message_stop"),
        ]

    def malformed(self) -> bytes:
        # Named: the SDK skips events without an `event:` line, so a bare `data:` would not be parsed at all.
        return _sse('{"type": "content_block_delta", "index": 0, "delta": {', "content_block_delta")

    def error_event(self) -> bytes:
        return _sse({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}, "error")

    def refusal(self, ex: _Exchange) -> list[bytes]:
        delta = {"stop_reason": "refusal", "stop_sequence": None}
        return [
            _sse({"type": "content_block_stop", "index": 0}, "content_block_stop"),
            _sse({"type": "message_delta", "delta": delta, "usage": {"output_tokens": 2}}, "message_delta"),
            _sse({"type": "message_stop"}, "message_stop"),
        ]

    def error_body(self, status: int, message: str | None = None) -> dict[str, Any]:
        kind, default = self._errors.get(status, ("api_error" if status >= 500 else "invalid_request_error", "Error."))
        return {
            "type": "error",
            "error": {"type": kind, "message": message or default},
            "request_id": f"req_{uuid.uuid4().hex[:24]}",
        }


class _Gemini(_Protocol):
    """generateContent streaming with `alt=sse`: `data: {GenerateContentResponse}` per chunk."""

    # Any API version: this SDK release defaults to v1 (GOOGLE_GENAI_API_VERSION or HttpOptions.api_version
    # change it), while the public docs show v1beta.
    _route = re.compile(r"/v1[a-z0-9]*/models/(?P<model>[^/:?]+):streamGenerateContent")
    _errors: ClassVar[dict[int, tuple[str, str]]] = {
        400: ("INVALID_ARGUMENT", "Request contains an invalid argument."),
        401: ("UNAUTHENTICATED", "Request had invalid authentication credentials."),
        403: ("PERMISSION_DENIED", "Method doesn't allow unregistered callers."),
        404: ("NOT_FOUND", "models/unknown is not found for API version v1beta."),
        429: ("RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota)."),
        500: ("INTERNAL", "An internal error has occurred."),
        503: ("UNAVAILABLE", "The model is overloaded. Please try again later."),
        504: ("DEADLINE_EXCEEDED", "The request timed out."),
    }

    def route(self, method: str, target: str) -> str | None:
        match = self._route.fullmatch(target.partition("?")[0])
        return match["model"] if method == "POST" and match else None

    def bad_request(self, target: str, body: Any) -> str | None:
        query = target.partition("?")[2]
        if "alt=sse" not in query.split("&"):
            return "the fake vendor only serves alt=sse"
        return None

    def _chunk(self, ex: _Exchange, text: str, *, last: bool) -> bytes:
        prompt, candidates, cached = ex.usage
        candidate: dict[str, Any] = {"content": {"parts": [{"text": text}], "role": "model"}, "index": 0}
        usage: dict[str, Any] = {"promptTokenCount": prompt, "totalTokenCount": prompt}
        if last:
            candidate["finishReason"] = "STOP"
            usage = {
                "promptTokenCount": prompt,
                "candidatesTokenCount": candidates,
                "totalTokenCount": prompt + candidates,
            }
            if cached:
                usage["cachedContentTokenCount"] = cached  # the real API omits zero counts
        return _sse(
            {"candidates": [candidate], "usageMetadata": usage, "modelVersion": ex.model, "responseId": ex.response_id}
        )

    def token(self, ex: _Exchange, text: str, *, last: bool) -> bytes:
        return self._chunk(ex, text, last=last)

    def epilogue(self, ex: _Exchange) -> list[bytes]:
        # The last token chunk carries finishReason and the full usage, as the real API does.
        return [] if ex.tokens else [self._chunk(ex, "", last=True)]

    def malformed(self) -> bytes:
        return _sse('{"candidates": [')

    def error_event(self) -> bytes:
        return _sse(self.error_body(503))

    def refusal(self, ex: _Exchange) -> list[bytes]:
        ratings = [
            {"category": "HARM_CATEGORY_HARASSMENT", "probability": "HIGH", "blocked": True},
            {"category": "HARM_CATEGORY_HATE_SPEECH", "probability": "NEGLIGIBLE"},
        ]
        candidate = {"finishReason": "SAFETY", "index": 0, "safetyRatings": ratings}
        usage = {"promptTokenCount": ex.usage[0], "totalTokenCount": ex.usage[0]}
        return [_sse({"candidates": [candidate], "usageMetadata": usage, "modelVersion": ex.model})]

    def error_body(self, status: int, message: str | None = None) -> dict[str, Any]:
        kind, default = self._errors.get(status, ("INTERNAL" if status >= 500 else "FAILED_PRECONDITION", "Error."))
        return {"error": {"code": status, "message": message or default, "status": kind}}


_PROTOCOLS: dict[str, _Protocol] = {"openai": _OpenAI(), "anthropic": _Anthropic(), "gemini": _Gemini()}


@dataclass
class _Request:
    method: str
    target: str
    headers: dict[str, str]
    body: bytes
    client_port: int


class FakeVendor:
    """One loopback server for one vendor ("openai" | "anthropic" | "gemini").

    `faults` is consumed first in, first out, one spec per request to the vendor's streaming
    endpoint; when empty the request is answered "ok". `requests[i]` and `chunk_sent_at[i]` describe
    the same request. A request to any other route gets the vendor's 404 body and consumes no fault.
    `tokens`, `token_interval_s` and `usage` are read per request, so a test may change them between
    calls. `usage` is passed through as is: OpenAI and Gemini count cached tokens inside the input
    count, Anthropic does not, and the fake does not adjust for either.
    """

    def __init__(
        self,
        vendor: str,
        *,
        tokens: list[str] | None = None,
        token_interval_s: float = 0.0,
        usage: tuple[int, int, int] = (12, 0, 0),
    ) -> None:
        if vendor not in _PROTOCOLS:
            raise ValueError(f"unknown vendor {vendor!r}; expected one of {VENDORS}")
        self.vendor = vendor
        self.tokens = list(DEFAULT_TOKENS if tokens is None else tokens)
        self.token_interval_s = token_interval_s
        self.usage = usage
        self.faults: list[str] = []
        self.default_fault = "ok"
        self.token_queue: list[list[str]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.requests: list[RecordedRequest] = []
        self.chunk_sent_at: list[list[float]] = []
        self.server_errors: list[BaseException] = []  # handler crashes: a test can assert this stays empty
        self.base_url = ""
        self._protocol = _PROTOCOLS[vendor]
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._connections: dict[asyncio.Task[None], asyncio.StreamWriter] = {}
        self._recorded = threading.Condition()

    def __repr__(self) -> str:
        return f"FakeVendor({self.vendor!r}, base_url={self.base_url!r})"

    # Lifecycle: the server owns its loop so that neither sync nor async callers lend it theirs.

    def start(self) -> FakeVendor:
        """Listen on a free loopback port in a background thread; returns self."""
        if self._thread is not None:
            raise RuntimeError("already started")
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(target=loop.run_forever, name=f"fake-{self.vendor}", daemon=True)
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(self._listen(), loop).result(_SERVER_TIMEOUT_S)
        port = self._server.sockets[0].getsockname()[1]
        self.base_url = f"http://127.0.0.1:{port}"
        return self

    def stop(self) -> None:
        """Close the listener and every connection (hung ones included), then end the thread."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(_SERVER_TIMEOUT_S)
        except Exception as exc:  # still stop the loop and thread below
            self.server_errors.append(exc)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(_SERVER_TIMEOUT_S)
        if not thread.is_alive():
            loop.close()
        self._loop = self._thread = self._server = None

    def wait_for_requests(self, count: int, timeout: float = 5.0) -> bool:
        """Block until `count` requests were received (False on timeout): to act while a fault is in progress.

        From async code run it off the loop, `await asyncio.to_thread(vendor.wait_for_requests, n)`, so the
        SDK calls being waited for can proceed.
        """
        with self._recorded:
            return self._recorded.wait_for(lambda: len(self.requests) >= count, timeout)

    def __enter__(self) -> FakeVendor:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    async def _listen(self) -> asyncio.Server:
        return await asyncio.start_server(self._serve_connection, "127.0.0.1", 0, backlog=1024, limit=_MAX_HEADER_BYTES)

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        tasks = list(self._connections)
        for task, writer in list(self._connections.items()):
            writer.transport.abort()
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=_SERVER_TIMEOUT_S)

    # HTTP/1.1: keep-alive connections, one request at a time, no pipelining (the SDKs never pipeline).

    async def _serve_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections[task] = writer
        try:
            client_port = writer.get_extra_info("peername")[1]
            while (request := await self._read_request(reader, client_port)) is not None:
                if not await self._respond(request, reader, writer):
                    break
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass  # the client went away or spoke garbage: nothing to answer
        except asyncio.CancelledError:
            pass  # stop()
        except Exception as exc:
            self.server_errors.append(exc)
        finally:
            del self._connections[task]
            writer.transport.abort()

    async def _read_request(self, reader: asyncio.StreamReader, client_port: int) -> _Request | None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return None  # clean close between requests
        request_line, *header_lines = head[:-4].decode("latin-1").split("\r\n")
        method, target, _version = request_line.split(" ", 2)
        headers: dict[str, str] = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            key = name.strip().lower()
            headers[key] = f"{headers[key]}, {value.strip()}" if key in headers else value.strip()
        if "chunked" in headers.get("transfer-encoding", "").lower():
            body = await self._read_chunked(reader)
        else:
            body = await reader.readexactly(int(headers.get("content-length", "0")))
        return _Request(method=method, target=target, headers=headers, body=body, client_port=client_port)

    @staticmethod
    async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
        parts = []
        while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)
        while await reader.readuntil(b"\r\n") != b"\r\n":
            pass  # trailers
        return b"".join(parts)

    async def _respond(self, request: _Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Answer one request; False when the connection must close afterwards."""
        protocol = self._protocol
        try:
            body_json = json.loads(request.body) if request.body else None
        except ValueError:
            body_json = None
        model = protocol.route(request.method, request.target)
        spec = "" if model is None else (self.faults.pop(0) if self.faults else self.default_fault)
        sent_at: list[float] = []
        with self._recorded:
            self.requests.append(
                RecordedRequest(
                    method=request.method,
                    path=request.target,
                    headers=request.headers,
                    json=body_json,
                    received_at=time.monotonic(),
                    body=request.body,
                    fault=spec,
                    client_port=request.client_port,
                )
            )
            self.chunk_sent_at.append(sent_at)
            self._recorded.notify_all()
        keep_alive = request.headers.get("connection", "").lower() != "close"
        if model is None:
            await self._send_json(
                writer, 404, protocol.error_body(404, f"No route for {request.method} {request.target}")
            )
            return keep_alive
        try:
            fault = parse_fault(spec)
        except ValueError as exc:
            self.server_errors.append(exc)
            await self._send_json(writer, 500, protocol.error_body(500, f"fake vendor: {exc}"))
            return keep_alive
        self.in_flight += 1  # one event loop thread: no lock needed
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return await self._answer(request, reader, writer, fault, model, body_json, sent_at, keep_alive)
        finally:
            self.in_flight -= 1

    async def _answer(
        self,
        request: _Request,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        fault: Fault,
        model: str,
        body_json: Any,
        sent_at: list[float],
        keep_alive: bool,
    ) -> bool:
        """Answer a routed request as `fault` says; False when the connection must close afterwards."""
        protocol = self._protocol
        if fault.kind == "hang":
            while await reader.read(65536):
                pass  # until the client gives up (its timeout) or stop() cancels us
            return False
        if fault.kind == "status":
            await self._send_json(
                writer, fault.status, protocol.error_body(fault.status), retry_after=fault.retry_after
            )
            return keep_alive
        problem = protocol.bad_request(request.target, body_json)
        if problem is not None:
            await self._send_json(writer, 400, protocol.error_body(400, problem))
            return keep_alive
        tokens = self.token_queue.pop(0) if self.token_queue else self.tokens
        output = self.usage[1] or len(tokens)
        usage = (self.usage[0], output, self.usage[2])
        exchange = protocol.exchange(model, body_json, tokens, usage)
        return await self._stream(writer, exchange, fault, sent_at) and keep_alive

    def _base_headers(self) -> list[tuple[str, str]]:
        headers = [("Date", time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime())), ("Server", "fake-vendor")]
        if self._protocol.request_id_header:
            headers.append((self._protocol.request_id_header, f"req_{uuid.uuid4().hex[:24]}"))
        return headers

    @staticmethod
    def _status_line(status: int) -> str:
        try:
            reason = http.HTTPStatus(status).phrase
        except ValueError:
            reason = "Unknown"
        return f"HTTP/1.1 {status} {reason}\r\n"

    async def _send_json(
        self, writer: asyncio.StreamWriter, status: int, body: dict[str, Any], *, retry_after: str | None = None
    ) -> None:
        payload = json.dumps(body).encode()
        headers = [
            *self._base_headers(),
            ("Content-Type", "application/json; charset=utf-8"),
            ("Content-Length", str(len(payload))),
        ]
        if retry_after is not None:
            headers.append(("Retry-After", retry_after))
            if self._protocol.retry_after_ms:
                headers.append(("retry-after-ms", str(round(float(retry_after) * 1000))))
        head = self._status_line(status) + "".join(f"{name}: {value}\r\n" for name, value in headers) + "\r\n"
        writer.write(head.encode("latin-1") + payload)
        await writer.drain()

    async def _stream(self, writer: asyncio.StreamWriter, ex: _Exchange, fault: Fault, sent_at: list[float]) -> bool:
        """Write a 200 SSE response shaped by `fault`; False when the connection was deliberately cut."""
        headers = [
            *self._base_headers(),
            ("Content-Type", "text/event-stream; charset=utf-8"),
            ("Cache-Control", "no-cache"),
            ("Transfer-Encoding", "chunked"),
        ]
        head = self._status_line(200) + "".join(f"{name}: {value}\r\n" for name, value in headers) + "\r\n"
        writer.write(head.encode("latin-1"))
        await writer.drain()

        async def send(event: bytes) -> float:
            # The time is taken just before the write (which hands the bytes to the kernel at once unless the
            # socket is backed up): a client reading it can never appear to receive a chunk before it was sent.
            written_at = time.monotonic()
            writer.write(b"%x\r\n%s\r\n" % (len(event), event))
            await writer.drain()
            return written_at

        for event in self._protocol.preamble(ex):
            await send(event)
        if fault.kind == "slow_first":
            await asyncio.sleep(fault.seconds)
        if fault.kind == "refusal":
            for event in self._protocol.refusal(ex):
                await send(event)
            writer.write(b"0\r\n\r\n")
            await writer.drain()
            return True
        stop_after = fault.count if fault.kind in {"cut", "malformed", "error_event"} else None
        for index, text in enumerate(ex.tokens):
            if index == stop_after:
                break
            if fault.kind == "stall" and index == fault.count:
                await asyncio.sleep(fault.seconds)
            elif index and self.token_interval_s:
                await asyncio.sleep(self.token_interval_s)
            sent_at.append(await send(self._protocol.token(ex, text, last=index == len(ex.tokens) - 1)))
        if fault.kind == "cut":
            # Close with the body unfinished (no zero-length chunk): FIN once what was written is flushed.
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
            return False
        if fault.kind == "malformed":
            await send(self._protocol.malformed())
        elif fault.kind == "error_event":
            await send(self._protocol.error_event())
        else:
            for event in self._protocol.epilogue(ex):
                await send(event)
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        return True
