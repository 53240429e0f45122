from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    """Signed webhooks (Standard Webhooks): a durable outbox fed by the chat's events, delivered with retries."""

    name = "webhooks"
    default_auto_field = "django.db.models.BigAutoField"
