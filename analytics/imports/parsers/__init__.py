"""The three formats, each a generator of `Conversation` or `Problem` over a byte stream.

Every parser streams: fb-grouped with `ijson.kvitems` (one chat id's array in memory at a time),
jsonl one line at a time, csv one row at a time with a bounded buffer of open conversations.
`guess_format` names the format from the file name, or else from its first bytes.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from typing import BinaryIO

from analytics.imports.parsers import fb_grouped, lines
from analytics.imports.records import Conversation, Problem

Parsed = Iterator[Conversation | Problem]

_BY_EXTENSION = {".json": "fb-grouped", ".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv"}


class CountingReader(io.RawIOBase):
    """A binary stream that reports how many bytes were read (the progress bar, the upload limit)."""

    def __init__(self, stream: BinaryIO, on_read: Callable[[int], None] | None = None) -> None:
        super().__init__()
        self._stream = stream
        self._on_read = on_read
        self.count = 0

    def readable(self) -> bool:
        """Always: it only reads."""
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        """Fill `buffer` from the stream, counting."""
        data = self._stream.read(len(buffer))
        size = len(data)
        buffer[:size] = data
        self.count += size
        if self._on_read is not None and size:
            self._on_read(size)
        return size


def guess_format(name: str, head: bytes) -> str | None:
    """The format from the file's extension, else from its first non-blank bytes; None if unsure.

    `{` followed by a key whose value is an array is fb-grouped; `{` on a line of its own object
    is jsonl; a first line naming the `id` and `role` columns is csv.
    """
    lowered = name.lower()
    for extension, format_name in _BY_EXTENSION.items():
        if lowered.endswith(extension):
            return format_name
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if text.startswith(b"{"):
        first_line = text.split(b"\n", 1)[0].rstrip()
        if b'"messages"' in first_line and first_line.endswith(b"}"):
            return "jsonl"
        return "fb-grouped"
    header = text.split(b"\n", 1)[0].lower()
    if b"id" in header and b"role" in header and b"," in header:
        return "csv"
    return None


def parse(format_name: str, stream: BinaryIO, *, gap_hours: float) -> Parsed:
    """The conversations and problems of a stream in `format_name`."""
    if format_name == "fb-grouped":
        return fb_grouped.parse(stream, gap_hours=gap_hours)
    if format_name == "jsonl":
        return lines.parse_jsonl(stream)
    if format_name == "csv":
        return lines.parse_csv(stream)
    raise ValueError(f"unknown format {format_name!r}")
