"""Validation of client frames and the shape of error frames."""

from __future__ import annotations

import json
from typing import Any

import pytest

from assistant import protocol
from assistant.protocol import ClientError, decode_frame


def decode(frame: dict[str, Any]) -> dict[str, Any]:
    return decode_frame(json.dumps(frame))


def refusal(frame: dict[str, Any] | str) -> ClientError:
    """The ClientError raised for `frame`."""
    text = frame if isinstance(frame, str) else json.dumps(frame)
    with pytest.raises(ClientError) as caught:
        decode_frame(text)
    return caught.value


# --- minimal valid frames -----------------------------------------------------------------------
@pytest.mark.parametrize(
    "frame",
    [
        {"type": "hello"},
        {"type": "message", "text": "Hi", "client_id": "c-1"},
        {"type": "stop"},
        {"type": "feedback", "message_id": "0b9c6a7e-2b1a-4c53-9d55-4f8e5d1e2a10", "rating": "up"},
        {"type": "rating", "score": 5},
        {"type": "event", "name": "widget.open"},
        {"type": "end"},
        {"type": "ping"},
    ],
    ids=lambda frame: frame["type"],
)
def test_decode_accepts_minimal_frame_of_each_type(frame: dict[str, Any]) -> None:
    assert decode(frame) == frame


def test_decode_accepts_full_hello_frame() -> None:
    frame = {
        "type": "hello",
        "session_id": "0b9c6a7e-2b1a-4c53-9d55-4f8e5d1e2a10",
        "token": "t" * 128,
        "last_seq": 0,
        "identity": {
            "user_id": "u-42",
            "name": "Ada",
            "email": "ada@example.com",
            "user_type": "client",
            "issued_at": 1767225600,
            "signature": "ab" * 32,
        },
        "page": {"url": "https://shop.example/help", "title": "Help", "referrer": "https://search.example/"},
        "locale": "en-GB",
    }
    assert decode(frame) == frame


def test_decode_accepts_full_feedback_rating_and_event_frames() -> None:
    feedback = {"type": "feedback", "message_id": "m", "rating": "down", "reason": "wrong", "comment": "Outdated."}
    rating = {"type": "rating", "score": 1, "resolved": False, "comment": "Slow."}
    event = {"type": "event", "name": "link.click", "data": {"href": "https://x.example", "n": [1, 2]}}
    assert decode(feedback) == feedback
    assert decode(rating) == rating
    assert decode(event) == event


def test_decode_drops_optional_null_fields() -> None:
    frame = {"type": "hello", "session_id": None, "token": None, "last_seq": None, "page": None, "identity": None}
    assert decode(frame) == {"type": "hello"}


def test_decode_drops_optional_null_fields_inside_nested_objects() -> None:
    frame = {"type": "hello", "page": {"url": "https://a.example/", "title": None}}
    assert decode(frame) == {"type": "hello", "page": {"url": "https://a.example/"}}


# --- malformed frames -------------------------------------------------------------------------
def test_decode_refuses_invalid_json() -> None:
    assert refusal("{not json").code == protocol.INVALID_JSON


@pytest.mark.parametrize(("text", "kind"), [("[1, 2]", "an array"), ('"hello"', "a string"), ("null", "null")])
def test_decode_refuses_non_object_naming_its_kind(text: str, kind: str) -> None:
    error = refusal(text)
    assert error.code == protocol.INVALID_FRAME
    assert error.detail == f"Frame must be a JSON object, got {kind}."


def test_decode_refuses_frame_without_type() -> None:
    error = refusal({"text": "hi"})
    assert (error.code, error.field) == (protocol.INVALID_FRAME, "type")


def test_decode_refuses_non_string_type() -> None:
    error = refusal({"type": 3})
    assert (error.code, error.field) == (protocol.INVALID_FRAME, "type")


def test_decode_refuses_unknown_type_listing_known_ones() -> None:
    error = refusal({"type": "subscribe"})
    assert error.code == protocol.UNKNOWN_TYPE
    assert error.detail == (
        "Unknown frame type 'subscribe'; expected one of: contact, end, event, feedback, handoff, hello, "
        "message, ping, rating, stop, typing."
    )


def test_decode_refuses_unknown_top_level_field() -> None:
    error = refusal({"type": "ping", "at": 1})
    assert (error.code, error.field) == (protocol.INVALID_FIELD, "at")
    assert error.detail == "Unknown field 'at' in 'ping'; allowed: no fields."


@pytest.mark.parametrize("nested", ["page", "identity"])
def test_decode_refuses_unknown_nested_field_naming_its_path(nested: str) -> None:
    value = {"x": 1} if nested == "page" else {"user_id": "u-1", "x": 1}
    error = refusal({"type": "hello", nested: value})
    assert error.code == protocol.INVALID_FIELD
    assert error.field == f"{nested}.x"
    assert f"'{nested}.x'" in error.detail


def test_decode_refuses_identity_without_user_id() -> None:
    error = refusal({"type": "hello", "identity": {"name": "Ada"}})
    assert (error.code, error.field) == (protocol.INVALID_FIELD, "identity.user_id")
    assert error.detail == "'identity.user_id' is required in 'hello'."


def test_decode_refuses_identity_with_unknown_user_type() -> None:
    error = refusal({"type": "hello", "identity": {"user_id": "u", "user_type": "admin"}})
    assert error.field == "identity.user_type"
    assert error.detail == "'identity.user_type' must be one of: client, provider."


def test_decode_refuses_nested_value_over_max_length() -> None:
    error = refusal({"type": "hello", "page": {"url": "https://a.example/" + "x" * 2000}})
    assert error.field == "page.url"
    assert error.detail == "'page.url' must be at most 2000 characters."


def test_decode_refuses_page_that_is_not_an_object() -> None:
    error = refusal({"type": "hello", "page": "https://a.example/"})
    assert error.field == "page"
    assert error.detail == "'page' must be an object, got a string."


def test_decode_refuses_missing_required_field() -> None:
    error = refusal({"type": "message", "text": "hi"})
    assert (error.code, error.field) == (protocol.INVALID_FIELD, "client_id")


def test_decode_refuses_required_field_sent_as_null() -> None:
    error = refusal({"type": "message", "text": None, "client_id": "c"})
    assert (error.code, error.field) == (protocol.INVALID_FIELD, "text")


@pytest.mark.parametrize(("value", "kind"), [(True, "a boolean"), (4.0, "a number"), ("4", "a string")])
def test_decode_refuses_integer_field_given_other_kinds(value: object, kind: str) -> None:
    error = refusal({"type": "rating", "score": value})
    assert error.field == "score"
    assert error.detail == f"'score' must be an integer, got {kind}."


def test_decode_refuses_boolean_last_seq() -> None:
    error = refusal({"type": "hello", "last_seq": False})
    assert error.field == "last_seq"


def test_decode_refuses_number_for_boolean_field() -> None:
    error = refusal({"type": "rating", "score": 3, "resolved": 1})
    assert error.field == "resolved"
    assert error.detail == "'resolved' must be a boolean, got a number."


@pytest.mark.parametrize(("score", "detail"), [(0, "'score' must be at least 1."), (6, "'score' must be at most 5.")])
def test_decode_refuses_integer_out_of_bounds(score: int, detail: str) -> None:
    error = refusal({"type": "rating", "score": score})
    assert error.detail == detail


def test_decode_refuses_negative_last_seq() -> None:
    assert refusal({"type": "hello", "last_seq": -1}).field == "last_seq"


def test_decode_refuses_rating_outside_choices() -> None:
    error = refusal({"type": "feedback", "message_id": "m", "rating": "meh"})
    assert error.field == "rating"
    assert error.detail == "'rating' must be one of: up, down."


def test_decode_refuses_client_id_over_64_characters() -> None:
    assert decode({"type": "message", "text": "hi", "client_id": "c" * 64})["client_id"] == "c" * 64
    assert refusal({"type": "message", "text": "hi", "client_id": "c" * 65}).field == "client_id"


def test_decode_accepts_event_data_of_exactly_4096_bytes() -> None:
    data = {"k": "x" * 4087}  # {"k": "…"} is 9 characters around the value
    assert decode({"type": "event", "name": "e", "data": data})["data"] == data


def test_decode_refuses_event_data_over_4096_bytes() -> None:
    error = refusal({"type": "event", "name": "e", "data": {"k": "x" * 4088}})
    assert (error.code, error.field) == (protocol.INVALID_FIELD, "data")
    assert error.detail == "'data' must be at most 4096 bytes of JSON."


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity"])
def test_decode_refuses_non_standard_number_tokens(token: str) -> None:
    refusal('{"type": "event", "name": "e", "data": {"x": ' + token + "}}")


# --- error frames -----------------------------------------------------------------------------
def test_error_frame_has_only_code_and_detail_by_default() -> None:
    error = ClientError(protocol.EMPTY_MESSAGE, "Message is empty.")
    assert error.frame() == {"type": "error", "code": "empty_message", "detail": "Message is empty."}


def test_error_frame_rounds_retry_after_up_to_tenths() -> None:
    """Rounded up (bench/abuse.py): a client waiting a rounded-down `retry_after` was refused again."""
    frame = ClientError(protocol.RATE_LIMITED, "Slow down.", retry_after=2.34).frame()
    assert frame == {"type": "error", "code": "rate_limited", "detail": "Slow down.", "retry_after": 2.4}
    assert ClientError(protocol.RATE_LIMITED, "Slow down.", retry_after=0.96).frame()["retry_after"] == 1.0
    assert ClientError(protocol.RATE_LIMITED, "Slow down.", retry_after=3.0).frame()["retry_after"] == 3.0


def test_error_frame_never_says_retry_after_zero() -> None:
    assert ClientError(protocol.RATE_LIMITED, "Now.", retry_after=0.0).frame()["retry_after"] == 0.1
    assert ClientError(protocol.RATE_LIMITED, "Now.", retry_after=0.04).frame()["retry_after"] == 0.1


def test_error_frame_includes_client_id_and_field_when_set() -> None:
    error = ClientError(protocol.MESSAGE_TOO_LONG, "Too long.", client_id="c-7", field="text")
    assert error.frame() == {
        "type": "error",
        "code": "message_too_long",
        "detail": "Too long.",
        "client_id": "c-7",
        "field": "text",
    }


def test_error_from_decode_carries_field_into_frame() -> None:
    frame = refusal({"type": "rating", "score": 9}).frame()
    assert frame == {"type": "error", "code": "invalid_field", "detail": "'score' must be at most 5.", "field": "score"}


@pytest.mark.parametrize("number", [2**63, -(2**63) - 1, 10**30])
def test_decode_refuses_event_data_numbers_beyond_64_bits_which_the_channel_layer_cannot_carry(number: int) -> None:
    with pytest.raises(ClientError) as caught:
        decode_frame(json.dumps({"type": "event", "name": "x", "data": {"deep": [{"n": number}]}}))
    assert (caught.value.code, caught.value.field) == ("invalid_field", "data")
    assert decode_frame(json.dumps({"type": "event", "name": "x", "data": {"n": 2**63 - 1}}))["data"]["n"] == 2**63 - 1
