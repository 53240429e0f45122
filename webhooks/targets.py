"""Where a webhook may be sent: public http(s) addresses only, checked when configured and at each send.

A webhook URL is typed by a staff user but fetched by the server, from inside the network: a URL
naming `localhost`, `10.0.0.5`, `169.254.169.254` (a cloud's metadata service) or a name that
resolves there would turn the webhooks into a way to reach internal services (SSRF). So every
address the host resolves to must be public (not private, loopback, link-local, reserved,
multicast, unspecified, shared CGNAT space or an IPv6 form of one of those), unless
`WEBHOOK_ALLOW_PRIVATE` is on (development, tests, a receiver on the same private network).

The check runs when an endpoint is saved (`check_url`, also used by alerts for Slack URLs) and
again at each send (`resolve`), whose checked address is the one connected to: a name that
resolved to a public address at save time and to a private one later (DNS rebinding) is refused
then, and cannot switch between the check and the connection.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from django.conf import settings

MAX_URL_CHARS = 2000
SCHEMES = ("http", "https")
#: Characters kept as they are in a path or query; others (e.g. non-ASCII) are percent-encoded.
URL_SAFE = "/%?=&;:@!$'()*+,~-._[]"
#: How long a checked resolution is reused by the sender (addresses are re-checked after it).
RESOLVE_CACHE_S = 30.0

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True, slots=True)
class Target:
    """A URL split for sending: its scheme, host (as written, lower case), port and request path."""

    scheme: str
    host: str
    port: int
    path: str  # path and query, at least "/"

    @property
    def default_port(self) -> bool:
        return self.port == (443 if self.scheme == "https" else 80)


def parse(url: str) -> Target:
    """`url` as a `Target`, or ValueError saying what is wrong with it (no DNS here)."""
    if not isinstance(url, str) or not url:
        raise ValueError("the URL is empty")
    if len(url) > MAX_URL_CHARS:
        raise ValueError(f"the URL is longer than {MAX_URL_CHARS} characters")
    if any(ord(char) < 33 or ord(char) == 127 for char in url):
        raise ValueError("the URL contains spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise ValueError(f"the URL is malformed ({error})") from None
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise ValueError("the URL must start with https:// or http://")
    if parts.username is not None or parts.password is not None:
        raise ValueError("the URL must not contain a user name or password")
    host = (parts.hostname or "").rstrip(".").lower()
    if not host:
        raise ValueError("the URL has no host")
    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii")  # an international name, as DNS and Host want it
        except UnicodeError:
            raise ValueError("the URL's host is not a valid name") from None
    if parts.fragment:
        raise ValueError("the URL must not contain a #fragment")
    path = quote(parts.path or "/", safe=URL_SAFE)
    if parts.query:
        path += "?" + quote(parts.query, safe=URL_SAFE)
    return Target(scheme=scheme, host=host, port=port or (443 if scheme == "https" else 80), path=path)


def refusal(address: IPAddress) -> str | None:
    """Why `address` may not receive webhooks (None: it may)."""
    mapped = getattr(address, "ipv4_mapped", None) or getattr(address, "sixtofour", None)
    if mapped is not None:
        return refusal(mapped)
    teredo = getattr(address, "teredo", None)
    if teredo is not None:
        return refusal(teredo[1])
    for name, reason in (
        ("is_unspecified", "unspecified"),
        ("is_loopback", "loopback"),
        ("is_link_local", "link-local"),
        ("is_multicast", "multicast"),
        ("is_reserved", "reserved"),
        ("is_private", "private"),
        ("is_site_local", "site-local"),
    ):
        if getattr(address, name, False):
            return f"{address} is a {reason} address"
    if not address.is_global:
        return f"{address} is not a public address"
    return None


def check_address(address: str) -> None:
    """Raise ValueError if webhooks may not be sent to IP `address` (nothing when private ones are allowed)."""
    if settings.WEBHOOK_ALLOW_PRIVATE:
        return
    reason = refusal(ipaddress.ip_address(address.split("%", 1)[0]))
    if reason is not None:
        raise ValueError(f"{reason} (private targets are refused; WEBHOOK_ALLOW_PRIVATE=1 allows them)")


def check_url(url: str) -> None:
    """Raise ValueError (with the reason) unless `url` is http(s) and every address its host resolves to is public.

    Resolves the host (blocking, bounded by the system resolver). With WEBHOOK_ALLOW_PRIVATE on,
    only the URL's form is checked. Alerts use this for Slack-compatible URLs too.
    """
    target = parse(url)
    if settings.WEBHOOK_ALLOW_PRIVATE:
        return
    try:
        infos = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    except OSError as error:
        raise ValueError(f"{target.host} does not resolve ({error.strerror or error})") from None
    for address in _addresses(infos, target.host):
        check_address(address)


async def resolve(target: Target) -> str:
    """The address to connect to for `target`, after checking all its host's addresses (the send-time check).

    Resolved on the event loop's resolver and cached RESOLVE_CACHE_S; raises ValueError when a
    resolved address is refused, OSError when the name does not resolve.
    """
    key = (target.host, target.port, settings.WEBHOOK_ALLOW_PRIVATE)
    cached = _resolved.get(key)
    if cached is not None and cached[0] > time.monotonic():
        return cached[1]
    infos = await asyncio.get_running_loop().getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    addresses = _addresses(infos, target.host)
    for address in addresses:
        check_address(address)
    chosen = addresses[0]
    if len(_resolved) > 1000:
        _resolved.clear()
    _resolved[key] = (time.monotonic() + RESOLVE_CACHE_S, chosen)
    return chosen


_resolved: dict[tuple[str, int, bool], tuple[float, str]] = {}


def _addresses(infos: list[tuple[object, ...]], host: str) -> list[str]:
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))  # type: ignore[index]
    if not addresses:
        raise ValueError(f"{host} does not resolve to any address")
    return addresses
