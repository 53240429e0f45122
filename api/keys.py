"""API keys: their format, making and revoking them (services), and checking one (selectors).

A key reads `pk_<prefix>_<secret>`: `pk_` so that people and secret scanners recognise it, an
8-character prefix (lowercase letters and digits) that is shown in the admin and finds the key,
and a 43-character secret (letters and digits, about 256 bits). Only the SHA-256 of the secret
is stored, compared in constant time; the whole key is shown once, when it is made.

`last_used_at` is written at most once a minute per key (`TOUCH_EVERY`), so a busy script does
not turn every read into a write.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import string
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from api.models import ApiKey

KEY_START = "pk_"
PREFIX_LENGTH = 8
SECRET_LENGTH = 43
_PREFIX_ALPHABET = string.ascii_lowercase + string.digits
_SECRET_ALPHABET = string.ascii_letters + string.digits
#: A whole key, as secret scanners may match it.
KEY_PATTERN = re.compile(rf"pk_([a-z0-9]{{{PREFIX_LENGTH}}})_([A-Za-z0-9]{{{SECRET_LENGTH}}})")
#: Every scope a key may hold: `read` (insights, metrics, sessions, usage), `export` (exports),
#: `desk` (reserved for the agent desk API: no endpoint uses it yet).
SCOPES: tuple[str, ...] = tuple(ApiKey.Scope.values)
TOUCH_EVERY = timedelta(minutes=1)
NAME_MAX = ApiKey._meta.get_field("name").max_length or 100

Refusal = Literal["unknown", "expired", "revoked"]


class KeyProblem(ValueError):
    """A key that cannot be made or revoked as asked (a message for the admin or the command)."""


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request with a valid key acts as: the key (DRF's `request.user`), with its scopes."""

    key_id: int
    name: str
    prefix: str
    scopes: frozenset[str]
    last_used_at: datetime | None

    #: DRF and Django ask these of any user.
    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False

    @property
    def pk(self) -> str:
        """An identifier for logs and rate limits (never the secret)."""
        return f"key:{self.prefix}"

    def __str__(self) -> str:
        return f"API key {self.name!r} (pk_{self.prefix}_…)"


class KeyRefused(Exception):
    """The presented key is `unknown`, `expired` or `revoked`."""

    def __init__(self, reason: Refusal) -> None:
        super().__init__(reason)
        self.reason = reason


def hash_secret(secret: str) -> str:
    """The stored form of a secret: SHA-256, hex."""
    return hashlib.sha256(secret.encode()).hexdigest()


def _random(alphabet: str, length: int) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(length))


def format_key(prefix: str, secret: str) -> str:
    """The key as handed out."""
    return f"{KEY_START}{prefix}_{secret}"


def looks_like_key(token: str) -> bool:
    """Whether a bearer token is meant as an API key (so that other tokens are left to others)."""
    return token.startswith(KEY_START)


def parse_scopes(values: Iterable[str]) -> list[str]:
    """Scopes in registry order, each once; an unknown one or none at all is an error."""
    wanted = {value.strip() for value in values if value.strip()}
    unknown = sorted(wanted - set(SCOPES))
    if unknown:
        raise KeyProblem(f"Unknown scope(s) {', '.join(unknown)}; choose from {', '.join(SCOPES)}.")
    if not wanted:
        raise KeyProblem(f"Give a key at least one scope ({', '.join(SCOPES)}).")
    return [scope for scope in SCOPES if scope in wanted]


# --- services ---------------------------------------------------------------------------------
def key_create(
    *, name: str, scopes: Iterable[str], expires_at: datetime | None = None, created_by: Any = None
) -> tuple[ApiKey, str]:
    """Make a key; returns it and the whole key, which is never available again."""
    name = name.strip()
    if not name or len(name) > NAME_MAX:
        raise KeyProblem(f"A key needs a name of 1 to {NAME_MAX} characters.")
    if expires_at is not None and expires_at <= timezone.now():
        raise KeyProblem("The expiry must be in the future.")
    chosen = parse_scopes(scopes)
    secret = _random(_SECRET_ALPHABET, SECRET_LENGTH)
    for _ in range(5):  # 36^8 prefixes: a clash is rare, but the unique index settles it
        prefix = _random(_PREFIX_ALPHABET, PREFIX_LENGTH)
        try:
            with transaction.atomic():
                key = ApiKey.objects.create(
                    name=name,
                    prefix=prefix,
                    secret_hash=hash_secret(secret),
                    scopes=chosen,
                    expires_at=expires_at,
                    created_by=created_by,
                )
        except IntegrityError:
            continue
        return key, format_key(prefix, secret)
    raise KeyProblem("Could not find a free key prefix; try again.")


def key_revoke(*, prefix: str) -> ApiKey:
    """Revoke a key now (requests with it get 401 `revoked` from then on); revoking twice keeps the first time."""
    prefix = prefix.removeprefix(KEY_START).split("_", 1)[0]  # the whole key or `pk_<prefix>` work too
    key = ApiKey.objects.filter(prefix=prefix).first()
    if key is None:
        raise KeyProblem(f"No API key with prefix {prefix[: PREFIX_LENGTH + 4]!r}.")
    if key.revoked_at is None:
        key.revoked_at = timezone.now()
        key.save(update_fields=["revoked_at"])
    return key


def key_touch(principal: Principal, *, now: datetime | None = None) -> None:
    """Record that the key was used: at most one write a minute per key, whatever the traffic."""
    now = now or timezone.now()
    if principal.last_used_at is not None and now - principal.last_used_at < TOUCH_EVERY:
        return
    stale = Q(last_used_at__isnull=True) | Q(last_used_at__lt=now - TOUCH_EVERY)
    ApiKey.objects.filter(stale, pk=principal.key_id).update(last_used_at=now)


# --- selectors --------------------------------------------------------------------------------
def key_check(token: str, *, now: datetime | None = None) -> Principal:
    """The principal of a presented key; `KeyRefused` says why not.

    The reason is told only once the secret matched, so a prefix alone says nothing of a key.
    """
    found = KEY_PATTERN.fullmatch(token)
    if found is None:
        raise KeyRefused("unknown")
    prefix, secret = found.groups()
    key = ApiKey.objects.filter(prefix=prefix).first()
    if key is None or not hmac.compare_digest(key.secret_hash, hash_secret(secret)):
        raise KeyRefused("unknown")
    now = now or timezone.now()
    if key.revoked_at is not None:
        raise KeyRefused("revoked")
    if key.expires_at is not None and key.expires_at <= now:
        raise KeyRefused("expired")
    return Principal(
        key_id=key.pk, name=key.name, prefix=key.prefix, scopes=frozenset(key.scopes), last_used_at=key.last_used_at
    )


def user_named(username: str) -> Any:
    """The user with this username, or None (the command's `--user`)."""
    return get_user_model().objects.filter(username=username).first()


def keys_list() -> list[ApiKey]:
    """Every key, newest first (the command's `list`)."""
    return list(ApiKey.objects.select_related("created_by").order_by("-created_at", "-pk"))


def key_state(key: ApiKey, *, now: datetime | None = None) -> str:
    """`active`, `expired` or `revoked`."""
    now = now or timezone.now()
    if key.revoked_at is not None:
        return "revoked"
    if key.expires_at is not None and key.expires_at <= now:
        return "expired"
    return "active"
