"""Alert tests: UTC, the locmem mail outbox, links to an example site, private targets refused."""

from __future__ import annotations

import pytest

from webhooks import routes


@pytest.fixture(autouse=True)
def _alert_settings(settings) -> None:
    settings.TIME_ZONE = "UTC"
    settings.RESOLUTION_IDLE_MINUTES = 30
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.ALERTS_SITE_URL = "https://support.example.com"
    settings.ALERT_EMAIL_FROM = "alerts@example.com"
    settings.ALERT_SLACK_TIMEOUT_S = 2.0
    settings.WEBHOOK_ALLOW_PRIVATE = False
    settings.ALERTS_INTERVAL_S = 0  # no sweep loop; and no skipping of rules evaluated just now
    routes.invalidate()  # the webhook endpoints of an earlier test are gone: read them again
