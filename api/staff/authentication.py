"""How the staff side knows who asks: an API key as a bearer token, or a staff member's session.

`ApiKeyAuthentication` claims only bearer tokens that start with `pk_` (`api.keys.looks_like_key`);
any other bearer token (a visitor's conversation token) is left alone, so on a staff endpoint it
is simply no credential: 401 `unauthorized`. A key that is unknown, expired or revoked is a 401
whose detail says which. `SessionAuthentication` (DRF's: a Django session cookie, CSRF checked on
unsafe methods) comes second; `api.permissions.StaffScope` then requires a staff user or the scope.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework.authentication import BaseAuthentication, SessionAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.request import Request

from api import keys

#: The 401 detail for each refusal: the word (unknown, expired, revoked) is the reason.
REFUSALS: dict[keys.Refusal, str] = {
    "unknown": "API key unknown: check that the whole key was copied (pk_<prefix>_<secret>).",
    "expired": "API key expired: make a new one (admin, or manage.py api_key create).",
    "revoked": "API key revoked: make a new one (admin, or manage.py api_key create).",
}
#: Longer headers are not keys (a key is 55 characters); refused before any work.
HEADER_MAX = 200


class ApiKeyAuthentication(BaseAuthentication):
    """`Authorization: Bearer pk_…`: the key's principal (`request.user`, and `request.auth`)."""

    def authenticate(self, request: Request) -> tuple[keys.Principal, keys.Principal] | None:
        """The key's principal; None when the request carries no API key; 401 for a bad one."""
        header = get_authorization_header(request)
        if not header:
            return None
        scheme, _, token = header.partition(b" ")
        if scheme.lower() != b"bearer":
            return None
        token = token.strip()
        if not token.startswith(keys.KEY_START.encode()):
            return None  # someone else's token (a visitor's): not ours to judge
        if len(header) > HEADER_MAX:
            raise AuthenticationFailed(REFUSALS["unknown"])
        try:
            principal = keys.key_check(token.decode("ascii"))
        except UnicodeDecodeError:
            raise AuthenticationFailed(REFUSALS["unknown"]) from None
        except keys.KeyRefused as refused:
            raise AuthenticationFailed(REFUSALS[refused.reason]) from None
        keys.key_touch(principal)
        return principal, principal

    def authenticate_header(self, request: Request) -> str:
        """A 401 names the scheme."""
        return 'Bearer realm="api"'


#: Both, key first: a request with a key is judged by its key even with a session cookie too.
STAFF_AUTHENTICATION = [ApiKeyAuthentication, SessionAuthentication]


class ApiKeyScheme(OpenApiAuthenticationExtension):
    """The schema's description of API keys."""

    target_class = "api.staff.authentication.ApiKeyAuthentication"
    name = "staffApiKey"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        """HTTP bearer, format `pk_<prefix>_<secret>`."""
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "pk_<prefix>_<secret>",
            "description": "An API key (admin → API keys, or `manage.py api_key create`), with the scope the "
            "operation needs: `read`, `export` or `import`.",
        }
