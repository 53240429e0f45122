"""`python manage.py serve`: run Parley under daphne with the settings' host, port and limits."""

from __future__ import annotations

import logging
from typing import Any

from channels.routing import get_default_application
from daphne.endpoints import build_endpoint_description_strings
from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from assistant import liveness
from project import runtime, server
from project.shutdown import GracefulServer

logger = logging.getLogger(__name__)


class Command(BaseCommand):
    help = "Serve HTTP and websockets with daphne (HOST, PORT, CHAT_MAX_FRAME_BYTES, TRUST_PROXY_HEADERS)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default=None, help="Interface to bind (default: HOST).")
        parser.add_argument("--port", type=int, default=None, help="Port to bind (default: PORT).")
        parser.add_argument(
            "--proxy-headers",
            action="store_true",
            default=None,
            help="Same as TRUST_PROXY_HEADERS=1: believe X-Forwarded-For/-Proto from TRUSTED_PROXIES.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        host = options["host"] or settings.HOST
        port = options["port"] or settings.PORT
        if options["proxy_headers"]:
            # Read by project/proxy.py's middleware; daphne's own proxy headers take the
            # client-written leftmost X-Forwarded-For entry, so they are never turned on.
            settings.TRUST_PROXY_HEADERS = True
        logger.info(
            "Parley listening on http://%s:%s (database: %s, channel layer: %s)",
            host,
            port,
            settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1],
            settings.CHANNEL_LAYERS["default"]["BACKEND"].rsplit(".", 1)[-1],
        )
        liveness.heartbeat.start()  # before the startup hooks: it tells which processes are gone
        runtime.run_startup()  # e.g. analytics recovers what a crashed predecessor left
        server.install()  # frame limits before the queue, bounded output, request-head deadline
        from twisted.internet import reactor  # daphne's asyncio reactor, installed by importing daphne.server

        reactor.callWhenRunning(runtime.run_serving)  # e.g. the webhook dispatcher starts with the loop
        # SIGTERM/SIGINT: stop listening, let replies finish (SHUTDOWN_GRACE_S), close with 1012.
        GracefulServer(
            application=get_default_application(),
            endpoints=build_endpoint_description_strings(host=host, port=port),
            websocket_max_message_size=settings.DAPHNE_WEBSOCKET_MAX_MESSAGE_SIZE,
            websocket_max_frame_size=settings.DAPHNE_WEBSOCKET_MAX_FRAME_SIZE,
            verbosity=1,
            grace_s=settings.SHUTDOWN_GRACE_S,
        ).run()
        liveness.heartbeat.stop()  # a clean shutdown: this process's replies end now, not later
