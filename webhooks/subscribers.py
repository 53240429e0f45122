"""Webhooks on the chat's event seam: what `WebhooksConfig.ready()` connects.

* every chat record (`assistant.events.record`) becomes outbox rows, in the write's own
  transaction (`services.record_chat`), only while an active endpoint wants its types
  (`services.record_wanted`: an in-memory check, no query);
* the endpoint list cache is dropped when an endpoint is saved or deleted (`routes.invalidate`);
* `manage.py serve` releases dead processes' leases before serving, and starts this process's
  dispatcher once its event loop runs;
* visitors' and agents' messages tell the dispatcher's pacer that the chat is active here.
"""

from __future__ import annotations

import functools
from typing import Any

from django.db import transaction
from django.db.models.signals import post_delete, post_save

from assistant import events
from project import runtime
from webhooks import dispatcher, pacing, payloads, routes, services
from webhooks.models import WebhookEndpoint


def connect() -> None:
    """Subscribe (once per process, from `WebhooksConfig.ready`)."""
    for record_type in payloads.BUILDERS:
        events.subscribe_durable(
            record_type, services.record_chat, active=functools.partial(services.record_wanted, record_type)
        )
    post_save.connect(endpoint_changed, sender=WebhookEndpoint, dispatch_uid="webhooks.routes.save")
    post_delete.connect(endpoint_changed, sender=WebhookEndpoint, dispatch_uid="webhooks.routes.delete")
    pacing.connect()
    runtime.on_startup(dispatcher.startup)
    runtime.on_serving(dispatcher.ensure_running)


def endpoint_changed(sender: type[WebhookEndpoint], **kwargs: Any) -> None:
    """An endpoint was saved or deleted: this process reads the list again (now, and after commit)."""
    routes.invalidate()
    transaction.on_commit(routes.invalidate)
