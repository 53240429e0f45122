"""API keys: how scripts and other systems reach the staff side of the REST API.

A key is shown once, when it is made (`pk_<prefix>_<secret>`, see `api.keys`); the database keeps
its prefix, to find it, and the SHA-256 of its secret, to check it. The secret is 256 random bits,
so a fast hash is the right one: there is nothing to guess that a slow hash would protect.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models


class ApiKey(models.Model):
    """A named, scoped key for the staff side of the API; revoked, never deleted, so the log keeps its name."""

    class Scope(models.TextChoices):
        READ = "read", "Read analytics, sessions and usage"
        EXPORT = "export", "Download exports"
        DESK = "desk", "Reserved for the agent desk API"
        IMPORT = "import", "Import conversations (POST /api/v1/imports/)"

    name = models.CharField(max_length=100, help_text="Who or what uses it, e.g. \u201cCRM sync\u201d.")
    prefix = models.CharField(max_length=16, unique=True, editable=False, help_text="Shown; finds the key.")
    secret_hash = models.CharField(max_length=64, editable=False, help_text="SHA-256 of the secret, hex.")
    scopes = models.JSONField(default=list, help_text="A subset of read, export, desk, import.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="api_keys"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True, help_text="None: it does not expire.")
    last_used_at = models.DateTimeField(
        null=True, blank=True, editable=False, help_text="To the minute: written at most once a minute."
    )
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        verbose_name = "API key"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} (pk_{self.prefix}_…)"
