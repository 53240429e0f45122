"""Hypothesis strategies for hostile `/ws/chat/` frames, shared by the fuzz test and bench/fuzz.py.

A frame is the text a client sends. The strategies mix frames that are nearly right (every
frame type, with its fields given wrong types, out-of-range numbers, extra keys) with ones that
are plainly wrong (broken JSON, non-objects, deep nesting), and spell text with JSON escapes so
that lone UTF-16 surrogates, NUL and other control characters reach the server.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from assistant.protocol import FRAME_FIELDS, NESTED_FIELDS

#: Every code point, surrogates (category Cs) and controls (Cc) included.
ANY_CHARACTER = st.characters(codec=None, categories=None)
TEXT = st.text(ANY_CHARACTER, max_size=60) | st.sampled_from(["", " ", "\x00", "\ud800", "x\udfff", "😀", "ｈｉ"])
HUGE_INT = st.integers(min_value=-(10**40), max_value=10**40)
NUMBER = (
    HUGE_INT
    | st.integers(min_value=-3, max_value=2**31 + 3)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from([0, -1, 1, 5, 6, 2**31 - 1, 2**31, 2**63, 1.0, 1e300])
)
SCALAR = st.none() | st.booleans() | NUMBER | TEXT
JSON_VALUE = st.recursive(
    SCALAR,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(TEXT, children, max_size=4),
    max_leaves=12,
)
UUIDISH = st.uuids().map(str) | TEXT


def _field_value(kind: Any) -> st.SearchStrategy[Any]:
    """A value that is usually of the field's type, sometimes of any type."""
    right: st.SearchStrategy[Any]
    if kind is str:
        right = TEXT | UUIDISH | st.text(max_size=3000)
    elif kind is int:
        right = NUMBER
    elif kind is bool:
        right = st.booleans()
    elif kind is dict:
        right = st.dictionaries(TEXT, JSON_VALUE, max_size=5)
    else:
        right = JSON_VALUE
    return st.one_of(right, right, JSON_VALUE)


@st.composite
def _typed_frame(draw: st.DrawFn) -> dict[str, Any]:
    """A frame of a known type: some of its fields, a nested object, maybe an unknown key."""
    frame_type = draw(st.sampled_from(sorted(FRAME_FIELDS)))
    frame: dict[str, Any] = {"type": frame_type}
    for name, spec in FRAME_FIELDS[frame_type].items():
        if spec.required or draw(st.booleans()):
            nested = NESTED_FIELDS.get((frame_type, name))
            if nested is not None and draw(st.booleans()):
                frame[name] = {
                    key: draw(_field_value(inner.kind)) for key, inner in nested.items() if draw(st.booleans())
                }
            else:
                frame[name] = draw(_field_value(spec.kind))
    if draw(st.integers(0, 9)) == 0:
        frame[draw(TEXT)] = draw(JSON_VALUE)
    if draw(st.integers(0, 9)) == 0:
        frame["type"] = draw(JSON_VALUE)
    return frame


def _encode(value: Any, ascii_only: bool) -> str:
    """JSON text; with `ascii_only`, surrogates and controls travel as \\uXXXX escapes."""
    return json.dumps(value, ensure_ascii=ascii_only, allow_nan=False)


@st.composite
def _encoded(draw: st.DrawFn, values: st.SearchStrategy[Any]) -> str:
    value = draw(values)
    # A lone surrogate cannot be sent as UTF-8 text, only as an escape inside the JSON.
    return _encode(value, ascii_only=True) if draw(st.booleans()) or _needs_escapes(value) else _encode(value, False)


def _needs_escapes(value: Any) -> bool:
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


DEEP = st.integers(min_value=50, max_value=5000).flatmap(
    lambda depth: st.sampled_from(
        [
            "[" * depth + "]" * depth,
            '{"type":"event","name":"x","data":' + '{"a":' * depth + "1" + "}" * depth + "}",
            "[" * depth,
        ]
    )
)
BROKEN = st.sampled_from(
    [
        "",
        "{",
        "nope",
        "null",
        "[]",
        '"hello"',
        "1e999",
        '{"type":"ping",}',
        '{"type":NaN}',
        '{"type":"hello","last_seq":Infinity}',
        '{"type":"hello","last_seq":' + "9" * 5000 + "}",
        '{"type":"message","text":"\\ud800","client_id":"c"}',
        '{"type":"ping","x\\ud800":1}',
        '{"type":"message","text":"a\\u0000b","client_id":"c"}',
        '{"type":"event","name":"n","data":{"\\udfff":1}}',
        '{"type":"hello","page":{"url":"\\ud83d"}}',
        '{"type":"hello","identity":{"user_id":"u","signature":"\\u00e9\\u00e9"}}',
        '{"type":"ping","type":"hello"}',
    ]
)

#: One hostile frame, as the text a client would send.
FRAME = st.one_of(
    _encoded(_typed_frame()),
    _encoded(_typed_frame()),
    _encoded(_typed_frame()),
    _encoded(JSON_VALUE),
    BROKEN,
    DEEP,
    st.text(ANY_CHARACTER.filter(lambda c: not 0xD800 <= ord(c) <= 0xDFFF), max_size=80),
)


#: A last frame's extra field: its `invalid_field` answer names it, so once that answer arrives
#: every frame before it has been handled (the server answers a connection's frames in order).
SENTINEL = "end-of-fuzz"


@dataclass(slots=True)
class Tally:
    """What the server answered."""

    frames: int = 0
    connections: int = 0
    seconds: float = 0.0
    codes: Counter[str] = field(default_factory=Counter)
    closes: Counter[str] = field(default_factory=Counter)
    internal_errors: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        """Frames per second."""
        return self.frames / self.seconds if self.seconds else 0.0


def exchange(url: str, frames: list[str], hello_first: bool, tally: Tally) -> None:
    """One connection: the frames, then the sentinel; read every answer up to the sentinel's."""
    started = time.perf_counter()
    with connect(url, max_size=None, open_timeout=10, close_timeout=2) as ws:
        tally.connections += 1
        try:
            if hello_first:
                ws.send('{"type":"hello"}')
            for frame in frames:
                ws.send(frame)
            ws.send(json.dumps({"type": "ping", SENTINEL: 1}))
            while True:
                answer = json.loads(ws.recv(timeout=15))
                if answer["type"] == "error":
                    tally.codes[answer["code"]] += 1
                    if answer["code"] == "internal_error":
                        tally.internal_errors.append(repr(frames)[:300])
                    if answer.get("field") == SENTINEL:
                        break
        except ConnectionClosed as closed:
            tally.closes[str(closed.rcvd.code if closed.rcvd is not None else "no close frame")] += 1
    tally.frames += len(frames) + 1 + hello_first
    tally.seconds += time.perf_counter() - started
