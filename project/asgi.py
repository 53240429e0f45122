"""ASGI entry point: HTTP to Django, websockets to the Channels routes."""

import gc
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
django_asgi_app = get_asgi_application()  # set up Django before importing consumers

from project.backpressure import Backpressure  # noqa: E402

# Streamed responses (the analytics exports) wait for slow clients instead of piling up in memory.
http_app = Backpressure(django_asgi_app)

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from analytics.routing import websocket_urlpatterns as analytics_routes  # noqa: E402
from assistant.routing import websocket_urlpatterns as chat_routes  # noqa: E402
from desk.routing import websocket_urlpatterns as desk_routes  # noqa: E402
from project.origins import staff_routes  # noqa: E402

# Every staff socket is listed here, behind the staff Origin check (project/origins.py).
staff_sockets = staff_routes(analytics_routes + desk_routes)

application = ProtocolTypeRouter(
    {
        "http": http_app,
        # The chat consumer checks Origin itself so it can answer with close code 4403.
        # Only the staff routes read the session cookie (AuthMiddlewareStack is on those routes).
        "websocket": URLRouter(chat_routes + staff_sockets),
    }
)

from project.proxy import ProxyHeaders  # noqa: E402

# Outermost: every HTTP request and websocket sees the client address and scheme a trusted proxy saw.
application = ProxyHeaders(application)

# Everything imported so far (Django, the SDKs of the configured providers) lives as long as the
# process. Freezing it keeps the collector from re-scanning it: full collections of those
# objects paused every stream for 75 to 150 ms at 100 concurrent replies (docs/benchmarks.md).
gc.freeze()
