"""Human handoff writes (`assistant.handoff.services`): states, guards, idempotency and races."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.utils import timezone

from assistant import services as chat
from assistant.handoff import selectors, services
from assistant.models import AgentPresence, ChatMessage, ChatSession, ContactRequest, Handoff
from assistant.protocol import ClientError
from tests.assistant.test_services import new_session, outcome, race

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.backends]

State = ChatSession.Handoff


def code_of(call) -> tuple[str, str | None]:
    with pytest.raises(ClientError) as caught:
        call()
    return caught.value.code, caught.value.field


def test_the_migration_makes_the_support_agents_group_with_use_desk(make_agent) -> None:
    call_command("migrate", "assistant", "0005", verbosity=0)
    assert not Group.objects.filter(name="Support agents").exists()
    # Every app forward: going back also unapplied the later apps' migrations that depend on it.
    call_command("migrate", verbosity=0)
    group = Group.objects.get(name="Support agents")
    assert list(group.permissions.values_list("codename", flat=True)) == ["use_desk"]
    users = get_user_model().objects
    staff = users.create_user(username="staff", password="x", is_staff=True)
    boss = users.create_superuser(username="boss", password="x")
    inactive = make_agent("gone", available=False)
    inactive.is_active = False
    inactive.save()
    assert selectors.can_use_desk(make_agent("ada", available=False))
    assert selectors.can_use_desk(boss) and not selectors.can_use_desk(staff) and not selectors.can_use_desk(inactive)


def test_asking_with_nobody_available_is_unavailable_and_still_counted() -> None:
    session = new_session()
    requested = services.handoff_request(session=session, reason="billing")
    assert requested.view.state == "unavailable" and not requested.created
    [handoff] = Handoff.objects.all()
    assert (handoff.outcome, handoff.reason, handoff.ended_at is not None) == ("unavailable", "billing", True)
    assert ChatSession.objects.get(pk=session.pk).handoff_state == State.AI


def test_only_fresh_available_agents_who_may_use_the_desk_count(make_agent) -> None:
    session = new_session()
    away = make_agent("away", available=False)
    services.presence_set(user=away, available=False)
    stale = make_agent("stale")
    AgentPresence.objects.filter(user=stale).update(seen_at=timezone.now() - timedelta(seconds=91))
    plain = get_user_model().objects.create_user(username="plain", password="x")
    services.presence_set(user=plain, available=True)  # switched on, but may not use the desk
    assert selectors.agents_available() == 0
    assert services.handoff_request(session=session, reason="").view.state == "unavailable"
    make_agent("ada")
    assert selectors.agents_available() == 1
    assert services.handoff_request(session=session, reason="").view.state == "waiting"


def test_waiting_visitors_are_queued_in_the_order_they_asked(make_agent) -> None:
    make_agent()
    first, second = new_session(), new_session()
    assert services.handoff_request(session=first, reason="").view.position == 1
    assert services.handoff_request(session=second, reason="").view.position == 2
    again = services.handoff_request(session=second, reason="again")
    assert (again.created, again.view.state, again.view.position) == (False, "waiting", 2)
    assert Handoff.objects.filter(outcome="open").count() == 2
    assert ChatSession.objects.get(pk=first.pk).handoff_state == State.WAITING


def test_claim_assigns_once_and_a_second_agent_is_told_already_claimed(make_agent) -> None:
    ada, bob = make_agent("ada", first_name="Ada"), make_agent("bob")
    session = new_session()
    services.handoff_request(session=session, reason="")
    changed = services.claim(session_id=str(session.public_id), agent=ada)
    assert (changed.previous_state, changed.session.handoff_state) == (State.WAITING, State.ASSIGNED)
    assert code_of(lambda: services.claim(session_id=str(session.public_id), agent=bob)) == (
        "already_claimed",
        "session_id",
    )
    assert services.claim(session_id=str(session.public_id), agent=ada).session.assigned_agent_id == ada.pk
    handoff = Handoff.objects.get()
    assert (handoff.agent_id, handoff.assigned_at is not None, handoff.outcome) == (ada.pk, True, "open")
    view = selectors.handoff_view(session=ChatSession.objects.get(pk=session.pk))
    assert (view.state, view.agent_name) == ("assigned", "Ada")


def test_claims_racing_for_one_conversation_give_exactly_one_claim(make_agent) -> None:
    agents = [make_agent(f"agent{i}") for i in range(6)]
    session = new_session()
    services.handoff_request(session=session, reason="")
    results = race(6, lambda i: services.claim(session_id=str(session.public_id), agent=agents[i]))
    won = [result for result in results if isinstance(result, services.Changed)]
    lost = [result for result in results if isinstance(result, ClientError)]
    assert len(won) == 1 and len(lost) == 5, results
    assert {error.code for error in lost} == {"already_claimed"}
    assert ChatSession.objects.get(pk=session.pk).assigned_agent_id == won[0].session.assigned_agent.pk


def test_a_claim_without_a_request_is_a_takeover_with_its_own_handoff(make_agent) -> None:
    ada = make_agent()
    session = new_session()
    changed = services.claim(session_id=str(session.public_id), agent=ada)
    assert changed.previous_state == State.AI and changed.handoff is not None
    assert changed.handoff.reason == "taken over at the desk" and changed.handoff.assigned_at is not None


def test_release_handback_and_resolve_move_the_state_and_end_the_handoff(make_agent) -> None:
    ada = make_agent()
    session = new_session()
    sid = str(session.public_id)
    services.handoff_request(session=session, reason="")
    services.claim(session_id=sid, agent=ada)
    assert services.release(session_id=sid, agent=ada).session.handoff_state == State.WAITING
    assert ChatSession.objects.get(pk=session.pk).assigned_agent_id is None
    services.claim(session_id=sid, agent=ada)
    assert services.handback(session_id=sid, agent=ada).session.handoff_state == State.AI
    assert Handoff.objects.get().outcome == "handed_back"
    services.claim(session_id=sid, agent=ada)  # a takeover: a new handoff
    services.resolve(session_id=sid, agent=ada)
    assert sorted(Handoff.objects.values_list("outcome", flat=True)) == ["handed_back", "resolved"]
    assert ChatSession.objects.get(pk=session.pk).handoff_state == State.RESOLVED


def test_only_the_assigned_agent_acts_on_a_conversation(make_agent) -> None:
    ada, bob = make_agent("ada"), make_agent("bob")
    session = new_session()
    sid = str(session.public_id)
    services.claim(session_id=sid, agent=ada)
    for action in (services.release, services.handback, services.resolve):
        assert code_of(lambda action=action: action(session_id=sid, agent=bob)) == ("forbidden", "session_id")
    assert code_of(lambda: services.agent_message(session_id=sid, agent=bob, text="hi", client_id="c")) == (
        "forbidden",
        "session_id",
    )
    assert code_of(lambda: services.release(session_id="5f0c2f53-0000-4000-8000-000000000000", agent=ada)) == (
        "not_found",
        "session_id",
    )
    assert code_of(lambda: services.claim(session_id="nope", agent=ada)) == ("invalid_field", "session_id")


def test_transfer_goes_only_to_someone_who_may_use_the_desk(make_agent) -> None:
    ada, bob = make_agent("ada"), make_agent("bob", available=False)
    outsider = get_user_model().objects.create_user(username="outsider", password="x")
    session = new_session()
    sid = str(session.public_id)
    services.claim(session_id=sid, agent=ada)
    assert code_of(lambda: services.transfer(session_id=sid, agent=ada, to_user_id=outsider.pk)) == (
        "invalid_field",
        "agent_id",
    )
    services.transfer(session_id=sid, agent=ada, to_user_id=bob.pk)
    assert ChatSession.objects.get(pk=session.pk).assigned_agent_id == bob.pk
    assert Handoff.objects.get().agent_id == bob.pk
    assert code_of(lambda: services.release(session_id=sid, agent=ada))[0] == "forbidden"


def test_agent_messages_are_durable_idempotent_and_stamp_the_first_response(make_agent) -> None:
    ada = make_agent("ada", first_name="Ada")
    session = new_session()
    sid = str(session.public_id)
    services.handoff_request(session=session, reason="")
    services.claim(session_id=sid, agent=ada)
    first, duplicate = services.agent_message(session_id=sid, agent=ada, text="Hello, I'm Ada.", client_id="k1")
    again, repeated = services.agent_message(session_id=sid, agent=ada, text="Hello, I'm Ada.", client_id="k1")
    assert (duplicate, repeated, again.pk) == (False, True, first.pk)
    assert (first.role, first.author_id, first.author_name, first.seq) == ("agent", ada.pk, "Ada", 1)
    stamped = Handoff.objects.get().first_response_at
    services.agent_message(session_id=sid, agent=ada, text="Anything else?", client_id="k2")
    assert Handoff.objects.get().first_response_at == stamped is not None
    assert list(ChatMessage.objects.values_list("seq", "role")) == [(1, "agent"), (2, "agent")]
    assert code_of(lambda: services.agent_message(session_id=sid, agent=ada, text="x", client_id="k" * 41)) == (
        "invalid_field",
        "client_id",
    )


def test_a_visitor_turn_while_a_person_answers_stores_no_ai_placeholder(make_agent) -> None:
    ada = make_agent()
    session = new_session()
    before = chat.turn_begin(session=ChatSession.objects.get(pk=session.pk), text="Hi", client_id="v1")
    assert before.assistant_message is not None and before.assistant_message.seq == 2
    chat.reply_finish(message_id=before.assistant_message.pk, outcome=outcome("Hello!"))
    services.claim(session_id=str(session.public_id), agent=ada)
    during = chat.turn_begin(session=ChatSession.objects.get(pk=session.pk), text="Are you there?", client_id="v2")
    assert (during.assistant_message, during.user_message.seq, during.duplicate) == (None, 3, False)
    assert ChatSession.objects.get(pk=session.pk).last_seq == 3
    services.handback(session_id=str(session.public_id), agent=ada)
    after = chat.turn_begin(session=ChatSession.objects.get(pk=session.pk), text="Thanks", client_id="v3")
    assert (after.user_message.seq, after.assistant_message.seq) == (4, 5)


def test_visitors_may_not_use_the_desks_client_id_space() -> None:
    session = new_session()
    with pytest.raises(ClientError) as caught:
        chat.turn_begin(session=session, text="Hi", client_id="desk:1:k1")
    assert (caught.value.code, caught.value.field) == ("invalid_field", "client_id")


def test_contact_requests_need_a_valid_email() -> None:
    session = new_session()
    assert code_of(lambda: services.contact_store(session=session, email="not-an-email", name="", message="")) == (
        "invalid_field",
        "email",
    )
    services.contact_store(session=session, email="ana@example.com", name="Ana", message="Call me")
    assert list(ContactRequest.objects.values_list("email", "name", "message")) == [
        ("ana@example.com", "Ana", "Call me")
    ]


def test_ending_while_waiting_abandons_the_request(make_agent) -> None:
    make_agent()
    session = new_session()
    services.handoff_request(session=session, reason="")
    assert services.abandon_waiting(session_pk=session.pk) is True
    assert services.abandon_waiting(session_pk=session.pk) is False
    assert Handoff.objects.get().outcome == "abandoned"
    assert ChatSession.objects.get(pk=session.pk).handoff_state == State.AI


def test_outside_business_hours_nobody_answers_even_with_agents_available(settings, make_agent) -> None:
    from project import hours

    make_agent()
    settings.BUSINESS_HOURS_TZ = "Europe/Berlin"
    settings.BUSINESS_HOURS = hours.parse("mon-fri 09:00-17:00")
    monday_noon = datetime(2026, 3, 23, 11, 0, tzinfo=UTC)
    saturday = datetime(2026, 3, 28, 11, 0, tzinfo=UTC)
    assert services.handoff_request(session=new_session(), reason="", now=saturday).view.state == "unavailable"
    assert services.handoff_request(session=new_session(), reason="", now=monday_noon).view.state == "waiting"


def test_a_conversation_whose_agent_left_can_be_claimed_by_another(make_agent) -> None:
    ada, bob, cy = make_agent("ada"), make_agent("bob"), make_agent("cy")
    first, second = new_session(), new_session()
    services.claim(session_id=str(first.public_id), agent=ada)
    services.claim(session_id=str(second.public_id), agent=bob)
    ada.delete()  # the account is gone: assigned_agent becomes NULL, the state stays `assigned`
    bob.is_active = False
    bob.save()
    for session in (first, second):
        changed = services.claim(session_id=str(session.public_id), agent=cy)
        assert (changed.previous_state, changed.session.assigned_agent_id) == (State.ASSIGNED, cy.pk)


def test_people_who_may_not_use_the_desk_cannot_act_and_texts_are_bounded(make_agent) -> None:
    ada = make_agent("ada")
    plain = get_user_model().objects.create_user(username="plain", password="x")
    session = new_session()
    sid = str(session.public_id)
    assert code_of(lambda: services.claim(session_id=sid, agent=plain)) == ("forbidden", None)
    assert code_of(lambda: services.note_add(session_id=sid, agent=plain, text="hi")) == ("forbidden", None)
    services.claim(session_id=sid, agent=ada)
    assert code_of(lambda: services.transfer(session_id=sid, agent=plain, to_user_id=ada.pk)) == ("forbidden", None)
    too_long = "x" * (services.MAX_AGENT_TEXT + 1)
    assert code_of(lambda: services.agent_message(session_id=sid, agent=ada, text=too_long, client_id="k")) == (
        "invalid_field",
        "text",
    )
    assert code_of(lambda: services.agent_message(session_id=sid, agent=ada, text="  ", client_id="k")) == (
        "invalid_field",
        "text",
    )
    long_note = "x" * (services.MAX_NOTE_TEXT + 1)
    assert code_of(lambda: services.note_add(session_id=sid, agent=ada, text=long_note)) == ("invalid_field", "text")
    note = services.note_add(session_id=sid, agent=ada, text="Asked for a refund twice")
    assert (note.author_id, note.text) == (ada.pk, "Asked for a refund twice")


def test_one_conversation_may_ask_for_a_person_only_so_often() -> None:
    session = new_session()
    for _ in range(services.MAX_HANDOFFS_PER_SESSION):
        assert services.handoff_request(session=session, reason="").view.state == "unavailable"
    assert code_of(lambda: services.handoff_request(session=session, reason=""))[0] == "limit_reached"
    assert Handoff.objects.count() == services.MAX_HANDOFFS_PER_SESSION
