"""The client's real address and scheme behind a trusted reverse proxy, for HTTP and websockets.

One ASGI middleware rewrites `scope["client"]` (and `scope["scheme"]`) from `X-Forwarded-For`
and `X-Forwarded-Proto`, so every view and consumer, and so every per-IP limit, sees the address
the trusted proxy saw. The headers are honoured only when TRUST_PROXY_HEADERS is on AND the
direct peer is in TRUSTED_PROXIES; anything a client writes itself is never believed:

- with TRUSTED_PROXY_HOPS = 0 (default), `X-Forwarded-For` is read from the right, skipping
  entries that are themselves trusted proxies; the first one that is not is the client;
- with TRUSTED_PROXY_HOPS = N, the N-th entry from the right is the client (N proxies each
  appended the address they saw).

daphne's own proxy-header handling takes the LEFTMOST entry, which the client controls; it is
not used (docs/security.md, "Client addresses behind a proxy").
"""

from __future__ import annotations

import ipaddress
import logging
import time
from functools import lru_cache
from typing import Any

from django.conf import settings

logger = logging.getLogger(__name__)

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

_SCHEMES = {
    "http": {"http": "http", "https": "https"},
    "websocket": {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"},
}
# A proxy that writes garbage writes it on every request: one WARNING a minute is enough.
_WARNING_INTERVAL_S = 60.0
_last_warning = 0.0
_suppressed = 0


@lru_cache(maxsize=8)
def trusted_networks(entries: tuple[str, ...]) -> tuple[Network, ...]:
    """TRUSTED_PROXIES as networks (settings validated them; a single address is a /32 or /128)."""
    return tuple(ipaddress.ip_network(entry, strict=False) for entry in entries)


def parse_address(text: str) -> Address | None:
    """One X-Forwarded-For entry as an address, or None when it is not one.

    Accepts `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1` and `[2001:db8::1]:443`; IPv4-mapped
    IPv6 addresses become IPv4, so `::ffff:1.2.3.4` and `1.2.3.4` share their limits.
    """
    text = text.strip()
    if text.startswith("["):
        text, bracket, port = text[1:].partition("]")
        if not bracket or (port and not port[1:].isdigit()) or (port and port[0] != ":"):
            return None
    elif text.count(":") == 1:
        text, _, port = text.partition(":")
        if not port.isdigit():
            return None
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def is_trusted(address: Address, networks: tuple[Network, ...]) -> bool:
    """Whether `address` is one of the trusted proxies."""
    return any(address.version == network.version and address in network for network in networks)


def forwarded_client(
    peer: str, forwarded_for: str | None, *, networks: tuple[Network, ...], hops: int
) -> tuple[str, bool]:
    """The client address for a request from `peer`, and whether X-Forwarded-For was malformed.

    The header is read only when `peer` is a trusted proxy. Without a usable header the peer
    itself is the client. A malformed entry where a trusted proxy should have written an address
    stops the walk: the last address a trusted party vouched for is used instead.
    """
    peer_address = parse_address(peer)
    if peer_address is None or not is_trusted(peer_address, networks) or not forwarded_for:
        return peer, False
    entries = [entry for entry in forwarded_for.split(",") if entry.strip()]
    if hops > 0:
        if len(entries) < hops:
            return str(peer_address), False
        address = parse_address(entries[-hops])
        return (str(peer_address), True) if address is None else (str(address), False)
    client = peer_address
    for entry in reversed(entries):
        address = parse_address(entry)
        if address is None:
            return str(client), True
        client = address
        if not is_trusted(address, networks):
            break
    return str(client), False


def forwarded_scheme(scope_type: str, forwarded_proto: str | None) -> str | None:
    """The scheme for `scope_type` from X-Forwarded-Proto (its last value), or None if unusable."""
    if not forwarded_proto:
        return None
    value = forwarded_proto.rsplit(",", 1)[-1].strip().lower()
    return _SCHEMES.get(scope_type, {}).get(value)


def _headers(scope: dict[str, Any]) -> tuple[str | None, str | None]:
    forwarded_for: list[str] = []
    forwarded_proto = None
    for key, value in scope.get("headers", []):
        if key == b"x-forwarded-for":
            # Several header lines are one list, in order (RFC 9110 §5.3).
            forwarded_for.append(value.decode("latin-1"))
        elif key == b"x-forwarded-proto":
            forwarded_proto = value.decode("latin-1")
    return (",".join(forwarded_for) or None), forwarded_proto


def _warn_malformed(peer: str, forwarded_for: str) -> None:
    global _last_warning, _suppressed
    now = time.monotonic()
    if now - _last_warning < _WARNING_INTERVAL_S:
        _suppressed += 1
        return
    logger.warning(
        "Malformed X-Forwarded-For from trusted proxy %s: %r (using the last trusted address; "
        "%d more since the previous warning)",
        peer,
        forwarded_for[:200],
        _suppressed,
    )
    _last_warning, _suppressed = now, 0


def rewrite_scope(scope: dict[str, Any]) -> dict[str, Any]:
    """`scope` with the client and scheme a trusted proxy reported, or unchanged."""
    client = scope.get("client")
    if not settings.TRUST_PROXY_HEADERS or not client:
        return scope
    networks = trusted_networks(tuple(settings.TRUSTED_PROXIES))
    peer = str(client[0])
    peer_address = parse_address(peer)
    if peer_address is None or not is_trusted(peer_address, networks):
        return scope
    forwarded_for, forwarded_proto = _headers(scope)
    address, malformed = forwarded_client(peer, forwarded_for, networks=networks, hops=settings.TRUSTED_PROXY_HOPS)
    if malformed:
        _warn_malformed(peer, forwarded_for or "")
    scope = dict(scope, client=(address, 0) if address != peer else tuple(client))
    scheme = forwarded_scheme(scope["type"], forwarded_proto)
    if scheme is not None:
        scope["scheme"] = scheme
    return scope


class ProxyHeaders:
    """ASGI middleware: apply `rewrite_scope` to every HTTP and websocket connection."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Pass the connection on with the client address and scheme the trusted proxy saw."""
        if scope["type"] in {"http", "websocket"}:
            scope = rewrite_scope(scope)
        await self.app(scope, receive, send)
