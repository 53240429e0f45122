"""The benchmark's ASGI app: Parley's own application plus `/ws/echo/`, in one process.

HTTP goes to the same Django app and websockets to the same routes as
`project.asgi:application` (same settings, middleware and consumers), with one extra websocket
routes in front: `/ws/echo/` (`bench.echo.EchoConsumer`) and `/ws/floor/`
(`bench.floor.FloorConsumer`). Chat, floor and echo therefore
share the process, the event loop and the configuration, so their throughputs compare as a ratio.

Profiling hook (investigation only): with `BENCH_CPROFILE=/path/out.prof` set, the importing
thread (daphne's reactor thread: consumers, channel layer, websocket protocol) is profiled with
cProfile until the process exits normally (SIGTERM); the database worker threads are not.
"""

from __future__ import annotations

import atexit
import cProfile
import os

from channels.routing import ProtocolTypeRouter, URLRouter
from django.urls import path

from bench.echo import EchoConsumer
from bench.floor import FloorConsumer
from project.asgi import application as parley_application  # also sets Django up
from project.asgi import http_app
from project.proxy import ProxyHeaders


def _start_profiler(output: str) -> None:
    """Profile the calling thread from now on and dump the stats to `output` at exit."""
    profiler = cProfile.Profile()
    profiler.enable()

    def dump() -> None:
        profiler.disable()
        profiler.dump_stats(output)

    atexit.register(dump)


if os.environ.get("BENCH_CPROFILE"):
    _start_profiler(os.environ["BENCH_CPROFILE"])

# Parley's router sits inside its outermost middleware (the trusted-proxy headers).
_parley_websocket: URLRouter = parley_application.app.application_mapping["websocket"]

application = ProxyHeaders(
    ProtocolTypeRouter(
        {
            "http": http_app,
            "websocket": URLRouter(
                [
                    path("ws/echo/", EchoConsumer.as_asgi()),
                    path("ws/floor/", FloorConsumer.as_asgi()),
                    *_parley_websocket.routes,
                ]
            ),
        }
    )
)
