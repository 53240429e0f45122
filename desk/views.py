"""The agent desk page at `/desk/` (its data comes from the `/ws/desk/` socket, docs/desk.md).

Adapters only: who may see the page (`assistant.handoff.selectors.can_use_desk`, the same check
as the socket's), then the page skeleton. Anonymous visitors go to the desk's sign-in page and
come back here after; signed-in users without `assistant.use_desk` get 403.

The desk has its own sign-in page (the admin's look, Django's plain `AuthenticationForm`) and
log-out because the admin's admit staff only (its log-out sends anyone else to the admin index,
signed in), and agents need not be staff.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import sync_to_async
from django.contrib.auth.views import LoginView, LogoutView, redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse

from assistant.handoff.selectors import can_use_desk

View = Callable[..., Awaitable[HttpResponse]]

_can_use_desk = sync_to_async(can_use_desk)


def agent_page(view: View) -> View:
    """A desk page: anonymous → the desk's sign-in, back here after; no `use_desk` → 403."""

    @functools.wraps(view)
    async def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        user = await request.auser()
        if not user.is_authenticated:
            return redirect_to_login(request.get_full_path(), login_url="desk:login")
        if not await _can_use_desk(user):
            raise PermissionDenied("Agents only (the assistant.use_desk permission).")
        return await view(request, *args, **kwargs)

    return wrapper


@agent_page
async def desk(request: HttpRequest) -> HttpResponse:
    """The desk: the queue, one conversation with its composer, notes and actions."""
    return TemplateResponse(request, "desk/desk.html", {"title": "Agent desk"})


class DeskLoginView(LoginView):
    """Sign in to the desk (any active user; the desk itself then checks `use_desk`)."""

    template_name = "desk/login.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        """The admin login template's context: its titles and the form's own address."""
        context = super().get_context_data(**kwargs)
        context.update(
            title="Sign in to the agent desk",
            site_title="Parley",
            site_header="Parley agent desk",
            app_path=self.request.get_full_path(),
            username=self.request.user.get_username(),
        )
        return context

    def get_default_redirect_url(self) -> str:
        """Without `next`, the desk."""
        return reverse("desk:index")


login = DeskLoginView.as_view()

#: Sign out (POST), then the desk's sign-in page.
logout = LogoutView.as_view(next_page="desk:login")
