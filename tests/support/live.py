"""Real daphne server processes for tests that cross process boundaries."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def backend_env() -> dict[str, str]:
    """Environment that points a child server at this test run's database and Redis."""
    database = settings.DATABASES["default"]
    # No shutdown grace unless a test asks for one: `stop` ends a server the way it always did,
    # its replies still running stored as `interrupted` at once.
    env = {"PARLEY_DOTENV": "0", "PARLEY_ENV": "test", "DEBUG": "0", "LOG_LEVEL": "warning", "SHUTDOWN_GRACE_S": "0"}
    if database["ENGINE"].endswith("postgresql"):
        user = database.get("USER") or ""
        auth = f"{user}@" if user else ""
        env["DATABASE_URL"] = f"postgres://{auth}{database['HOST']}:{database['PORT'] or 5432}/{database['NAME']}"
    else:
        env["SQLITE_PATH"] = str(database["NAME"])
    if settings.REDIS_URL:
        env["REDIS_URL"] = settings.REDIS_URL
    return env


@contextmanager
def daphne(extra_env: dict[str, str] | None = None, *, log: Path | None = None) -> Iterator[str]:
    """Run `manage.py serve` on a free port; yields its ws:// base URL."""
    with daphne_process(extra_env, log=log) as (url, _):
        yield url


@contextmanager
def daphne_process(
    extra_env: dict[str, str] | None = None, *, log: Path | None = None, port: int | None = None
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """Like `daphne`, also yielding the server process (for tests that kill it); `port` to restart one."""
    port = port or free_port()
    env = {key: value for key, value in os.environ.items() if key not in {"DATABASE_URL", "REDIS_URL", "SQLITE_PATH"}}
    env.update(backend_env())
    env.update(extra_env or {})
    log_file = open(log or os.devnull, "a")  # noqa: SIM115 - closed below; a restart appends
    process = subprocess.Popen(
        [sys.executable, "manage.py", "serve", "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=log_file,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_healthy(port, process, name="daphne", within=30)
        yield f"ws://127.0.0.1:{port}", process
    finally:
        stop(process)
        log_file.close()


def wait_healthy(port: int, process: subprocess.Popen[bytes], *, name: str, within: float) -> None:
    """Poll http://127.0.0.1:`port`/healthz until it answers 200; raise if `process` exits or time runs out."""
    deadline = time.monotonic() + within
    while True:
        if process.poll() is not None:
            detail = process.stderr.read().decode(errors="replace") if process.stderr else ""
            raise RuntimeError(f"{name} exited with {process.returncode} {detail}".rstrip())
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{name} did not answer /healthz within {within:.0f} s")
        time.sleep(0.1)


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL after 10 s."""
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
