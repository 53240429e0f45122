from django.apps import AppConfig


class DeskConfig(AppConfig):
    """The agent desk: people answering visitors, on `/ws/desk/` (and, next, the `/desk/` page)."""

    name = "desk"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        """Every desk's queue follows the handoff events, wherever they happen."""
        from desk import subscribers

        subscribers.connect()
