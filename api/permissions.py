"""Who may use a staff endpoint: a staff member's session, or an API key holding the endpoint's scope.

A view names its scope in `required_scope` (`read`, `export` or `import`; `desk` is reserved for the agent
desk API). An active staff user's session may use every staff endpoint. Errors are precise: no
credentials is 401, a signed-in user who is not staff 403, a key without the scope 403 naming it.
"""

from __future__ import annotations

from typing import Any

from rest_framework.exceptions import NotAuthenticated
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from api import errors
from api.errors import ApiError
from api.keys import SCOPES, Principal


class StaffScope(BasePermission):
    """A staff session, or an API key with the view's `required_scope`."""

    def has_permission(self, request: Request, view: Any) -> bool:
        """True, or the precise 401/403."""
        scope: str = view.required_scope
        if scope not in SCOPES:  # a view naming a scope that does not exist: a bug, not a client's fault
            raise ValueError(f"{type(view).__name__}.required_scope {scope!r} is not one of {SCOPES}")
        user = request.user
        if user is None or not user.is_authenticated:
            raise NotAuthenticated("Give an API key (Authorization: Bearer pk_…) or sign in as staff.")
        if isinstance(user, Principal):
            if scope not in user.scopes:
                raise ApiError(
                    errors.FORBIDDEN,
                    f"This API key lacks the '{scope}' scope this needs (it has: {', '.join(sorted(user.scopes))}).",
                    status_code=403,
                )
            return True
        if user.is_active and user.is_staff:
            return True
        raise ApiError(errors.FORBIDDEN, "Staff only: sign in as a staff user, or use an API key.", status_code=403)
