r"""Parts of dkimpy's message parsing and canonicalisation: same output, less work.

For a small message dkimpy spends most of a verification in a few regex calls, each
doing far more work than its result needs. :func:`install` swaps in equivalents, for the
whole process, of ``dkim.canonicalization``'s module functions (``Relaxed`` calls them by
name) and of ``dkim.RE_BTAG`` and ``dkim.rfc822_parse`` (used by name):

- :func:`compress_whitespace` (``[\t ]+`` → one space, RFC 6376 §3.4.2/§3.4.4) rewrote
  every single space of ordinary text; it now returns text without a tab or two spaces in
  a row as it is, and otherwise replaces only the runs that change: those holding a tab or
  longer than one space (``\t[\t ]*`` or `` [\t ]+``, each taking a whole run, since a run
  starts with a tab or with a space that is, or is not, followed by more).
- :func:`strip_trailing_whitespace` (``[\t ]+\r\n`` → CRLF) started a match attempt at
  every space; it now returns the text as it is unless a space or tab stands right before
  a CRLF (two substring searches), the only place the pattern can match.
- :data:`RE_BTAG`, which blanks the ``b=`` value of the signature being checked, repeated a
  group of nested optional whitespace per character of the value (tens of microseconds
  for one header). Its FWS, ``(?:(?:\s*\r?\n)?\s+)?``, matches exactly any run of
  whitespace, so ``(?:FWS[a-zA-Z0-9+/=])*`` is the longest stretch of whitespace and
  base64 characters that ends in a base64 character: one character class, then one more.
  Every match starts and ends where dkimpy's does, so substitution gives the same bytes.

- :func:`rfc822_parse` (the message split into headers and a CRLF body) split the whole
  message with ``re.split(b"\r?\n")`` to look at its first few lines: ~40 µs of 48 for
  4 KiB. Where every LF follows a CR (Elemta's own messages: bare line ends are normalised
  at the edge) that split is ``bytes.split(b"\r\n")``; otherwise dkimpy's own runs.

Tests compare each with dkimpy's own on exhaustive short inputs and random long ones.
"""

from __future__ import annotations

import re
from typing import Any

import dkim
import dkim.canonicalization as canon

_CHANGING_RUNS = re.compile(b"\t[\t ]*| [\t ]+")
_TRAILING = re.compile(b"[\t ]+\r\n")

#: ``dkim.RE_BTAG``'s matches, found without a repeated group (see the module docstring).
RE_BTAG = re.compile(rb"([;\s]b\s*=)(?:[\sa-zA-Z0-9+/=]*[a-zA-Z0-9+/=])?(?:\r?\n\Z)?")

_original_compress: Any = getattr(canon.compress_whitespace, "__wrapped_dkimpy__",
                                  canon.compress_whitespace)
_original_strip: Any = getattr(canon.strip_trailing_whitespace, "__wrapped_dkimpy__",
                               canon.strip_trailing_whitespace)
#: dkimpy's own (install() runs after this module's import; the tests compare against it).
ORIGINAL_RE_BTAG: re.Pattern[bytes] = dkim.RE_BTAG
ORIGINAL_RFC822_PARSE: Any = getattr(dkim.rfc822_parse, "__wrapped_dkimpy__", dkim.rfc822_parse)
_HEADER_NAME = re.compile(rb"([\x21-\x7e]+?):")


def rfc822_parse(message: bytes) -> tuple[list[list[bytes]], bytes]:
    """``dkim.rfc822_parse``: ([name, value + CRLF] per header field, the body CRLF-joined)."""
    if message.count(b"\n") != message.count(b"\r\n"):
        return ORIGINAL_RFC822_PARSE(message)  # type: ignore[no-any-return]
    if message.startswith(b"\r\n"):
        return [], message[2:]
    end = message.find(b"\r\n\r\n")
    if end < 0:  # no body: every line is a header line
        lines, body = message.split(b"\r\n"), None
    else:  # CRLF only: the body is already what joining its lines with CRLF would give
        lines, body = message[:end].split(b"\r\n"), message[end + 4:]
    headers: list[list[bytes]] = []
    for i, line in enumerate(lines):
        if not line:  # only where there is no body: the message ends in CRLF
            return headers, b"\r\n".join(lines[i + 1:])
        if line[0] in (0x09, 0x20):
            headers[-1][1] += line + b"\r\n"  # IndexError on a leading continuation, as dkimpy
        else:
            m = _HEADER_NAME.match(line)
            if m is not None:
                headers.append([m.group(1), line[m.end(0):] + b"\r\n"])
            elif not line.startswith(b"From "):
                raise dkim.MessageFormatError(  # dkimpy's words, bytes repr included
                    f"Unexpected characters in RFC822 header: {line!r}")
    return headers, b"" if body is None else body


rfc822_parse.__wrapped_dkimpy__ = ORIGINAL_RFC822_PARSE  # type: ignore[attr-defined]


def compress_whitespace(content: bytes) -> bytes:
    """``re.sub(b"[\\t ]+", b" ", content)``: every run of spaces and tabs as one space."""
    if b"\t" not in content and b"  " not in content:
        return content  # every run is a single space already
    return _CHANGING_RUNS.sub(b" ", content)


def strip_trailing_whitespace(content: bytes) -> bytes:
    """``re.sub(b"[\\t ]+\\r\\n", b"\\r\\n", content)``: no space or tab before a line end."""
    if b" \r\n" not in content and b"\t\r\n" not in content:
        return content
    return _TRAILING.sub(b"\r\n", content)


compress_whitespace.__wrapped_dkimpy__ = _original_compress  # type: ignore[attr-defined]
strip_trailing_whitespace.__wrapped_dkimpy__ = _original_strip  # type: ignore[attr-defined]


def install() -> None:
    """Put all four into dkimpy (idempotent); ``dkim_verify`` calls it when imported."""
    canon.compress_whitespace = compress_whitespace
    canon.strip_trailing_whitespace = strip_trailing_whitespace
    dkim.RE_BTAG = RE_BTAG
    dkim.rfc822_parse = rfc822_parse
