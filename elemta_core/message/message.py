"""One message buffer with a header index, so hooks never copy the body.

The raw bytes are kept exactly as received (CRLF, dot-unstuffed). Headers are parsed once,
lazily, into (name, value, start, end) spans; changes from plugins are applied once, when
the message is queued.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from typing import NamedTuple

from elemta_core.hooks.types import HeaderChange, HeaderOp

_FIELD_NAME = re.compile(r"[\x21-\x39\x3b-\x7e]+")
_HEADER_LINE = re.compile(rb"[\x21-\x39\x3b-\x7e]+[ \t]*:")


@functools.lru_cache(maxsize=64)
def _field_start(name: str) -> re.Pattern[bytes]:
    return re.compile(rb"^" + re.escape(name.encode("ascii")) + rb"[ \t]*:",
                      re.IGNORECASE | re.MULTILINE)


def _header_end(raw: bytes) -> int:
    """Where the header section of CRLF text ends, found without indexing it."""
    if raw.startswith(b"\r\n"):
        return 0  # no header section
    end = raw.find(b"\r\n\r\n")
    return end + 2 if end >= 0 else len(raw)


def received_hops(raw: bytes) -> int:
    """Received fields in the header section, by a scan in C (runs for every message)."""
    return len(_field_start("Received").findall(raw, 0, _header_end(raw)))


class HeaderField(NamedTuple):
    name: str
    value: str  # unfolded, without the trailing CRLF
    start: int  # byte span of the whole field in ``raw``, CRLF included
    end: int


class Message:
    __slots__ = ("_body_start", "_fields", "raw")

    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        self._fields: list[HeaderField] | None = None
        self._body_start = -1

    @property
    def size(self) -> int:
        return len(self.raw)

    def _parse(self) -> list[HeaderField]:
        raw = self.raw
        fields: list[HeaderField] = []
        pos = 0
        n = len(raw)
        while pos < n:
            if raw.startswith(b"\r\n", pos) or raw.startswith(b"\n", pos):
                pos += 2 if raw[pos] == 13 else 1
                break
            end = pos
            # a field runs until a line that does not start with whitespace
            while True:
                nl = raw.find(b"\n", end)
                if nl < 0:
                    end = n
                    break
                end = nl + 1
                if end >= n or raw[end] not in (32, 9):
                    break
            line = raw[pos:end]
            colon = line.find(b":")
            name_bytes = line[:colon].rstrip(b" \t")
            if colon <= 0 or not name_bytes or any(c < 33 or c > 126 for c in name_bytes):
                # Not a header (e.g. a body without a blank line): the body starts here.
                break
            name = name_bytes.decode("ascii")
            value = (
                line[colon + 1:].decode("utf-8", "surrogateescape")
                .replace("\r\n", "\n").replace("\n", " ").strip()
            )
            fields.append(HeaderField(name, value, pos, end))
            pos = end
        self._fields = fields
        self._body_start = pos
        return fields

    @property
    def fields(self) -> list[HeaderField]:
        return self._fields if self._fields is not None else self._parse()

    @property
    def headers(self) -> list[tuple[str, str]]:
        return [(f.name, f.value) for f in self.fields]

    @property
    def body_offset(self) -> int:
        if self._fields is None:
            self._parse()
        return self._body_start

    @property
    def body(self) -> memoryview:
        return memoryview(self.raw)[self.body_offset:]

    def get(self, name: str, default: str | None = None) -> str | None:
        lname = name.lower()
        for f in self.fields:
            if f.name.lower() == lname:
                return f.value
        return default

    def get_all(self, name: str) -> list[str]:
        lname = name.lower()
        return [f.value for f in self.fields if f.name.lower() == lname]

    def may_have(self, name: str) -> bool:
        """Whether a field ``name`` may be in the header section, without indexing it: False
        is certain, True may be a line the index would not count (a scan in C, for plugins
        that look for a field most messages lack)."""
        if self._fields is not None:
            lname = name.lower()
            return any(f.name.lower() == lname for f in self._fields)
        return _field_start(name).search(self.raw, 0, _header_end(self.raw)) is not None

    def header_bytes(self) -> bytes:
        return self.raw[: self.body_offset]

    def with_changes(self, changes: Iterable[HeaderChange]) -> Message:
        """Return a new message with the changes applied.

        ADD prepends (the last added ends on top, as trace headers do); REPLACE rewrites the
        first occurrence in place and drops the others; REMOVE drops all, or the n-th.
        """
        changes = list(changes)
        if not changes:
            return self
        raw = self.raw
        if all(c.op is HeaderOp.ADD for c in changes) and (
                raw.startswith(b"\r\n") or _HEADER_LINE.match(raw)):
            # Only additions to a message that has a header section: they go on top.
            return Message(b"".join(format_header(c.name, c.value) for c in reversed(changes))
                           + raw)
        fields = self.fields
        names = [f.name.lower() for f in fields]
        kept: list[bytes | None] = [raw[f.start:f.end] for f in fields]
        added: list[tuple[str, bytes]] = []
        for ch in changes:
            lname = ch.name.lower()
            live = [i for i, n in enumerate(names) if n == lname and kept[i] is not None]
            if ch.op is HeaderOp.ADD:
                added.append((lname, format_header(ch.name, ch.value)))
                continue
            if ch.op is HeaderOp.REMOVE and ch.index > 0:
                for i in live[ch.index - 1: ch.index]:
                    kept[i] = None
                continue
            added = [a for a in added if a[0] != lname]
            for i in live:
                kept[i] = None
            if ch.op is HeaderOp.REPLACE:
                new = format_header(ch.name, ch.value)
                if live:
                    kept[live[0]] = new
                else:
                    added.append((lname, new))
        parts = [h for _, h in reversed(added)]
        parts += [h for h in kept if h is not None]
        if fields:
            parts.append(raw[fields[-1].end:])
        else:
            parts.append(raw if self.body_offset > 0 else b"\r\n" + raw)
        return Message(b"".join(parts))


def format_header(name: str, value: str) -> bytes:
    """One header field, CRLF-terminated; CR/LF in a plugin's value cannot inject headers."""
    clean = " ".join(value.replace("\r", " ").replace("\n", " ").split())
    if _FIELD_NAME.fullmatch(name):  # the usual case: nothing to drop
        safe_name = name
    else:
        safe_name = "".join(c for c in name if 33 <= ord(c) <= 126 and c != ":")
    return f"{safe_name}: {clean}\r\n".encode("utf-8", "surrogateescape")
