from django.apps import AppConfig


class AssistantConfig(AppConfig):
    """Chat sessions, messages, the websocket consumer, AI providers and the knowledge base."""

    name = "assistant"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        """Say at startup which AI providers will answer, and which are skipped for want of a key.

        Also have shutdown (`drain(stop=True)`) close the reply control channel's listener: it is
        ended with a message, since cancelling a pending channels_redis receive breaks the layer.
        """
        from assistant.providers.registry import log_configuration
        from assistant.streaming import control
        from project import runtime

        log_configuration()
        runtime.on_new_runtime(lambda loop_runtime: loop_runtime.on_stop(control.close))
