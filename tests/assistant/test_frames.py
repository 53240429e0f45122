"""Server frames: one typed constructor each (`assistant.protocol.frames`), and nothing else makes them."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import NotRequired, get_origin, get_type_hints

from assistant.protocol import frames

ROOT = Path(__file__).resolve().parents[2]
#: Channel-layer messages between consumers and processes; never sent to a client.
LAYER_MESSAGES = {"chat.frames", "chat.event", "chat.stop", "chat.snapshot_request", "control.close", "desk.frame"}


def keys_of(typed_dict: type) -> tuple[set[str], set[str]]:
    """(required keys, all keys) of a TypedDict."""
    hints = get_type_hints(typed_dict, include_extras=True)
    required = {key for key, hint in hints.items() if get_origin(hint) is not NotRequired}
    return required, set(hints)


def test_constructors_fill_exactly_the_declared_shape_required_keys_always_optional_ones_when_given() -> None:
    cases = [
        (frames.ErrorFrame, frames.error("x", "y"), frames.error("x", "y", retry_after=1.0, client_id="c", field="f")),
        (
            frames.AckFrame,
            frames.ack(client_id="c", seq=1, message_id="m", created_at="t"),
            frames.ack(client_id="c", seq=1, message_id="m", created_at="t", asks_for_person=True),
        ),
        (
            frames.ReplyStartFrame,
            frames.reply_start(seq=2, message_id="m", reply_to=1),
            frames.reply_start(seq=3, message_id="m", reply_to=1, retry_of=2),
        ),
        (frames.ReplyDeltaFrame, frames.reply_delta(seq=2, text="hi"), None),
        (
            frames.ReplyEndFrame,
            frames.reply_end(seq=2, message_id="m", status="complete"),
            frames.reply_end(seq=2, message_id="m", status="failed", error="provider_unavailable"),
        ),
        (
            frames.WelcomeFrame,
            frames.welcome(
                session_id="s",
                status="open",
                title="",
                history=[],
                history_truncated=False,
                config={"max_chars": 1, "quick_replies": [], "greeting": ""},
            ),
            frames.welcome(
                session_id="s",
                status="open",
                title="",
                history=[],
                history_truncated=False,
                config={"max_chars": 1, "quick_replies": [], "greeting": ""},
                token="t",
            ),
        ),
    ]
    for shape, minimal, full in cases:
        required, every = keys_of(shape)
        assert set(minimal) == required, shape.__name__
        if full is not None:
            assert set(full) == every, shape.__name__


def test_delivery_fields_never_reach_a_client() -> None:
    end = frames.reply_end(seq=2, message_id="m", status="complete", text="the whole reply")
    delta = frames.stream_delta(seq=2, text="the", offset=0)
    announce = frames.feedback_ack(message_id="m", rating="up", others=True)
    assert end["_text"] == "the whole reply" and delta["_offset"] == 0 and announce["_others"] is True
    for frame in (end, delta, announce):
        assert not [key for key in frames.client_view(frame) if key.startswith("_")]


def test_no_module_of_the_chat_writes_a_client_frame_by_hand() -> None:
    """Every `{"type": ...}` literal outside protocol/frames.py is a channel-layer message.

    The vendor adapters (`assistant/providers/`) are left out: their dicts are the vendors'
    request bodies (OpenAI's `response_format: {"type": "json_schema"}`), never a frame.
    """
    offenders = []
    for path in sorted((ROOT / "assistant").rglob("*.py")):
        if path.name == "frames.py" or "migrations" in path.parts or "providers" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.Dict):
                continue
            for key, value in zip(node.keys, node.values, strict=True):
                if (
                    isinstance(key, ast.Constant)
                    and key.value == "type"
                    and isinstance(value, ast.Constant)
                    and value.value not in LAYER_MESSAGES
                ):
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} {value.value!r}")
    assert offenders == []
