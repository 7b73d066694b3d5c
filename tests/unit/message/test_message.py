from __future__ import annotations

import pytest

from elemta_core.hooks.types import HeaderChange, HeaderOp
from elemta_core.message.message import Message, format_header, received_hops

RAW = (b"Received: from a\r\n by b\r\nSubject: Hello\r\n\tworld\r\nX-Dup: 1\r\nX-Dup: 2\r\n"
       b"\r\nbody line\r\n")


def test_header_index_and_body_without_copy() -> None:
    m = Message(RAW)
    assert m.headers == [("Received", "from a  by b"), ("Subject", "Hello \tworld"),
                         ("X-Dup", "1"), ("X-Dup", "2")]
    assert m.get("subject") == "Hello \tworld"
    assert m.get_all("x-dup") == ["1", "2"]
    assert bytes(m.body) == b"body line\r\n"
    assert isinstance(m.body, memoryview)


def test_changes_add_on_top_remove_and_replace() -> None:
    m = Message(RAW).with_changes([
        HeaderChange(HeaderOp.ADD, "X-First", "a"),
        HeaderChange(HeaderOp.ADD, "X-Second", "b"),
        HeaderChange(HeaderOp.REMOVE, "X-Dup", index=2),
        HeaderChange(HeaderOp.REPLACE, "Subject", "new"),
    ])
    assert m.raw.startswith(b"X-Second: b\r\nX-First: a\r\nReceived: from a\r\n by b\r\n"
                            b"Subject: new\r\nX-Dup: 1\r\n\r\n")
    assert m.raw.endswith(b"\r\n\r\nbody line\r\n")


def test_header_injection_is_neutralised() -> None:
    assert format_header("X-A", "one\r\nBcc: evil") == b"X-A: one Bcc: evil\r\n"
    assert format_header("X:B\r\n", "v") == b"XB: v\r\n"


def test_message_without_headers_or_body() -> None:
    m = Message(b"no header line here\r\n")
    assert m.headers == [] and bytes(m.body) == b"no header line here\r\n"
    m2 = m.with_changes([HeaderChange(HeaderOp.ADD, "X-A", "1")])
    assert m2.raw == b"X-A: 1\r\n\r\nno header line here\r\n"
    assert Message(b"").with_changes([HeaderChange(HeaderOp.ADD, "X", "1")]).raw == b"X: 1\r\n\r\n"


def test_add_only_fast_path_equals_indexed_path() -> None:
    adds = [HeaderChange(HeaderOp.ADD, "X-A", "1"), HeaderChange(HeaderOp.ADD, "Received", "r")]
    for raw in (RAW, b"\r\nbody\r\n", b"no header line here\r\n", b"", b"X : spaced\r\n\r\nb"):
        fast = Message(raw).with_changes(adds).raw
        indexed = Message(raw)
        assert isinstance(indexed.fields, list)  # builds the header index: the general path
        assert fast == indexed.with_changes(adds).raw, raw


@pytest.mark.parametrize("raw,name,want", [
    (b"Subject: a\r\nAuthentication-Results: x\r\n\r\nbody", "authentication-results", True),
    (b"Subject: a\r\nauthentication-results : x\r\n\r\nbody", "Authentication-Results", True),
    (b"Subject: a\r\n folded Authentication-Results: x\r\n\r\nbody", "Authentication-Results", False),
    (b"Subject: a\r\n\r\nAuthentication-Results: in the body\r\n", "Authentication-Results", False),
    (b"Subject: a\r\n\r\n", "From", False),
])
def test_may_have_scans_the_header_section_only(raw: bytes, name: str, want: bool) -> None:
    assert Message(raw).may_have(name) is want
    parsed = Message(raw)
    parsed.fields  # noqa: B018 - indexed: the answer comes from the index, and agrees
    assert parsed.may_have(name) is want


def test_additions_go_on_top_of_an_indexed_message_too() -> None:
    raw = b"From: a@b\r\nSubject: s\r\n\r\nbody\r\n"
    change = [HeaderChange(HeaderOp.ADD, "X-A", "1"), HeaderChange(HeaderOp.ADD, "X-B", "2")]
    fresh = Message(raw).with_changes(change).raw
    indexed = Message(raw)
    indexed.fields  # noqa: B018
    assert indexed.with_changes(change).raw == fresh == b"X-B: 2\r\nX-A: 1\r\n" + raw


@pytest.mark.parametrize("data,hops", [
    (b"Received: a\r\nreceived : b\r\nX: y\r\n\tReceived: folded, not a field\r\n\r\nReceived: body\r\n", 2),
    (b"Subject: none\r\n\r\n", 0),
    (b"\r\nReceived: all body\r\n", 0),
    (b"Received: no body at all\r\n", 1),
])
def test_received_hops_counts_header_fields_only(data: bytes, hops: int) -> None:
    assert received_hops(data) == hops
