"""A Content-Security-Policy on the staff pages (the admin, the analytics dashboard, the agent desk).

django-csp builds the header from `CONTENT_SECURITY_POLICY` (project/settings.py): scripts,
styles, images and fonts from this origin only, no inline script or style, no plugins, no
`<base>`, forms posting to this origin, no framing. It applies under the admin's URL prefix
and the desk's (`/desk/`) only: the public pages (the demo page at `/`) and the widget served to other sites are not the
staff's, and the widget injects its own styles into the host page, which such a policy would
block there. (The header is for documents; on `widget.js` itself it would change nothing.)

`connect-src 'self'` covers the dashboard's same-origin websocket in CSP3 browsers (every
current one); older ones (Safari before 15.4) match `'self'` against http(s) only, so the
page's own host is also listed with `ws:` and `wss:`.
"""

from __future__ import annotations

import functools

from csp.middleware import CSPMiddleware, PolicyParts
from django.core.exceptions import DisallowedHost
from django.http import HttpRequest, HttpResponseBase
from django.urls import reverse


@functools.cache
def staff_prefix() -> str:
    """Where the staff pages live: the admin's root (`/admin/`), the analytics pages below it."""
    return reverse("admin:index")


@functools.cache
def staff_prefixes() -> tuple[str, ...]:
    """Every prefix the policy covers: the admin's, the agent desk's (agents need not be staff), the API docs page."""
    return (staff_prefix(), reverse("desk:index"), reverse("api:docs"))


class StaffCSPMiddleware(CSPMiddleware):
    """django-csp's middleware, for responses under the staff prefixes only."""

    def process_response(self, request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
        """Add the policy to staff responses; leave every other response alone."""
        if not request.path_info.startswith(staff_prefixes()):
            return response
        return super().process_response(request, response)

    def get_policy_parts(
        self, request: HttpRequest, response: HttpResponseBase, report_only: bool = False
    ) -> PolicyParts:
        """The configured policy, plus this host's ws:/wss: for pre-CSP3 browsers."""
        parts = super().get_policy_parts(request, response, report_only)
        if report_only:
            return parts
        try:
            host = request.get_host()
        except DisallowedHost:
            return parts
        extra = {"connect-src": [f"wss://{host}", f"ws://{host}"]}
        if parts.update:
            merged = dict(parts.update)
            merged["connect-src"] = [*merged.get("connect-src", []), *extra["connect-src"]]
            extra = merged
        parts.update = extra
        return parts
