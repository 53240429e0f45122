from django.apps import AppConfig


class AssistantConfig(AppConfig):
    """Chat sessions, messages, the websocket consumer, AI providers and the knowledge base."""

    name = "assistant"
    default_auto_field = "django.db.models.BigAutoField"
