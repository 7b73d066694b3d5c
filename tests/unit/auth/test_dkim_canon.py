"""The whitespace helpers swapped into dkimpy: the same bytes as dkimpy's own, always."""

from __future__ import annotations

import itertools
import random

import dkim.canonicalization as canon

from builtin_plugins.auth import dkim_canon
from builtin_plugins.auth.dkim_canon import compress_whitespace, strip_trailing_whitespace

ORIGINAL_COMPRESS = dkim_canon._original_compress
ORIGINAL_STRIP = dkim_canon._original_strip
ALPHABET = (b" ", b"\t", b"\r", b"\n", b"a")


def test_installed_in_dkimpy() -> None:
    import builtin_plugins.auth.dkim_verify  # noqa: F401 - installs on import

    assert canon.compress_whitespace is compress_whitespace
    assert canon.strip_trailing_whitespace is strip_trailing_whitespace


def test_every_short_input_gives_dkimpys_bytes() -> None:
    for n in range(8):
        for parts in itertools.product(ALPHABET, repeat=n):
            text = b"".join(parts)
            assert compress_whitespace(text) == ORIGINAL_COMPRESS(text), text
            assert strip_trailing_whitespace(text) == ORIGINAL_STRIP(text), text


def test_long_random_inputs_give_dkimpys_bytes() -> None:
    rng = random.Random(6376)
    pieces = [*ALPHABET, b"\r\n", b" \r\n", b"\t\r\n", b"  ", b"word", b"\x00", b"\xa0", b"\x0b"]
    for _ in range(300):
        text = b"".join(rng.choice(pieces) for _ in range(rng.randrange(1, 400)))
        assert compress_whitespace(text) == ORIGINAL_COMPRESS(text)
        assert strip_trailing_whitespace(text) == ORIGINAL_STRIP(text)


def test_relaxed_canonicalisation_is_unchanged() -> None:
    body = b"Hello  Bob,\t \r\n \r\n\tsee you. \r\n\r\n\r\n"
    headers = [(b"Subject", b" a \t b\r\n  c "), (b"From", b"x@y")]
    got = (canon.Relaxed.canonicalize_body(body), canon.Relaxed.canonicalize_headers(headers))
    canon.compress_whitespace, canon.strip_trailing_whitespace = ORIGINAL_COMPRESS, ORIGINAL_STRIP
    try:
        want = (canon.Relaxed.canonicalize_body(body),
                canon.Relaxed.canonicalize_headers(headers))
    finally:
        dkim_canon.install()
    assert got == want
    assert got[0] == b"Hello Bob,\r\n\r\n see you.\r\n"


def test_btag_pattern_matches_where_dkimpys_does() -> None:
    import dkim

    from builtin_plugins.auth.dkim_canon import ORIGINAL_RE_BTAG, RE_BTAG

    assert dkim.RE_BTAG is RE_BTAG
    rng = random.Random(8617)
    pieces = [b";", b" ", b"b", b"=", b"\r\n", b"\n", b"\r", b"\t", b"A", b"h", b"b=", b"; b=",
              b"+/", b"\x0b", b"\x0c", b"-", b"\r\n ", b"bh=", b"0", b"z"]
    for _ in range(20000):
        text = b"".join(rng.choice(pieces) for _ in range(rng.randrange(0, 40)))
        assert RE_BTAG.sub(rb"\1", text) == ORIGINAL_RE_BTAG.sub(rb"\1", text), text
        assert [m.span() for m in RE_BTAG.finditer(text)] == \
            [m.span() for m in ORIGINAL_RE_BTAG.finditer(text)], text
    for n in range(6):
        for parts in itertools.product((b";", b" ", b"b", b"=", b"\r", b"\n", b"A"), repeat=n):
            text = b"".join(parts)
            assert RE_BTAG.sub(rb"\1", text) == ORIGINAL_RE_BTAG.sub(rb"\1", text), text


def _parse(fn: object, message: bytes) -> object:
    try:
        return fn(message)  # type: ignore[operator]
    except Exception as e:  # noqa: BLE001 - the same exception is the expected result
        return (type(e), str(e))


def test_rfc822_parse_gives_dkimpys_result() -> None:
    import dkim

    import builtin_plugins.auth.dkim_verify  # noqa: F401 - installs on import

    assert dkim.rfc822_parse is dkim_canon.rfc822_parse
    rng = random.Random(5322)
    lines = [b"Subject: x", b"From: a@b", b"X-Empty:", b" folded", b"\tfolded", b"From mbox",
             b"bad header line", b"", b"body.", b"a:b:c", b"\x7f: nope", b": empty name"]
    ends = [b"\r\n", b"\n", b"\r", b"\r\r\n"]
    for _ in range(3000):
        msg = b"".join(rng.choice(lines) + rng.choice(ends if rng.random() < 0.2 else ends[:1])
                       for _ in range(rng.randrange(0, 12)))
        assert _parse(dkim_canon.rfc822_parse, msg) == _parse(dkim_canon.ORIGINAL_RFC822_PARSE,
                                                              msg), msg
