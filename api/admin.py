"""API keys in the admin: make one (the whole key is shown once, in a message), see, revoke.

Keys are never edited: a key's scopes and expiry are what it was made with (make a new key and
revoke the old one to change them), so nobody can widen a key that was handed out.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from api import keys
from api.models import ApiKey


class ApiKeyCreateForm(forms.ModelForm):
    """Name, scopes and an optional expiry; the key itself is generated."""

    scopes = forms.MultipleChoiceField(
        choices=ApiKey.Scope.choices,
        widget=forms.CheckboxSelectMultiple,
        initial=[ApiKey.Scope.READ],
        help_text="read: insights, metrics, sessions, usage. export: the exports. desk: reserved (no endpoint yet).",
    )

    class Meta:
        model = ApiKey
        fields = ["name", "scopes", "expires_at"]

    def clean_expires_at(self) -> datetime | None:
        """An expiry must lie ahead."""
        value: datetime | None = self.cleaned_data.get("expires_at")
        if value is not None and value <= timezone.now():
            raise forms.ValidationError("The expiry must be in the future.")
        return value


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """List, make and revoke API keys."""

    list_display = ["name", "key_prefix", "scope_list", "state", "created_by", "created_at", "expires_at",
                    "last_used_at", "revoked_at"]  # fmt: skip
    list_filter = ["revoked_at", "expires_at"]
    search_fields = ["name", "prefix"]
    actions = ["revoke"]
    readonly_fields = ["name", "key_prefix", "scope_list", "state", "created_by", "created_at", "expires_at",
                       "last_used_at", "revoked_at"]  # fmt: skip

    def get_form(self, request: HttpRequest, obj: ApiKey | None = None, change: bool = False, **kwargs: Any) -> Any:
        """The create form for a new key; an existing key is read-only."""
        if obj is None:
            kwargs["form"] = ApiKeyCreateForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_readonly_fields(self, request: HttpRequest, obj: ApiKey | None = None) -> list[str]:
        """Everything, once made."""
        return self.readonly_fields if obj is not None else []

    def get_fields(self, request: HttpRequest, obj: ApiKey | None = None) -> list[str]:
        """The create form's fields, or the key's details."""
        return ["name", "scopes", "expires_at"] if obj is None else self.readonly_fields

    def has_change_permission(self, request: HttpRequest, obj: ApiKey | None = None) -> bool:
        """Viewable (its page shows it), not editable; revoking is an action."""
        return False if obj is not None else super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: ApiKey | None = None) -> bool:
        """Keys are revoked, not deleted: the log keeps whose key it was."""
        return False

    def save_model(self, request: HttpRequest, obj: ApiKey, form: Any, change: bool) -> None:
        """Make the key through the service, and show it once."""
        data = form.cleaned_data
        key, whole = keys.key_create(
            name=data["name"], scopes=data["scopes"], expires_at=data.get("expires_at"), created_by=request.user
        )
        obj.pk, obj.prefix = key.pk, key.prefix  # the admin's redirect and log name the created key
        obj._state.adding = False
        messages.warning(
            request,
            f"The API key \u201c{key.name}\u201d: {whole} \u2014 copy it now: it is shown only this once "
            "(Parley keeps only its hash).",
        )

    @admin.action(description="Revoke the selected API keys", permissions=["delete_keys"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        """Revoke now: requests with these keys get 401 `revoked`."""
        count = 0
        for key in queryset.filter(revoked_at__isnull=True):
            keys.key_revoke(prefix=key.prefix)
            count += 1
        self.message_user(request, f"Revoked {count} API key(s).", messages.SUCCESS)

    def has_delete_keys_permission(self, request: HttpRequest) -> bool:
        """Revoking needs the right to change keys."""
        return super().has_change_permission(request)

    @admin.display(description="Key")
    def key_prefix(self, obj: ApiKey) -> str:
        return f"pk_{obj.prefix}_…"

    @admin.display(description="Scopes")
    def scope_list(self, obj: ApiKey) -> str:
        return ", ".join(obj.scopes)

    @admin.display(description="State")
    def state(self, obj: ApiKey) -> str:
        return keys.key_state(obj)
