from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from elemta_core.smtp.protocol import _SIMPLE_ADDR, add_enhanced_code, parse_path, parse_path_fully
from elemta_core.smtp.users import hash_password, verify_password


@pytest.mark.parametrize("line,want", [
    (b"250 OK", b"250 2.0.0 OK"),
    (b"503 Error: need RCPT command", b"503 5.5.1 Error: need RCPT command"),
    (b"552 Error: Too much mail data", b"552 5.3.4 Error: Too much mail data"),
    (b"250 2.1.0 Sender OK", b"250 2.1.0 Sender OK"),
    (b"354 End data with <CR><LF>.<CR><LF>", b"354 End data with <CR><LF>.<CR><LF>"),
    (b"334 VXNlcm5hbWU6", b"334 VXNlcm5hbWU6"),
    (b"421 4.7.0 bye", b"421 4.7.0 bye"),
])
def test_enhanced_codes_added_where_missing(line: bytes, want: bytes) -> None:
    assert add_enhanced_code(line) == want


def test_password_hashes_are_salted_and_verified() -> None:
    a, b = hash_password("pw"), hash_password("pw")
    assert a != b and a.startswith("scrypt$")
    assert verify_password(b"pw", a) and not verify_password(b"px", a)
    assert not verify_password(b"pw", "md5$whatever") and not verify_password(b"pw", "garbage")


_ATOM = "abcXYZ019!#$%&'*+/=?^_`{|}~-"


_ANY = _ATOM + '.@<> "()\\[]:,;\t='


@settings(max_examples=3000, deadline=None)
@given(st.builds("".join, st.lists(st.one_of(
    st.sampled_from(["<", ">", "@", ".", " ", "\t", "(", ")", '"', "[", "]", ":", "SIZE=1"]),
    st.text(alphabet=_ATOM, min_size=1, max_size=6),
    st.text(alphabet=_ANY, max_size=3)), max_size=12)))
def test_address_fast_path_agrees_with_the_email_parser(arg: str) -> None:
    """Wherever the fast path answers, the email package's parser gives the same answer."""
    assert parse_path(arg) == parse_path_fully(arg)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=_ATOM, min_size=1, max_size=8), st.text(alphabet=_ATOM, min_size=1, max_size=8),
       st.sampled_from(["", " ", " SIZE=10", "\t BODY=7BIT", " (c)", "x", ">"]))
def test_simple_addresses_take_the_fast_path(local: str, domain: str, tail: str) -> None:
    arg = f"<{local}@{domain.replace('!', 'a')}>{tail}"
    assert parse_path(arg) == parse_path_fully(arg)
    if tail in ("", " ", " SIZE=10", "\t BODY=7BIT") and domain.isalnum():
        assert _SIMPLE_ADDR.match(arg)  # the case this is for does take the fast path


@pytest.mark.parametrize("arg", [
    "<alice@example.org>", "<alice@example.org> SIZE=100", "<a.b+c@x-y.example.co>\tBODY=8BITMIME",
    '<"quoted local"@example.org>', "<@route:a@b.example>", "alice@example.org", "<a@[127.0.0.1]>",
    "<a..b@example.org>", "<a@b>x", "0@[", '"', "", "<c=b!@[ ", "!#\t@[..)",
])
def test_addresses_parse_as_the_email_parser_says(arg: str) -> None:
    assert parse_path(arg) == parse_path_fully(arg)
