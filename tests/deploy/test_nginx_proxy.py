"""The shipped deploy/nginx.conf, run by a real nginx in front of a real Parley process.

The config is generated from the shipped file by substituting only addresses and file paths
(upstream, listen port, pid/log/temp paths; the `user` line and Docker's resolver go), so a
regression in the shipped file, such as appending to the client's X-Forwarded-For again, fails
here. Issue 13 item 3: spoofed X-Forwarded-For headers let one IP open 60 connections (limit 20)
and send 300 messages in 2 s (limit 60 a minute).
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from tests.support.live import ROOT, daphne, free_port, stop, wait_healthy

NGINX = Path("/usr/sbin/nginx")
SHIPPED = ROOT / "deploy" / "nginx.conf"

pytestmark = [
    pytest.mark.live,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not NGINX.exists(), reason="nginx is missing: `make test` installs Debian's nginx"),
]

SPOOFED = [
    "198.51.100.1",
    "203.0.113.7, 198.51.100.2",
    "10.0.0.1",
    "2001:db8::1",
    "not-an-address",
    "127.0.0.1, 192.0.2.55",
]


def adapted_config(shipped: str, *, upstream: str, listen: str, directory: Path) -> str:
    """The shipped config with only addresses and paths replaced; every pattern must match once."""
    temp_paths = "".join(
        f"    {kind}_temp_path {directory / kind};\n" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    substitutions = [
        (r"^user \S+;\n", ""),  # needs root; the test's nginx runs as the current user
        (r"^pid \S+;", f"pid {directory / 'nginx.pid'};"),
        (r"^error_log \S+ (\w+);", rf"error_log {directory / 'error.log'} \1;"),
        (r"^(\s*)access_log /\S+;", rf"\1access_log {directory / 'access.log'};"),
        (r"^\s*resolver 127\.0\.0\.11\b[^;]*;\n", ""),  # Docker's DNS; the upstream below is an address
        (r"^\s*resolver_timeout [^;]*;\n", ""),
        (r"^http \{\n", "http {\n" + temp_paths),
        (r"^(\s*)listen 80;", rf"\1listen {listen};"),
        (r"^(\s*)set \$parley_web web:8000;", rf"\1set $parley_web {upstream};"),
    ]
    text = shipped
    for pattern, replacement in substitutions:
        text, count = re.subn(pattern, replacement, text, flags=re.MULTILINE)
        assert count == 1, f"deploy/nginx.conf no longer matches {pattern!r} exactly once ({count})"
    return text


@contextmanager
def nginx_in_front_of(ws_base: str, directory: Path) -> Iterator[str]:
    """Run nginx (foreground, own prefix) with the adapted shipped config; yields its ws:// base URL."""
    upstream = ws_base.removeprefix("ws://")
    port = free_port()
    config = directory / "nginx.conf"
    config.write_text(
        adapted_config(
            SHIPPED.read_text(encoding="utf-8"), upstream=upstream, listen=f"127.0.0.1:{port}", directory=directory
        ),
        encoding="utf-8",
    )
    command = [str(NGINX), "-p", str(directory), "-c", str(config), "-e", str(directory / "error.log")]
    checked = subprocess.run([*command, "-t"], capture_output=True, text=True, timeout=30, check=False)
    assert checked.returncode == 0, checked.stderr
    process = subprocess.Popen([*command, "-g", "daemon off;"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_healthy(port, process, name="nginx (proxying Parley)", within=15)
        yield f"ws://127.0.0.1:{port}"
    finally:
        stop(process)


@pytest.fixture
def tmp_nginx_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "nginx"
    directory.mkdir()
    return directory


async def recv(ws: Any, frame_type: str, timeout: float = 10) -> dict[str, Any]:
    """Read frames until one of `frame_type` (or an error frame)."""
    while True:
        frame = json.loads(await asyncio.wait_for(ws.recv(), timeout))
        if frame["type"] in {frame_type, "error"}:
            return frame


async def close_code_of(ws: Any, timeout: float = 5) -> int | None:
    """The close code the server sends, or None if the socket stays open for `timeout`."""
    try:
        await asyncio.wait_for(ws.recv(), timeout)
    except ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd is not None else None
    except TimeoutError:
        return None
    return None


def wait_for_a_fresh_minute_window() -> None:
    """The per-IP message limit counts calendar minutes: do not start in a minute's last seconds."""
    remainder = 60 - time.time() % 60
    if remainder < 15:
        time.sleep(remainder + 0.5)


async def test_spoofed_x_forwarded_for_through_nginx_counts_every_connection_against_the_real_ip(
    tmp_nginx_dir: Path,
) -> None:
    env = {"TRUST_PROXY_HEADERS": "1", "MAX_CONNECTIONS_PER_IP": "3", "LOCAL_TOKEN_DELAY_MS": "0"}
    with daphne(env) as parley, nginx_in_front_of(parley, tmp_nginx_dir) as proxy:
        opened = []
        try:
            for spoofed in SPOOFED[:3]:
                ws = await websockets.connect(f"{proxy}/ws/chat/", additional_headers={"X-Forwarded-For": spoofed})
                opened.append(ws)
                await ws.send(json.dumps({"type": "hello"}))
                assert (await recv(ws, "welcome"))["type"] == "welcome"
            for spoofed in SPOOFED[3:]:
                ws = await websockets.connect(f"{proxy}/ws/chat/", additional_headers={"X-Forwarded-For": spoofed})
                opened.append(ws)
                assert await close_code_of(ws) == 4429, f"a 4th connection spoofing {spoofed!r} was accepted"
        finally:
            for ws in opened:
                await ws.close()


async def test_spoofed_x_forwarded_for_through_nginx_does_not_escape_the_per_ip_message_limit(
    tmp_nginx_dir: Path,
) -> None:
    limit = 3
    env = {
        "TRUST_PROXY_HEADERS": "1",
        "CHAT_IP_RATE_LIMIT_PER_MINUTE": str(limit),
        "MAX_CONNECTIONS_PER_IP": "50",
        "LOCAL_TOKEN_DELAY_MS": "0",
    }
    with daphne(env) as parley, nginx_in_front_of(parley, tmp_nginx_dir) as proxy:
        wait_for_a_fresh_minute_window()
        outcomes = []
        for index, spoofed in enumerate(SPOOFED):
            async with websockets.connect(f"{proxy}/ws/chat/", additional_headers={"X-Forwarded-For": spoofed}) as ws:
                await ws.send(json.dumps({"type": "hello"}))
                assert (await recv(ws, "welcome"))["type"] == "welcome"
                await ws.send(
                    json.dumps({"type": "message", "text": "How do I scale Parley?", "client_id": f"m{index}"})
                )
                frame = await recv(ws, "ack")
                outcomes.append(frame.get("code", frame["type"]))
        assert outcomes == ["ack"] * limit + ["rate_limited"] * (len(SPOOFED) - limit)


def test_the_adapted_shipped_config_proxies_http_to_parley(tmp_nginx_dir: Path) -> None:
    """The generated config is a working proxy: nginx answers its own health check and proxies /healthz."""
    with daphne({"TRUST_PROXY_HEADERS": "1"}) as parley, nginx_in_front_of(parley, tmp_nginx_dir) as proxy:
        base = proxy.replace("ws://", "http://")
        with urllib.request.urlopen(f"{base}/nginx-health", timeout=5) as response:
            assert response.read() == b"ok\n"
        request = urllib.request.Request(f"{base}/healthz", headers={"X-Forwarded-For": "198.51.100.9"})
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.status == 200
