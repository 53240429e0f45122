"""Telling people: email and Slack-compatible incoming webhooks (no database here).

`send` runs outside the evaluation's transaction, in a thread of its own when the sweep runs it,
and every channel is bounded: email by EMAIL_TIMEOUT (Django's SMTP backend), each incoming
webhook by ALERT_SLACK_TIMEOUT_S. A channel that fails is logged and reported in the results
(stored on the alert's history row by `services.deliveries_record`); it never stops the others
and it is not retried: the next alert of the rule tries again. (Webhooks go through the
durable outbox of the webhooks app instead, written with the alert: see `services`.)

Incoming-webhook URLs hold their secret in the path (Slack's `/services/T…/B…/…`), so results
and logs show only the scheme and host.
"""

from __future__ import annotations

import logging
import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx2
from django.conf import settings
from django.core.mail import EmailMessage, get_connection

from webhooks import targets

logger = logging.getLogger(__name__)

Transition = Literal["fired", "resolved"]
#: The receiver's answer kept in a failed delivery's detail.
MAX_DETAIL_CHARS = 300


@dataclass(frozen=True, slots=True)
class Notice:
    """One firing or resolution to deliver, as plain values (built inside the evaluation)."""

    event_id: int
    rule_id: int
    transition: Transition
    subject: str
    text: str
    email_body: str
    history_url: str
    emails: tuple[str, ...] = ()
    slack_urls: tuple[str, ...] = ()


def send(notice: Notice) -> list[dict[str, Any]]:
    """Deliver `notice` to its email addresses and incoming webhooks; what each answered."""
    results = []
    if notice.emails:
        results.append(email(notice))
    results += [slack(url, notice) for url in notice.slack_urls]
    return results


def _result(notice: Notice, channel: str, target: str, ok: bool, detail: str = "") -> dict[str, Any]:
    return {
        "event": notice.transition,
        "channel": channel,
        "target": target,
        "ok": ok,
        "detail": detail[:MAX_DETAIL_CHARS],
        "at": datetime.now(UTC).isoformat(),
    }


def email(notice: Notice) -> dict[str, Any]:
    """One email per address (nobody sees the others'), over one SMTP connection."""
    sender = settings.ALERT_EMAIL_FROM or settings.DEFAULT_FROM_EMAIL
    target = ", ".join(notice.emails)
    try:
        connection = get_connection(fail_silently=False)
        messages = [
            EmailMessage(notice.subject, notice.email_body, sender, [address], connection=connection)
            for address in notice.emails
        ]
        sent = connection.send_messages(messages) or 0
    except Exception as error:
        logger.warning("Alert %s (%s): email to %d address(es) failed: %s", notice.event_id, notice.transition,
                       len(notice.emails), error)  # fmt: skip
        return _result(notice, "email", target, False, f"{type(error).__name__}: {error}")
    return _result(notice, "email", target, True, f"{sent} sent")


def redacted(url: str) -> str:
    """An incoming-webhook URL without its secret path: scheme and host only."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}/…"


def slack_text(notice: Notice) -> str:
    """The message: the alert's text, and a link to its history when the site's address is known."""
    mark = ":rotating_light:" if notice.transition == "fired" else ":white_check_mark:"
    text = f"{mark} {notice.text}"
    if notice.history_url.startswith(("http://", "https://")):
        text += f" <{notice.history_url}|History>"
    return text


def pinned(url: str) -> tuple[str, dict[str, str], dict[str, str]]:
    """The URL to connect to (the checked address in place of the host), its Host header and TLS name.

    `webhooks.targets.check_url`'s check, keeping the address it checked: every address the host
    resolves to must be public (unless WEBHOOK_ALLOW_PRIVATE), and the request goes to the first
    of them, so a name cannot resolve to a public address for the check and to a private one for
    the connection (DNS rebinding). Raises ValueError with the reason.
    """
    target = targets.parse(url)
    try:
        infos = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    except OSError as error:
        raise ValueError(f"{target.host} does not resolve ({error.strerror or error})") from None
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not addresses:
        raise ValueError(f"{target.host} does not resolve to any address")
    for address in addresses:
        targets.check_address(address)
    literal = f"[{addresses[0]}]" if ":" in addresses[0] else addresses[0]
    host = target.host if target.default_port else f"{target.host}:{target.port}"
    extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
    return f"{target.scheme}://{literal}:{target.port}{target.path}", {"Host": host}, extensions


def slack(url: str, notice: Notice) -> dict[str, Any]:
    """POST `{"text": ...}` to a Slack-compatible incoming webhook; refuse private targets."""
    shown = redacted(url)
    try:
        address, headers, extensions = pinned(url)
    except ValueError as error:
        logger.warning("Alert %s: refused incoming webhook %s: %s", notice.event_id, shown, error)
        return _result(notice, "slack", shown, False, f"refused: {error}")
    try:
        # No proxies from the environment (the address check must hold for the connection), no
        # redirects (one could lead where the check would refuse).
        with httpx2.Client(timeout=settings.ALERT_SLACK_TIMEOUT_S, trust_env=False, follow_redirects=False) as client:
            response = client.post(address, json={"text": slack_text(notice)}, headers=headers, extensions=extensions)
    except httpx2.HTTPError as error:
        logger.warning("Alert %s: incoming webhook %s failed: %s", notice.event_id, shown, error)
        return _result(notice, "slack", shown, False, f"{type(error).__name__}: {error}")
    if not 200 <= response.status_code < 300:
        logger.warning("Alert %s: incoming webhook %s answered %s", notice.event_id, shown, response.status_code)
        return _result(notice, "slack", shown, False, f"HTTP {response.status_code}: {response.text}")
    return _result(notice, "slack", shown, True, f"HTTP {response.status_code}")
