"""An HTTP client that speaks ASGI to the real application (`project.asgi.application`).

Django's test clients call the handler below the ASGI layer; this one goes through everything a
request meets under `manage.py serve` (the proxy-header middleware, the router, backpressure,
Django's ASGI handler with its disconnect listener), in the test's event loop, so a websocket
tab opened with Channels' communicator shares the process with it. A response can be read whole
or as a stream of Server-Sent Events, and the client can hang up mid-stream.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from project.asgi import application

TIMEOUT_S = 15.0


@dataclass
class Reply:
    """A response: status, headers (lower-case names), body."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def code(self) -> str | None:
        """The error code of an error body."""
        data = self.json()
        return data.get("code") if isinstance(data, dict) else None


@dataclass
class SseEvent:
    """One Server-Sent Event: its name and its JSON data."""

    name: str
    data: dict[str, Any]


@dataclass
class Exchange:
    """One request in flight: the response head, then body chunks as the application sends them."""

    task: asyncio.Task[None]
    hang_up: asyncio.Event
    messages: asyncio.Queue[dict[str, Any]] = field(default_factory=asyncio.Queue)
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)

    async def head(self) -> None:
        message = await asyncio.wait_for(self.messages.get(), TIMEOUT_S)
        assert message["type"] == "http.response.start", message
        self.status = message["status"]
        self.headers = {key.decode().lower(): value.decode("latin-1") for key, value in message["headers"]}

    async def chunks(self) -> AsyncIterator[bytes]:
        """Body chunks until the application says there is no more."""
        while True:
            message = await asyncio.wait_for(self.messages.get(), TIMEOUT_S)
            assert message["type"] == "http.response.body", message
            if message.get("body"):
                yield message["body"]
            if not message.get("more_body", False):
                return

    async def events(self) -> AsyncIterator[SseEvent | str]:
        """Events (and comment lines, as `str`) until the stream ends."""
        buffer = b""
        async for chunk in self.chunks():
            buffer += chunk
            while b"\n\n" in buffer:
                block, buffer = buffer.split(b"\n\n", 1)
                lines = block.decode().split("\n")
                if all(line.startswith(":") for line in lines):
                    yield "\n".join(lines)
                    continue
                name = next(line[7:] for line in lines if line.startswith("event: "))
                data = "".join(line[6:] for line in lines if line.startswith("data: "))
                yield SseEvent(name, json.loads(data))
        assert buffer == b"", f"the stream ended mid-event: {buffer!r}"

    async def close(self) -> None:
        """Hang up (if still going) and wait for the application to finish."""
        self.hang_up.set()
        await asyncio.wait_for(asyncio.shield(self.task), TIMEOUT_S)


class ApiClient:
    """Requests from one client address; `token` goes as `Authorization: Bearer`."""

    def __init__(self, ip: str = "127.0.0.1", token: str | None = None) -> None:
        self.ip = ip
        self.token = token

    def begin(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        body: bytes | None = None,
        query: dict[str, Any] | list[tuple[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
        token: str | None = None,
    ) -> Exchange:
        """Start a request; its response comes through the returned exchange."""
        if json_body is not None:
            body = json.dumps(json_body).encode()
        all_headers = {"host": "testserver"}
        if body is not None:
            all_headers["content-type"] = "application/json"
            all_headers["content-length"] = str(len(body))
        bearer = token if token is not None else self.token
        if bearer is not None:
            all_headers["authorization"] = f"Bearer {bearer}"
        all_headers.update({key.lower(): value for key, value in (headers or {}).items()})
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": urlencode(query or {}).encode(),
            "root_path": "",
            "headers": [(key.encode(), value.encode("latin-1")) for key, value in all_headers.items()],
            "client": (self.ip, 50000),
            "server": ("testserver", 80),
        }
        hang_up = asyncio.Event()
        sent = False

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body or b"", "more_body": False}
            await hang_up.wait()
            return {"type": "http.disconnect"}

        messages: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

        async def send(message: dict[str, Any]) -> None:
            await messages.put(message)

        task = asyncio.create_task(application(scope, receive, send))
        return Exchange(task=task, hang_up=hang_up, messages=messages)

    async def request(self, method: str, path: str, **kwargs: Any) -> Reply:
        """A whole request and response."""
        exchange = self.begin(method, path, **kwargs)
        await exchange.head()
        body = b"".join([chunk async for chunk in exchange.chunks()])
        await exchange.close()
        return Reply(exchange.status, exchange.headers, body)

    async def get(self, path: str, **kwargs: Any) -> Reply:
        return await self.request("GET", path, **kwargs)

    async def post(self, path: str, json_body: Any = None, **kwargs: Any) -> Reply:
        return await self.request("POST", path, json_body=json_body, **kwargs)
