"""Who may connect: browser origins, client addresses and signed visitor identities."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings

from assistant.services import Identity


def header(scope: dict[str, Any], name: bytes) -> str | None:
    """One request header from an ASGI scope, decoded as latin-1 (the HTTP default)."""
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin-1")
    return None


def client_ip(scope: dict[str, Any]) -> str:
    """The visitor's address (daphne's --proxy-headers puts X-Forwarded-For here)."""
    client = scope.get("client")
    return client[0] if client else "unknown"


def _normalise_origin(origin: str) -> str | None:
    parts = urlsplit(origin.strip().lower())
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        return None
    default_port = {"http": 80, "https": 443}[parts.scheme]
    try:
        port = parts.port or default_port
    except ValueError:
        return None
    return f"{parts.scheme}://{parts.hostname}" + ("" if port == default_port else f":{port}")


def origin_allowed(scope: dict[str, Any]) -> bool:
    """Browsers must come from the server's own origin or one in WIDGET_ALLOWED_ORIGINS.

    Non-browser clients send no Origin header; they are allowed (rate limits still apply).
    """
    origin = header(scope, b"origin")
    if origin is None:
        return True
    allowed = settings.WIDGET_ALLOWED_ORIGINS
    if "*" in allowed:
        return True
    normalised = _normalise_origin(origin)
    if normalised is None:
        return False
    host = (header(scope, b"host") or "").lower()
    if host and urlsplit(normalised).netloc == host:
        return True
    if host and _normalise_origin(f"{urlsplit(normalised).scheme}://{host}") == normalised:
        return True
    return normalised in {_normalise_origin(item) for item in allowed}


def identity_signature(user_id: str, secret: str) -> str:
    """What the host site's backend computes: hex HMAC-SHA256(secret, user_id)."""
    return hmac.new(secret.encode(), user_id.encode(), hashlib.sha256).hexdigest()


def verify_identity(identity: dict[str, Any] | None) -> Identity | None:
    """A signed identity from `hello`, or None when absent, unsigned or forged."""
    secret = settings.WIDGET_IDENTITY_SECRET
    if not identity or not secret:
        return None
    signature = identity.get("signature") or ""
    expected = identity_signature(identity["user_id"], secret)
    if not hmac.compare_digest(expected, signature.lower()):
        return None
    return Identity(
        user_id=identity["user_id"],
        user_type=identity.get("user_type") or "client",
        name=identity.get("name") or "",
        email=identity.get("email") or "",
    )
