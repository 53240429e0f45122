"""Who may connect: browser origins, client addresses and signed visitor identities."""

from __future__ import annotations

import hashlib
import hmac
import re
import time
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


# The signed form of an identity (docs/widget.md): a version line, then every stored field and the
# issue time in this fixed order, joined by "\n". No field may hold a newline, so the text is
# unambiguous without any escaping, and any language builds it with a plain string join.
IDENTITY_SIGNATURE_VERSION = "parley-identity-v1"
SIGNED_IDENTITY_FIELDS = ("user_id", "user_type", "name", "email", "issued_at")
# How far ahead of this server's clock a host site's issued_at may be (clock skew).
IDENTITY_CLOCK_SKEW_S = 300
_HEX_SHA256 = re.compile(r"[0-9a-fA-F]{64}")


def identity_payload(*, user_id: str, user_type: str, name: str, email: str, issued_at: int) -> str:
    """The exact text a host site signs: version, user_id, user_type, name, email, issued_at."""
    return "\n".join((IDENTITY_SIGNATURE_VERSION, user_id, user_type, name, email, str(issued_at)))


def identity_signature(
    secret: str, *, user_id: str, user_type: str = "client", name: str = "", email: str = "", issued_at: int
) -> str:
    """What the host site's backend computes: hex HMAC-SHA256(secret, identity_payload(...)), UTF-8."""
    payload = identity_payload(user_id=user_id, user_type=user_type, name=name, email=email, issued_at=issued_at)
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


def verify_identity(identity: dict[str, Any] | None, *, now: float | None = None) -> Identity | None:
    """A signed, fresh identity from `hello`, or None when absent, unsigned, forged, stale or malformed.

    The signature covers every field that is stored plus `issued_at`, so none can be changed by
    the page; an identity with any field outside that set is refused rather than partly trusted.
    """
    secret = settings.WIDGET_IDENTITY_SECRET
    if not identity or not secret:
        return None
    if set(identity) - {*SIGNED_IDENTITY_FIELDS, "signature"}:
        return None
    signature = identity.get("signature")
    issued_at = identity.get("issued_at")
    if not isinstance(signature, str) or not _HEX_SHA256.fullmatch(signature):
        return None  # also keeps non-ASCII text away from compare_digest (it raises TypeError)
    if not isinstance(issued_at, int) or isinstance(issued_at, bool):
        return None
    now = time.time() if now is None else now
    if not now - settings.WIDGET_IDENTITY_MAX_AGE_S <= issued_at <= now + IDENTITY_CLOCK_SKEW_S:
        return None
    fields = {
        "user_id": identity.get("user_id"),
        "user_type": identity.get("user_type") or "client",
        "name": identity.get("name") or "",
        "email": identity.get("email") or "",
    }
    if not all(isinstance(value, str) and "\n" not in value for value in fields.values()) or not fields["user_id"]:
        return None
    try:
        expected = identity_signature(secret, **fields, issued_at=issued_at)
    except UnicodeEncodeError:  # a lone surrogate cannot have been signed
        return None
    if not hmac.compare_digest(expected, signature.lower()):
        return None
    return Identity(**fields)
