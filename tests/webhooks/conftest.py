"""Fixtures for the webhooks tests: a real receiver on loopback, endpoints, a running dispatcher."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator

import pytest

from tests.assistant.handoff.conftest import make_agent  # noqa: F401 (a fixture, shared)
from tests.webhooks.receiver import Receiver
from webhooks import dispatcher, routes, signing
from webhooks.dispatcher import Dispatcher
from webhooks.models import WebhookEndpoint


@pytest.fixture(autouse=True)
def _webhook_settings(settings) -> Iterator[None]:
    """Loopback receivers allowed, retries in fractions of a second, a fresh endpoint list each test."""
    settings.WEBHOOK_ALLOW_PRIVATE = True
    settings.WEBHOOK_RETRY_SCHEDULE_S = (0.2, 0.3, 0.4)
    settings.WEBHOOK_POLL_INTERVAL_S = 0.1
    settings.WEBHOOK_TIMEOUT_S = 3.0
    settings.WEBHOOK_MAX_CONCURRENCY = 8
    settings.WEBHOOK_DEFER_MAX_S = 0  # no giving way to the chat (tests/webhooks/test_pacing.py does)
    routes.invalidate()
    yield
    routes.invalidate()  # the next test (of any app) reads the endpoints of its own database
    dispatcher.close_connection()  # the dispatcher thread's connection, before the database is flushed


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


@pytest.fixture
def make_endpoint(receiver: Receiver) -> Callable[..., WebhookEndpoint]:
    """Create an endpoint on the receiver (path `/hook` by default), verified with its own secret."""

    def make(path: str = "/hook", *, script: list[int] | None = None, **fields: object) -> WebhookEndpoint:
        secret = signing.generate_secret()
        receiver.expect(path, secret, script)
        return WebhookEndpoint.objects.create(url=receiver.url(path), secret=secret, **fields)

    return make


@pytest.fixture
async def running_dispatcher() -> AsyncIterator[Dispatcher]:
    """This test loop's dispatcher, running; stopped (its leases given back) at the end."""
    dispatcher.ensure_running()
    yield dispatcher.current()
    await dispatcher.stop()
