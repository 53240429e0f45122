"""The one place that reads the process environment.

Every setting Parley understands is read here with a type, a default and a validation rule,
so a bad value fails at startup with the variable's name instead of deep inside a request.
`.env.example` documents each variable; a `.env` file beside `manage.py` is loaded for
convenience (real environment variables always win).
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
from pathlib import Path
from urllib.parse import unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _load_dotenv(path: Path) -> None:
    """Load KEY=VALUE lines from `path` without overriding variables already set."""
    if not path.is_file():
        return
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        key = key.strip().removeprefix("export ").strip()
        if not sep or not key.isidentifier():
            raise ImproperlyConfigured(f"{path}:{number}: expected KEY=VALUE, got {raw!r}")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        os.environ.setdefault(key, value)


if os.environ.get("PARLEY_DOTENV", "1") not in _FALSE:
    _load_dotenv(BASE_DIR / ".env")


def raw(name: str) -> str | None:
    """Return the variable's text, or None when it is unset or blank."""
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return None
    return value.strip()


def string(name: str, default: str) -> str:
    """A free-text variable."""
    value = raw(name)
    return default if value is None else value


def optional_string(name: str) -> str | None:
    """A free-text variable with no default."""
    return raw(name)


def boolean(name: str, default: bool) -> bool:
    """A yes/no variable: 1/0, true/false, yes/no, on/off."""
    value = raw(name)
    if value is None:
        return default
    lowered = value.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (1/0, true/false, yes/no, on/off), got {value!r}")


def integer(name: str, default: int, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """A whole number within optional bounds."""
    value = raw(name)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number, got {value!r}") from None
    _check_bounds(name, number, minimum, maximum)
    return number


def decimal(name: str, default: float, *, minimum: float | None = None, maximum: float | None = None) -> float:
    """A number (seconds, scores) within optional bounds."""
    value = raw(name)
    if value is None:
        return default
    try:
        number = float(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise ImproperlyConfigured(f"{name} must be a finite number, got {value!r}")
    _check_bounds(name, number, minimum, maximum)
    return number


def string_list(name: str, default: list[str], *, separator: str = ",") -> list[str]:
    """A separated list; blank items are dropped."""
    value = raw(name)
    if value is None:
        return list(default)
    return [item.strip() for item in value.split(separator) if item.strip()]


def ip_networks(name: str, default: list[str]) -> list[str]:
    """A comma-separated list of IP addresses or CIDR networks (e.g. 10.0.0.0/8, ::1)."""
    items = string_list(name, default)
    for item in items:
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise ImproperlyConfigured(f"{name} must list IP addresses or CIDR networks, got {item!r}") from None
    return items


def text_patterns(name: str, default: list[str]) -> list[str]:
    """Text patterns, one per line (a literal backslash-n separates them in a one-line value).

    A pattern starting with `re:` is a regular expression (checked here, so a typo stops the
    start-up with its name); any other is a plain case-insensitive substring.
    """
    value = raw(name)
    if value is None:
        return list(default)
    items = [item.strip() for item in value.replace("\\n", "\n").split("\n") if item.strip()]
    for item in items:
        if item.startswith("re:"):
            try:
                re.compile(item[3:])
            except re.error as error:
                raise ImproperlyConfigured(f"{name}: bad regular expression {item[:80]!r}: {error}") from None
    return items


def choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    """One of a fixed set of words."""
    value = string(name, default).lower()
    if value not in choices:
        raise ImproperlyConfigured(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return value


def path(name: str, default: Path) -> Path:
    """A filesystem path; relative paths are taken from the project root."""
    value = raw(name)
    if value is None:
        return default
    candidate = Path(value).expanduser()
    return candidate if candidate.is_absolute() else BASE_DIR / candidate


def database_url(name: str) -> dict[str, object] | None:
    """Parse a postgres:// URL into Django's DATABASES fields, or None when unset."""
    value = raw(name)
    if value is None:
        return None
    parts = urlsplit(value)
    if parts.scheme not in {"postgres", "postgresql", "pgsql"}:
        raise ImproperlyConfigured(f"{name} must be a postgres:// URL, got scheme {parts.scheme!r}")
    database = unquote(parts.path.lstrip("/"))
    if not database:
        raise ImproperlyConfigured(f"{name} must name a database, e.g. postgres://user@host:5432/parley")
    try:
        port = parts.port
    except ValueError:
        raise ImproperlyConfigured(f"{name} has an invalid port") from None
    return {
        "NAME": database,
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": parts.hostname or "",
        "PORT": str(port or ""),
    }


def redis_url(name: str) -> str | None:
    """A redis:// or rediss:// URL, or None when unset."""
    value = raw(name)
    if value is None:
        return None
    if urlsplit(value).scheme not in {"redis", "rediss", "unix"}:
        raise ImproperlyConfigured(f"{name} must be a redis:// URL, got {value!r}")
    return value


def _check_bounds(name: str, number: float, minimum: float | None, maximum: float | None) -> None:
    if minimum is not None and number < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, got {number}")
    if maximum is not None and number > maximum:
        raise ImproperlyConfigured(f"{name} must be at most {maximum}, got {number}")
