"""Standard Webhooks signatures (https://www.standardwebhooks.com/), with the pinned `standardwebhooks` package.

A receiver verifies `webhook-signature` = `v1,` + base64(HMAC-SHA256(secret, "{id}.{timestamp}.{body}"))
with `standardwebhooks.Webhook(secret).verify(body, headers)`; docs/api.md shows both that and
the raw recipe. The secret is `whsec_` + base64 of 24 random bytes (192 bits), as Svix makes them.
"""

from __future__ import annotations

import base64
import binascii
import functools
import secrets
from datetime import datetime

from standardwebhooks import Webhook

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 24
#: Bounds for a secret pasted in by hand (e.g. one shared with another sender).
MIN_SECRET_BYTES, MAX_SECRET_BYTES = 16, 64


def generate_secret() -> str:
    """A new endpoint secret, `whsec_<base64>`."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def check_secret(secret: str) -> None:
    """Raise ValueError unless `secret` is `whsec_` and base64 of 16 to 64 bytes."""
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError(f"the secret must start with {SECRET_PREFIX}")
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"the secret must be {SECRET_PREFIX} followed by base64") from None
    if not MIN_SECRET_BYTES <= len(key) <= MAX_SECRET_BYTES:
        raise ValueError(f"the secret must encode {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} bytes")


def headers(*, secret: str, msg_id: str, timestamp: datetime, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers for one attempt (the timestamp is the attempt's own)."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(timestamp.timestamp())),
        "webhook-signature": _signer(secret).sign(msg_id=msg_id, timestamp=timestamp, data=body),
    }


@functools.lru_cache(maxsize=256)
def _signer(secret: str) -> Webhook:
    """The signer of `secret` (decoding the key once per secret, not per attempt)."""
    return Webhook(secret)
