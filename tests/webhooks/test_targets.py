"""Private targets are refused when an endpoint is saved and again at each send, unless allowed.

`check_url` is the one check (alerts use it for Slack URLs too). At send time the host is
resolved again and the request goes to the address that was checked: a name that resolves to a
private address by then (DNS rebinding) is refused, and nothing reaches the receiver.
"""

from __future__ import annotations

from typing import Any

import pytest
from channels.db import database_sync_to_async

from tests.webhooks.receiver import Receiver
from webhooks import services, signing, targets
from webhooks.dispatcher import Dispatcher
from webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint

PRIVATE = [
    ("http://127.0.0.1/hook", "loopback"),
    ("http://localhost:8080/hook", "loopback"),
    ("https://10.1.2.3/", "private"),
    ("https://192.168.0.10/", "private"),
    ("http://169.254.169.254/latest/meta-data/", "link-local"),
    ("http://[::1]/", "loopback"),
    ("http://[::ffff:127.0.0.1]/", "loopback"),
    ("http://[fe80::1]/", "link-local"),
    ("http://[fd00::1]/", "private"),
    ("http://0.0.0.0/", "unspecified"),
    ("http://224.0.0.1/", "multicast"),
    ("http://100.64.0.1/", "not a public address"),  # carrier-grade NAT
    ("http://240.0.0.1/", "reserved"),
]


@pytest.mark.parametrize(("url", "reason"), PRIVATE)
def test_private_loopback_and_link_local_targets_are_refused(settings: Any, url: str, reason: str) -> None:
    settings.WEBHOOK_ALLOW_PRIVATE = False
    with pytest.raises(ValueError, match=reason) as refused:
        targets.check_url(url)
    assert "WEBHOOK_ALLOW_PRIVATE=1" in str(refused.value)


@pytest.mark.parametrize(("url", "reason"), PRIVATE[:3])
def test_private_targets_are_allowed_with_the_setting(settings: Any, url: str, reason: str) -> None:
    settings.WEBHOOK_ALLOW_PRIVATE = True
    targets.check_url(url)  # no error


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://example.com/", "https:// or http://"),
        ("https://user:secret@example.com/", "user name or password"),
        ("https:///path", "no host"),
        ("https://example.com/a b", "spaces or control"),
        ("https://example.com/#frag", "fragment"),
        ("https://example.com:99999/", "malformed"),
        ("https://" + "a" * 2000 + ".com/", "longer than 2000"),
        ("https://no-such-host.invalid/", "does not resolve"),
    ],
)
def test_malformed_urls_are_refused_whatever_the_setting(settings: Any, url: str, reason: str) -> None:
    settings.WEBHOOK_ALLOW_PRIVATE = url != "https://no-such-host.invalid/"  # DNS is only asked when checking
    with pytest.raises(ValueError, match=reason):
        targets.check_url(url)


def test_a_public_address_passes(settings: Any) -> None:
    settings.WEBHOOK_ALLOW_PRIVATE = False
    targets.check_url("https://93.184.215.14/hooks?x=1")  # an address literal: no DNS needed
    targets.check_url("http://[2606:2800:21f:cb07:6820:80da:af6b:8b2c]:8443/")


def test_secrets_are_generated_and_checked() -> None:
    secret = signing.generate_secret()
    signing.check_secret(secret)
    assert secret.startswith("whsec_") and len(secret) == 6 + 32
    for bad, reason in (("abc", "start with whsec_"), ("whsec_!!!", "base64"), ("whsec_QUJD", "16 to 64 bytes")):
        with pytest.raises(ValueError, match=reason):
            signing.check_secret(bad)


@pytest.mark.django_db(transaction=True)
@pytest.mark.backends
async def test_a_target_that_turned_private_is_refused_at_send_time(settings: Any, receiver: Receiver) -> None:
    """Saved while allowed (or while its name pointed elsewhere), refused when it is sent."""
    secret = signing.generate_secret()
    receiver.expect("/hook", secret)
    url = receiver.url("/hook").replace("127.0.0.1", "localhost")
    await database_sync_to_async(WebhookEndpoint.objects.create)(url=url, secret=secret)
    settings.WEBHOOK_ALLOW_PRIVATE = False
    targets._resolved.clear()

    dispatcher = Dispatcher()
    await database_sync_to_async(services.emit)("alert.fired", {})
    await dispatcher.step()
    await dispatcher.drain()

    [attempt] = await database_sync_to_async(lambda: list(WebhookAttempt.objects.all()))()
    assert attempt.status_code is None
    assert attempt.error.startswith("refused: ") and "loopback address" in attempt.error
    assert receiver.received == []  # never reached

    settings.WEBHOOK_ALLOW_PRIVATE = True  # the same endpoint, allowed: delivered at the retry
    await database_sync_to_async(WebhookDelivery.objects.update)(next_attempt_at=attempt.attempted_at)
    await dispatcher.step()
    await dispatcher.drain()
    assert [item.status for item in receiver.received] == [200] and receiver.received[0].verified


def test_international_names_and_paths_are_sent_encoded() -> None:
    target = targets.parse("https://Bücher.example:8443/ünterweg/x?q=ä&r=%20")
    assert (target.host, target.port, target.path) == ("xn--bcher-kva.example", 8443, "/%C3%BCnterweg/x?q=%C3%A4&r=%20")
    assert not target.default_port and targets.parse("http://a.example/").default_port
