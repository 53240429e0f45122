"""Alert rules (edited here) and the alert history (read here, filterable).

A rule's form offers the registry's metrics by name (the registry is the list; nothing here
copies it) and refuses what the sweep could not evaluate or deliver (`AlertRule.clean`). The
rule's state is shown, never edited: only the sweep writes it.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html

from alerts import rules, text
from alerts.models import AlertEvent, AlertRule, AlertState
from analytics.params import PROVIDERS, USER_TYPES
from analytics.reports.format import format_duration


class AlertRuleForm(forms.ModelForm):
    """The rule, with the metric chosen from the registry."""

    metric = forms.ChoiceField(
        required=False,
        help_text="For metric rules: any metric of the registry (its unit in brackets; the threshold is in it). "
        "Live numbers (Live now, Waiting, Longest wait) are read as they are now, without a window.",
    )
    user_type = forms.ChoiceField(required=False)
    provider = forms.ChoiceField(required=False)

    class Meta:
        model = AlertRule
        fields = (
            "name", "active", "description", "kind", "metric", "window_minutes", "comparison", "threshold",
            "hysteresis", "min_sample", "sample", "consecutive", "cooldown_minutes", "user_type", "provider",
            "emails", "slack_urls", "webhook",
        )  # fmt: skip
        widgets = {
            "emails": forms.Textarea(attrs={"rows": 3}),
            "slack_urls": forms.Textarea(attrs={"rows": 3}),
            "description": forms.Textarea(attrs={"rows": 3}),
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["metric"].choices = [("", "—"), *rules.alertable_metrics()]
        self.fields["user_type"].choices = [("", "All visitors"), *((name, name) for name in USER_TYPES)]
        self.fields["provider"].choices = [("", "All providers"), *((name, name) for name in PROVIDERS)]


@admin.register(AlertRule)
class AlertRuleAdmin(admin.ModelAdmin):
    form = AlertRuleForm
    list_display = ("name", "active", "kind", "watching", "condition", "status", "last_value", "evaluated_at")
    list_filter = ("active", "kind")
    search_fields = ("name", "metric", "description")
    list_select_related = ("state",)
    readonly_fields = ("status", "last_value", "evaluated_at", "history")
    actions = ("switch_on", "switch_off")
    fieldsets = (
        (None, {"fields": ("name", "active", "description")}),
        ("Condition", {"fields": ("kind", "metric", "window_minutes", "comparison", "threshold", "hysteresis")}),
        ("Not enough data, flapping", {"fields": ("min_sample", "sample", "consecutive", "cooldown_minutes")}),
        ("Filters", {"fields": ("user_type", "provider")}),
        ("Channels", {"fields": ("emails", "slack_urls", "webhook")}),
        ("State (written by the sweep)", {"fields": ("status", "last_value", "evaluated_at", "history")}),
    )

    @admin.display(description="Watching")
    def watching(self, rule: AlertRule) -> str:
        return rules.label(rule.kind, rule.metric)

    @admin.display(description="Alerts when")
    def condition(self, rule: AlertRule) -> str:
        view = text.RuleView(
            name=rule.name, kind=rule.kind, metric=rule.metric, comparison=rule.comparison,
            threshold=rule.threshold, window_minutes=rule.window_minutes, user_type=rule.user_type,
            provider=rule.provider,
        )  # fmt: skip
        return f"{text.condition_text(view)} {text.scope_text(view)}"

    def _state(self, rule: AlertRule) -> AlertState | None:
        try:
            return rule.state
        except AlertState.DoesNotExist:
            return None

    @admin.display(description="Status")
    def status(self, rule: AlertRule) -> str:
        state = self._state(rule)
        if state is None:
            return "not evaluated yet"
        label = AlertState.Status(state.status).label if state.status in AlertState.Status.values else state.status
        return f"FIRING · {label}" if state.firing and state.status != "firing" else label

    @admin.display(description="Last value")
    def last_value(self, rule: AlertRule) -> str:
        state = self._state(rule)
        if state is None or state.evaluated_at is None:
            return "—"
        shown = text.value_text(rule.kind, rule.metric, state.value)
        return f"{shown} ({state.sample} in the sample)" if state.sample is not None else shown

    @admin.display(description="Evaluated at")
    def evaluated_at(self, rule: AlertRule) -> Any:
        state = self._state(rule)
        return state.evaluated_at if state is not None else None

    @admin.display(description="History")
    def history(self, rule: AlertRule) -> str:
        if rule.pk is None:
            return "—"
        return format_html('<a href="{}">Every alert of this rule</a>', text.history_path(rule.pk))

    @admin.action(description="Switch the selected rules on")
    def switch_on(self, request: HttpRequest, queryset: QuerySet[AlertRule]) -> None:
        count = queryset.update(active=True)
        self.message_user(request, f"{count} rule(s) switched on.", messages.SUCCESS)

    @admin.action(description="Switch the selected rules off (a firing alert resolves at the next evaluation)")
    def switch_off(self, request: HttpRequest, queryset: QuerySet[AlertRule]) -> None:
        count = queryset.update(active=False)
        self.message_user(request, f"{count} rule(s) switched off.", messages.SUCCESS)


@admin.register(AlertEvent)
class AlertEventAdmin(admin.ModelAdmin):
    """The alert history: every firing, when it resolved, what each channel answered."""

    list_display = ("fired_at", "rule", "state", "value_vs_threshold", "resolved_at", "lasted", "delivered")
    list_filter = ("state", "kind", "rule")
    search_fields = ("rule__name", "message", "resolve_message")
    date_hierarchy = "fired_at"
    list_select_related = ("rule",)
    readonly_fields = (
        "rule", "state", "kind", "metric", "comparison", "threshold", "value", "sample", "fired_at", "message",
        "resolved_at", "resolved_value", "resolve_message", "deliveries",
    )  # fmt: skip

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="Value (threshold)")
    def value_vs_threshold(self, event: AlertEvent) -> str:
        value = text.value_text(event.kind, event.metric, event.value)
        threshold = text.value_text(event.kind, event.metric, event.threshold)
        return f"{value} ({event.comparison} {threshold})"

    @admin.display(description="Lasted")
    def lasted(self, event: AlertEvent) -> str:
        if event.resolved_at is None:
            return "firing"
        return format_duration((event.resolved_at - event.fired_at).total_seconds() * 1000)

    @admin.display(description="Delivered")
    def delivered(self, event: AlertEvent) -> str:
        results = event.deliveries or []
        if not results:
            return "—"
        failed = sum(1 for item in results if not item.get("ok"))
        return f"{len(results) - failed} ok, {failed} failed" if failed else f"{len(results)} ok"
