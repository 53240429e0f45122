"""Staff-only access for the analytics pages, API, exports and the live websocket.

Anonymous visitors are sent to the admin login (pages, and exports, which browsers download) or
get 401 (the JSON API, which scripts call); signed-in users who are not staff get 403 everywhere. The websocket closes
with 4401 and 4403 for the same two cases.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, JsonResponse

View = Callable[..., Awaitable[HttpResponse]]

CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403


async def _user(request: HttpRequest) -> Any:
    return await request.auser()


def staff_page(view: View) -> View:
    """A page: anonymous → the admin login, back here after; not staff → 403."""

    @functools.wraps(view)
    async def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        user = await _user(request)
        if not user.is_authenticated:
            return redirect_to_login(request.get_full_path(), login_url="admin:login")
        if not (user.is_active and user.is_staff):
            raise PermissionDenied("Staff only.")
        return await view(request, *args, **kwargs)

    return wrapper


def staff_api(view: View) -> View:
    """An API or export endpoint: anonymous → 401 JSON, not staff → 403 JSON."""

    @functools.wraps(view)
    async def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        user = await _user(request)
        if not user.is_authenticated:
            response = JsonResponse({"error": "Sign in as a staff user first (/admin/login/)."}, status=401)
            response["WWW-Authenticate"] = 'Session realm="Parley admin"'
            return response
        if not (user.is_active and user.is_staff):
            return JsonResponse({"error": "Staff only."}, status=403)
        return await view(request, *args, **kwargs)

    return wrapper


def is_staff(user: Any) -> bool:
    """Whether a (websocket scope's) user may watch analytics."""
    return bool(user is not None and user.is_authenticated and user.is_active and user.is_staff)
