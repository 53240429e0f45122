"""Rules firing and resolving on hand-built data, read through the dashboard's selectors.

Every test builds its rows by hand (tests/alerts/data.py) and states the numbers it expects,
worked out from those rows, not from the code under test.
"""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.core import mail

from alerts import selectors, services
from alerts.models import AlertEvent, AlertState
from tests.alerts.data import MINUTE, NOW, at, calls, claim, conversation, evaluate, rebuild, rule, waiting_visitor

pytestmark = [pytest.mark.backends, pytest.mark.django_db]


def state(rule_id: int) -> AlertState:
    return AlertState.objects.get(pk=rule_id)


def test_provider_success_rate_fires_holds_inside_the_margin_and_resolves_past_it() -> None:
    watched = rule(name="Success below 95", metric="provider_success_rate", window_minutes=15, comparison="<",
                   threshold=95, hysteresis=2, min_sample=10)  # fmt: skip
    # [11:45, 12:00): 18 ok + 2 failed = 20 attempted → 90 %.
    calls(NOW - 10 * MINUTE, ok=18, failed=2)
    first = evaluate(NOW)
    assert (first.fired, first.resolved) == (1, 0)
    event = AlertEvent.objects.get()
    assert (event.state, event.value, event.threshold, event.sample, event.fired_at) == ("firing", 90.0, 95, 20, NOW)
    assert event.message == (
        "Success below 95: Provider success rate is 90% over the last 15 min, below 95% (20 provider calls attempted)."
    )
    # [12:00, 12:15): 19 ok + 1 failed → 95 %: no longer below 95, but not back to 97: still firing.
    calls(NOW + 5 * MINUTE, ok=19, failed=1)
    second = evaluate(NOW + 15 * MINUTE)
    assert (second.fired, second.resolved) == (0, 0)
    assert (state(watched.pk).firing, state(watched.pk).value) == (True, 95.0)
    # [12:15, 12:30): 40 ok → 100 %: resolved.
    calls(NOW + 20 * MINUTE, ok=40)
    third = evaluate(NOW + 30 * MINUTE)
    assert third.resolved == 1
    event.refresh_from_db()
    assert (event.state, event.resolved_at, event.resolved_value) == ("resolved", NOW + 30 * MINUTE, 100.0)
    assert "back to 100%" in event.resolve_message and "firing for 30 min 00 s" in event.resolve_message
    assert AlertEvent.objects.count() == 1
    assert state(watched.pk).open_event_id is None


def test_p95_response_time_over_the_window_reads_the_sessions_analytics() -> None:
    rule(name="Slow", metric="p95_response_time_ms", window_minutes=60, threshold=10_000, min_sample=3)
    # Three conversations in the last hour: replies of 1 s, 2 s and 12 s → p95 = 12 s (12,000 ms).
    for minutes_ago, reply_ms in ((50, 1000), (40, 2000), (30, 12_000)):
        conversation(NOW - minutes_ago * MINUTE, reply_ms=reply_ms)
    conversation(NOW - 90 * MINUTE, reply_ms=60_000)  # before the window
    rebuild(NOW)
    assert evaluate(NOW).fired == 1
    event = AlertEvent.objects.get()
    assert (event.value, event.sample) == (12_000.0, 3)
    assert (
        event.message == "Slow: Response time p95 is 12,000 ms over the last 1 h, above 10,000 ms (3 finished replies)."
    )


def test_a_filter_narrows_the_window_to_its_visitors() -> None:
    clients = rule(name="Clients slow", metric="avg_response_time_ms", window_minutes=60, threshold=5000,
                   user_type="client")  # fmt: skip
    conversation(NOW - 30 * MINUTE, reply_ms=9000, user_type="anonymous")
    conversation(NOW - 20 * MINUTE, reply_ms=3000, user_type="client")
    rebuild(NOW)
    evaluate(NOW)
    assert AlertEvent.objects.count() == 0
    assert (state(clients.pk).value, state(clients.pk).sample, state(clients.pk).status) == (3000.0, 1, "ok")


def test_daily_cost_over_budget_reads_the_priced_provider_calls() -> None:
    rule(name="Budget", metric="cost_usd", window_minutes=24 * 60, threshold=0.02)
    # gpt-4.1-mini at $0.40 / $1.60 per million: 10,000 in + 5,000 out = $0.004 + $0.008 = $0.012 per reply.
    conversation(NOW - 20 * 60 * MINUTE, input_tokens=10_000, output_tokens=5_000)
    conversation(NOW - 60 * MINUTE, input_tokens=10_000, output_tokens=5_000)
    conversation(NOW - 25 * 60 * MINUTE, input_tokens=1_000_000, output_tokens=0)  # yesterday, outside
    rebuild(NOW)
    assert evaluate(NOW).fired == 1
    event = AlertEvent.objects.get()
    assert event.value == pytest.approx(0.024)
    assert event.message == "Budget: AI cost is $0.024 over the last 24 h, above $0.02 (2 provider calls attempted)."


def test_negative_feedback_share_fires_only_with_enough_rated_replies() -> None:
    spike = rule(name="Thumbs down", metric="satisfaction_rate", window_minutes=180, comparison="<", threshold=70,
                 hysteresis=5, min_sample=4)  # fmt: skip
    # 3 rated replies, 1 up and 2 down: 33.33 %, but 3 < 4: not enough data.
    for minutes_ago, rating in ((100, "up"), (90, "down"), (80, "down")):
        conversation(NOW - minutes_ago * MINUTE, rating=rating)
    conversation(NOW - 70 * MINUTE)  # a reply nobody rated does not count
    rebuild(NOW)
    evaluate(NOW)
    assert AlertEvent.objects.count() == 0
    assert (state(spike.pk).status, state(spike.pk).value, state(spike.pk).sample) == ("no_data", 33.33, 3)
    # A fourth, thumbs down: 1 up of 4 = 25 % over 4 rated replies: fires.
    conversation(NOW + 1 * MINUTE, rating="down")
    rebuild(NOW + 2 * MINUTE)
    assert evaluate(NOW + 2 * MINUTE).fired == 1
    assert AlertEvent.objects.get().value == 25.0


def test_a_firing_rule_whose_data_thins_out_stays_firing() -> None:
    watched = rule(name="Success", metric="provider_success_rate", window_minutes=10, comparison="<", threshold=95,
                   min_sample=10)  # fmt: skip
    calls(NOW - 5 * MINUTE, ok=5, failed=5)
    assert evaluate(NOW).fired == 1
    calls(NOW + 5 * MINUTE, ok=3)  # 100 %, but over 3 calls: not enough to say it recovered
    result = evaluate(NOW + 10 * MINUTE)
    assert result.resolved == 0
    assert (state(watched.pk).firing, state(watched.pk).status) == (True, "no_data")


def test_cooldown_keeps_a_resolved_rule_quiet_then_it_fires_again() -> None:
    watched = rule(name="Failures", kind="provider_failures", window_minutes=10, comparison=">=", threshold=1,
                   hysteresis=0, cooldown_minutes=30)  # fmt: skip
    calls(NOW - MINUTE, failed=1)
    assert evaluate(NOW).fired == 1
    assert evaluate(NOW + 11 * MINUTE).resolved == 1  # the failure left the window
    calls(NOW + 15 * MINUTE, failed=2)
    assert evaluate(NOW + 20 * MINUTE).fired == 0  # 9 minutes after resolving
    assert state(watched.pk).status == "cooldown"
    calls(NOW + 40 * MINUTE, failed=1)
    assert evaluate(NOW + 42 * MINUTE).fired == 1  # 31 minutes after resolving
    assert AlertEvent.objects.filter(rule=watched).count() == 2


def test_consecutive_evaluations_are_needed_before_firing() -> None:
    watched = rule(name="Twice", kind="provider_failures", window_minutes=60, threshold=0, consecutive=2)
    calls(NOW - MINUTE, failed=1)
    assert evaluate(NOW).fired == 0
    assert (state(watched.pk).status, state(watched.pk).breaches) == ("breached", 1)
    assert evaluate(NOW + MINUTE).fired == 1


def test_provider_failures_hovering_at_the_threshold_fire_once_and_resolve_once() -> None:
    watched = rule(name="Failures", kind="provider_failures", window_minutes=10, comparison=">=", threshold=10,
                   emails="oncall@example.com")  # fmt: skip
    # Each evaluation sees only the failures of its own 10 minutes. Default margin: 10 % of 10 = 1,
    # so it resolves below 9.
    for step, failed in enumerate([10, 9, 10, 9, 8]):
        calls(NOW + step * 10 * MINUTE + MINUTE, ok=5, failed=failed)
    seen = []
    for step in range(1, 6):
        result = evaluate(NOW + step * 10 * MINUTE)
        seen.append((result.fired, result.resolved, state(watched.pk).value))
    assert seen == [(1, 0, 10.0), (0, 0, 9.0), (0, 0, 10.0), (0, 0, 9.0), (0, 1, 8.0)]
    assert AlertEvent.objects.count() == 1
    assert [message.subject for message in mail.outbox] == ["[Parley] Alert: Failures", "[Parley] Resolved: Failures"]


def test_a_visitor_waiting_longer_than_the_limit_fires_and_resolves_when_claimed() -> None:
    watched = rule(name="Waiting", kind="waiting", threshold=10)
    visitor = waiting_visitor(NOW - 12 * MINUTE)
    waiting_visitor(NOW - 3 * MINUTE)
    assert evaluate(NOW).fired == 1
    event = AlertEvent.objects.get()
    assert event.value == 12.0
    assert event.message == (
        "Waiting: Longest wait for a person is 12 min 00 s now, above 10 min 00 s (2 visitors waiting)."
    )
    claim(visitor, NOW + MINUTE)
    # The other visitor has waited 5 minutes: under 9 (10 minus the 10 % margin).
    assert evaluate(NOW + 2 * MINUTE).resolved == 1
    assert state(watched.pk).value == 5.0


def test_a_live_metric_of_the_registry_is_read_as_it_is_now() -> None:
    rule(name="Queue", metric="waiting_now", threshold=1, comparison=">=", hysteresis=0)
    waiting_visitor(NOW - MINUTE)
    assert evaluate(NOW).fired == 1
    assert AlertEvent.objects.get().message == "Queue: Waiting for a person is 1 now, at or above 1."


def test_switching_a_firing_rule_off_resolves_its_alert() -> None:
    watched = rule(name="Failures", kind="provider_failures", window_minutes=10, threshold=0)
    calls(NOW - MINUTE, failed=3)
    evaluate(NOW)
    watched.active = False
    watched.save()
    assert evaluate(NOW + MINUTE).resolved == 1
    event = AlertEvent.objects.get()
    assert event.state == "resolved"
    assert event.resolve_message.startswith("Failures resolved: the rule was switched off.")
    assert evaluate(NOW + 2 * MINUTE).outcomes == []  # inactive and resolved: not evaluated


def test_inactive_rules_are_not_evaluated() -> None:
    rule(name="Off", kind="provider_failures", window_minutes=10, threshold=0, active=False)
    calls(NOW - MINUTE, failed=3)
    assert evaluate(NOW).outcomes == []
    assert AlertEvent.objects.count() == 0


def test_a_rule_evaluated_just_now_by_another_process_is_skipped(settings) -> None:
    settings.ALERTS_INTERVAL_S = 60
    watched = rule(name="Twice", kind="provider_failures", window_minutes=60, threshold=0, consecutive=2)
    calls(NOW - MINUTE, failed=1)
    evaluate(NOW)
    assert [outcome.skipped for outcome in evaluate(NOW + timedelta(seconds=20)).outcomes] == ["recent"]
    assert state(watched.pk).breaches == 1  # the skipped pass did not count a second breach
    assert evaluate(NOW + timedelta(seconds=31)).fired == 1


def test_of_two_evaluations_read_at_the_same_time_only_one_stores_and_fires() -> None:
    watched = rule(name="Race", kind="provider_failures", window_minutes=10, threshold=0, emails="a@example.com")
    calls(NOW - MINUTE, failed=1)
    with at(NOW):
        first = services.rule_plan(watched, now=NOW)
        second = services.rule_plan(watched, now=NOW)
        assert first is not None and second is not None
        won = services.rule_apply(first)
        lost = services.rule_apply(second)
    assert (won.fired, won.skipped) == (True, "")
    assert (lost.fired, lost.skipped) == (False, "lost")
    assert AlertEvent.objects.count() == 1
    assert state(watched.pk).version == 1


@pytest.mark.django_db(transaction=True)
def test_two_processes_evaluating_at_once_fire_once() -> None:
    rule(name="Race", kind="provider_failures", window_minutes=10, threshold=0, emails="a@example.com")
    calls(NOW - MINUTE, failed=1)
    start = threading.Barrier(4)
    errors: list[BaseException] = []

    def run() -> None:
        from django.db import connection

        try:
            start.wait()
            services.alerts_evaluate(now=NOW)
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    assert AlertEvent.objects.count() == 1
    assert len(mail.outbox) == 1


def test_a_rule_that_cannot_be_read_neither_fires_nor_stops_the_others() -> None:
    broken = rule(name="Broken", kind="provider_failures", window_minutes=10, threshold=0)
    rule(name="Fine", kind="provider_failures", window_minutes=10, threshold=0)
    calls(NOW - MINUTE, failed=1)
    # A metric removed from the registry after the rule was saved.
    type(broken).objects.filter(pk=broken.pk).update(kind="metric", metric="gone_metric")
    result = evaluate(NOW)
    assert result.fired == 1
    assert state(broken.pk).status == "error"
    assert AlertEvent.objects.get().rule.name == "Fine"


def test_rules_to_evaluate_are_the_active_ones_and_the_firing_ones() -> None:
    on = rule(name="On", kind="provider_failures", window_minutes=10, threshold=0)
    rule(name="Off", kind="provider_failures", window_minutes=10, threshold=0, active=False)
    assert [item.name for item in selectors.rules_to_evaluate()] == [on.name]
