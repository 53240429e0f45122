"""Django admin: configure endpoints; read the delivery log (every attempt) and redeliver."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html

from webhooks import services, signing, targets
from webhooks.models import EVENT_TYPES, WebhookAttempt, WebhookDelivery, WebhookEndpoint


class EndpointForm(forms.ModelForm):
    """The URL must be a public http(s) address (unless WEBHOOK_ALLOW_PRIVATE); a blank secret is generated."""

    event_types = forms.MultipleChoiceField(
        choices=EVENT_TYPES,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="None selected: every event type, including types added later.",
    )

    class Meta:
        model = WebhookEndpoint
        fields = ("url", "description", "active", "event_types", "secret", "owner", "owner_email")
        widgets = {"secret": forms.TextInput(attrs={"size": 60, "autocomplete": "off"})}

    def clean_url(self) -> str:
        url = self.cleaned_data["url"]
        try:
            targets.check_url(url)
        except ValueError as error:
            raise forms.ValidationError(f"Refused: {error}.") from None
        return url

    def clean_secret(self) -> str:
        secret = (self.cleaned_data.get("secret") or "").strip()
        if not secret:
            return signing.generate_secret()
        try:
            signing.check_secret(secret)
        except ValueError as error:
            raise forms.ValidationError(f"Invalid: {error}.") from None
        return secret


HEALTH = ("consecutive_failures", "failing_since", "disabled_at", "disabled_reason", "created_at")


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    form = EndpointForm
    list_display = ("__str__", "url", "active", "types", "consecutive_failures", "disabled_reason")
    list_filter = ("active",)
    search_fields = ("url", "description", "owner_email")
    readonly_fields = HEALTH
    fieldsets = (
        (None, {"fields": ("url", "description", "active", "event_types")}),
        (
            "Signing",
            {
                "fields": ("secret",),
                "description": "Receivers verify each request with this secret (Standard Webhooks). "
                "Leave it blank to generate a new one; changing it takes effect at the next attempt.",
            },
        ),
        ("Owner (emailed if the endpoint is disabled)", {"fields": ("owner", "owner_email")}),
        ("Health", {"fields": HEALTH}),
    )

    @admin.display(description="Event types")
    def types(self, obj: WebhookEndpoint) -> str:
        return ", ".join(obj.event_types) if obj.event_types else "all"

    def save_model(self, request: HttpRequest, obj: WebhookEndpoint, form: forms.ModelForm, change: bool) -> None:
        reactivated = change and "active" in form.changed_data and obj.active
        super().save_model(request, obj, form, change)
        services.endpoint_saved(endpoint=obj, reactivated=reactivated)


class AttemptInline(admin.TabularInline):
    model = WebhookAttempt
    fields = ("attempted_at", "status_code", "duration_ms", "error", "response_excerpt")
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ("-attempted_at", "-pk")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    """The delivery log: one row per event and endpoint, its attempts inline; redeliver from the list."""

    list_display = (
        "event_type",
        "event_id",
        "endpoint",
        "state",
        "attempts",
        "last_status",
        "last_error",
        "next_attempt_at",
        "created_at",
    )
    list_filter = ("state", "event_type", "endpoint")
    search_fields = ("event_id", "conversation_id")
    date_hierarchy = "created_at"
    list_select_related = ("endpoint",)
    actions = ("redeliver",)
    inlines = (AttemptInline,)
    fields = (
        "event_id",
        "event_type",
        "endpoint",
        "conversation_id",
        "state",
        "attempts",
        "next_attempt_at",
        "leased_until",
        "last_status",
        "last_error",
        "delivered_at",
        "occurred_at",
        "created_at",
        "pretty_body",
    )
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # the log is read-only; redelivery is an action (`change_webhookdelivery` permission)

    @admin.display(description="Body (as signed)")
    def pretty_body(self, obj: WebhookDelivery) -> str:
        try:
            shown = json.dumps(json.loads(obj.body), indent=2, ensure_ascii=False)
        except ValueError:
            shown = obj.body
        return format_html("<pre style='white-space: pre-wrap'>{}</pre>", shown)

    @admin.action(description="Redeliver (same body and webhook-id, full retry schedule)", permissions=["redeliver"])
    def redeliver(self, request: HttpRequest, queryset: QuerySet[WebhookDelivery]) -> None:
        count = services.deliveries_redeliver(pks=queryset.values_list("pk", flat=True))
        self.message_user(request, f"{count} deliver{'y' if count == 1 else 'ies'} queued again.", messages.SUCCESS)

    def has_redeliver_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("webhooks.change_webhookdelivery")
