"""Process liveness (`assistant.liveness`): which replies belong to a dead process, and ending them.

The rules are checked on `OwnerState`s, then through the write path (`turn_begin`, the sweep,
`session_open` and the consumer), with `ServerProcess` rows as a real process writes them and,
for "its pid is gone", a real child process that is killed.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from django.db.models.functions import Now
from django.utils import timezone

from analytics.recovery import sweep_once
from assistant import liveness, services
from assistant.liveness import OwnerState
from assistant.models import ChatMessage, ChatSession, ServerProcess
from assistant.protocol import ClientError
from tests.support.chat import ChatClient, open_client

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.backends]

OTHER = "f" * 32  # another server process


# --- the rules --------------------------------------------------------------------------------
def owner(**fields: object) -> OwnerState:
    values: dict[str, object] = {"process_id": OTHER, "known": True, "heartbeat_age_s": 1.0, "host": "elsewhere"}
    return OwnerState(**(values | fields))  # type: ignore[arg-type]


def test_a_process_heard_recently_is_alive_and_its_replies_are_not_orphaned_even_without_checkpoints(settings) -> None:
    settings.PROCESS_DEAD_AFTER_S = 30
    alive = owner(heartbeat_age_s=29.0)
    assert liveness.process_dead(alive) is False
    assert liveness.reply_orphaned(alive, stale=True, silent=False) is False
    # Silent for longer than any reply may run: its task is gone whatever the process does.
    assert liveness.reply_orphaned(alive, stale=True, silent=True) is True


def test_a_process_whose_heartbeat_is_older_than_the_limit_is_dead(settings) -> None:
    settings.PROCESS_DEAD_AFTER_S = 30
    dead = owner(heartbeat_age_s=31.0)
    assert liveness.process_dead(dead) is True
    assert liveness.reply_orphaned(dead, stale=False, silent=False) is True


def test_a_stopped_process_is_dead_however_fresh_its_heartbeat_even_this_one() -> None:
    assert liveness.process_dead(owner(stopped=True, heartbeat_age_s=0.0)) is True
    assert liveness.process_dead(owner(process_id=liveness.PROCESS_ID, stopped=True)) is True
    assert liveness.process_dead(owner(process_id=liveness.PROCESS_ID, heartbeat_age_s=1000.0)) is False


def test_an_unknown_owner_keeps_the_checkpoint_age_rule() -> None:
    for unknown in (OwnerState(process_id=None), OwnerState(process_id=OTHER, known=False)):
        assert liveness.process_dead(unknown) is None
        assert liveness.reply_orphaned(unknown, stale=False, silent=False) is False
        assert liveness.reply_orphaned(unknown, stale=True, silent=False) is True


@pytest.fixture
def child() -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield process
    process.kill()
    process.wait()


def test_a_process_of_this_host_whose_pid_is_gone_or_reused_is_dead_at_once(child) -> None:
    started = liveness.pid_start(child.pid)
    assert started  # Linux: the pid's start time is known
    same_host = owner(host=liveness.HOST, pid=child.pid, pid_start=started, heartbeat_age_s=0.5)
    assert liveness.process_dead(same_host) is False
    assert liveness.process_dead(owner(host=liveness.HOST, pid=child.pid, pid_start="1", heartbeat_age_s=0.5))
    # This process's own pid under another process id: a predecessor that had the same pid.
    assert liveness.process_dead(owner(host=liveness.HOST, pid=liveness.PID, pid_start=liveness.PID_START))
    # Another host's pids mean nothing here: only its heartbeat counts.
    assert liveness.process_dead(owner(host="elsewhere", pid=child.pid + 100000)) is False
    child.kill()
    child.wait()
    assert liveness.process_dead(same_host) is True


# --- through the write path -------------------------------------------------------------------
async def connected() -> ChatClient:
    client, ok, code = await open_client()
    assert ok, f"connection refused with {code}"
    return client


def new_session() -> ChatSession:
    pending = services.session_open(
        session_id=None, token=None, last_seq=0, identity=None, page=services.PageContext()
    ).session
    return services.session_materialize(session=pending)[0]


def process(process_id: str = OTHER, *, age_s: float = 1.0, stopped: bool = False, **fields: object) -> None:
    """A `ServerProcess` row as another process writes it (its heartbeat `age_s` old)."""
    beat = timezone.now() - timedelta(seconds=age_s)
    values: dict[str, object] = {"host": "elsewhere", "pid": 12345, "pid_start": "", "started_at": beat}
    ServerProcess.objects.update_or_create(
        pk=process_id,
        defaults=values | fields | {"heartbeat_at": beat, "stopped_at": beat if stopped else None},
    )


def streaming_reply(session: ChatSession, *, owner: str | None, client_id: str = "a") -> ChatMessage:
    reply = services.turn_begin(session=session, text="How do I embed the widget?", client_id=client_id)
    assert reply.assistant_message is not None
    ChatMessage.objects.filter(pk=reply.assistant_message.pk).update(owner=owner)
    return reply.assistant_message


def status(message: ChatMessage) -> str:
    return ChatMessage.objects.get(pk=message.pk).status


def test_turn_begin_writes_the_owner_in_the_insert_and_the_server_in_the_session() -> None:
    session = new_session()
    turn = services.turn_begin(session=session, text="Hello", client_id="a")
    assert turn.assistant_message is not None
    assert ChatMessage.objects.get(pk=turn.assistant_message.pk).owner == liveness.PROCESS_ID
    assert ChatMessage.objects.get(pk=turn.user_message.pk).owner is None
    assert ChatSession.objects.get(pk=session.pk).served_by == liveness.PROCESS_ID


def test_a_new_message_is_accepted_at_once_when_the_streaming_reply_belongs_to_a_dead_process(settings) -> None:
    settings.PROCESS_DEAD_AFTER_S = 30
    session = new_session()
    process(age_s=31)
    reply = streaming_reply(session, owner=OTHER)  # checkpointed just now: the old rule waited 15 s
    second = services.turn_begin(session=session, text="Hello?", client_id="b")
    assert second.assistant_message is not None and not second.duplicate
    assert status(reply) == "interrupted"


def test_a_reply_of_a_live_process_blocks_a_new_message_even_past_the_old_stale_threshold(settings) -> None:
    settings.PROCESS_DEAD_AFTER_S = 30
    session = new_session()
    process(age_s=2)
    reply = streaming_reply(session, owner=OTHER)
    ChatMessage.objects.filter(pk=reply.pk).update(updated_at=timezone.now() - services.stale_before() * 2)
    with pytest.raises(ClientError) as refused:
        services.turn_begin(session=session, text="Hello?", client_id="b")
    assert refused.value.code == "reply_in_progress"
    assert status(reply) == "streaming"


def test_a_reply_of_a_process_that_stopped_cleanly_is_ended_by_resuming_the_session() -> None:
    session = new_session()
    process(stopped=True, age_s=0)
    reply = streaming_reply(session, owner=OTHER)
    session_id, token = str(session.public_id), "unused"
    ChatSession.objects.filter(pk=session.pk).update(token_hash=services.hash_token(token))
    opened = services.session_open(
        session_id=session_id, token=token, last_seq=0, identity=None, page=services.PageContext()
    )
    assert [item["seq"] for item in opened.interrupted] == [reply.seq]
    assert [item["status"] for item in opened.history] == ["complete", "interrupted"]
    assert opened.streaming == []
    assert ChatSession.objects.get(pk=session.pk).served_by == liveness.PROCESS_ID


def test_rows_with_no_owner_or_an_unregistered_owner_keep_the_old_time_rule() -> None:
    session, other = new_session(), new_session()
    legacy = streaming_reply(session, owner=None)
    unregistered = streaming_reply(other, owner="0" * 32)
    assert services.replies_interrupt_orphaned(now=timezone.now()) == 0
    later = timezone.now() + services.stale_before() + timedelta(seconds=1)
    assert services.replies_interrupt_orphaned(now=later) == 2
    assert (status(legacy), status(unregistered)) == ("interrupted", "interrupted")


def test_the_sweep_ends_replies_of_dead_processes_and_leaves_live_ones(settings) -> None:
    settings.PROCESS_DEAD_AFTER_S = 30
    process("a" * 32, age_s=40)
    process("b" * 32, age_s=3)
    process("c" * 32, stopped=True)
    replies = {name: streaming_reply(new_session(), owner=name * 32) for name in "abc"}
    assert services.replies_interrupt_orphaned(now=timezone.now()) == 2
    assert {name: status(reply) for name, reply in replies.items()} == {
        "a": "interrupted",
        "b": "streaming",
        "c": "interrupted",
    }


def test_the_startup_pass_of_a_sole_process_orphans_everything_streaming(settings) -> None:
    process(age_s=1)
    fresh = [streaming_reply(new_session(), owner=owner) for owner in (None, OTHER, liveness.PROCESS_ID)]
    assert sweep_once(grace_s=30).orphaned_replies == 0  # several processes: all of them may be alive
    assert sweep_once(grace_s=30, sole_process=True).orphaned_replies == 3
    assert [status(reply) for reply in fresh] == ["interrupted"] * 3


def test_sole_process_means_the_in_memory_channel_layer(settings) -> None:
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    assert liveness.sole_process() is True
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels_redis.core.RedisChannelLayer"}}
    assert liveness.sole_process() is False


def test_the_heartbeat_thread_beats_by_the_database_clock_and_a_clean_stop_ends_this_process_replies(
    settings,
) -> None:
    settings.PROCESS_HEARTBEAT_S = 0.5
    heartbeat = liveness.Heartbeat()
    heartbeat.start()
    try:
        first = ServerProcess.objects.get(pk=liveness.PROCESS_ID)
        assert (first.host, first.pid, first.stopped_at) == (liveness.HOST, liveness.PID, None)
        reply = streaming_reply(new_session(), owner=liveness.PROCESS_ID)
        deadline = time.monotonic() + 5
        while ServerProcess.objects.get(pk=liveness.PROCESS_ID).heartbeat_at == first.heartbeat_at:
            assert time.monotonic() < deadline, "no heartbeat in 5 s"
            time.sleep(0.1)
        assert status(reply) == "streaming"  # its own live process: left alone
        assert services.replies_interrupt_orphaned(now=timezone.now()) == 0
    finally:
        heartbeat.stop()
    assert ServerProcess.objects.get(pk=liveness.PROCESS_ID).stopped_at is not None
    assert status(reply) == "interrupted"


def test_register_forgets_processes_silent_for_a_day() -> None:
    process("a" * 32, age_s=2 * 86400)
    process("b" * 32, age_s=60)
    liveness.register()
    assert set(ServerProcess.objects.values_list("pk", flat=True)) == {"b" * 32, liveness.PROCESS_ID}
    assert ServerProcess.objects.filter(pk=liveness.PROCESS_ID, heartbeat_at__lte=Now()).exists()


# --- what a visitor sees ----------------------------------------------------------------------
@pytest.mark.usefixtures("drain_replies")
async def test_a_visitor_resuming_a_reply_of_a_dead_process_gets_reply_end_interrupted_and_can_send_at_once(
    settings,
) -> None:
    settings.PROCESS_DEAD_AFTER_S = 30
    client = await connected()
    welcome = await client.hello()
    session_id, token = welcome["session_id"], welcome["token"]
    await client.send({"type": "event", "name": "widget_open"})  # writes the pending session
    await client.send({"type": "ping"})
    await client.recv_type("pong")  # frames are handled in order: the event is stored

    @database_sync_to_async
    def crashed_mid_reply() -> ChatMessage:
        """What a killed process leaves: a streaming reply with its checkpoint, a silent heartbeat."""
        session = ChatSession.objects.get(public_id=session_id)
        process(age_s=31)
        reply = streaming_reply(session, owner=OTHER)
        ChatMessage.objects.filter(pk=reply.pk).update(text="Add one script")
        return reply

    reply = await crashed_mid_reply()
    await client.close()

    tab = await connected()
    resumed = await tab.hello(session_id=session_id, token=token, last_seq=1)
    assert [(m["seq"], m["status"], m["text"]) for m in resumed["history"]] == [
        (reply.seq, "interrupted", "Add one script")
    ]
    end = await asyncio.wait_for(tab.recv_type("reply.end"), 2)
    assert (end["seq"], end["message_id"], end["status"]) == (reply.seq, str(reply.public_id), "interrupted")
    assert not any(key.startswith("_") for key in end)
    assert await tab.nothing_more()  # no text repeated: the history held it

    ack, text, done = await tab.say("Hello again", "c2")
    assert (ack["seq"], done["status"]) == (reply.seq + 1, "complete") and text
    await tab.close()


def test_resuming_after_a_restart_ended_the_reply_still_reports_it_and_a_day_later_only_in_history() -> None:
    session = new_session()
    reply = streaming_reply(session, owner=None)
    token = "unused"
    ChatSession.objects.filter(pk=session.pk).update(token_hash=services.hash_token(token))
    assert sweep_once(grace_s=30, sole_process=True).orphaned_replies == 1  # the restarted server's pass

    def resume() -> services.SessionOpened:
        return services.session_open(
            session_id=str(session.public_id), token=token, last_seq=1, identity=None, page=services.PageContext()
        )

    assert [(item["seq"], item["status"]) for item in resume().interrupted] == [(reply.seq, "interrupted")]
    ChatMessage.objects.filter(pk=reply.pk).update(finished_at=timezone.now() - timedelta(days=1))
    later = resume()
    assert later.interrupted == []
    assert [(item["seq"], item["status"]) for item in later.history] == [(reply.seq, "interrupted")]
