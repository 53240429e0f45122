from django.apps import AppConfig


class AssistantConfig(AppConfig):
    """Chat sessions, messages, the websocket consumer, AI providers and the knowledge base."""

    name = "assistant"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        """Say at startup which AI providers will answer, and which are skipped for want of a key;
        follow visitors who leave while waiting for a person."""
        from assistant.handoff import left
        from assistant.providers.registry import log_configuration

        log_configuration()
        left.connect()
