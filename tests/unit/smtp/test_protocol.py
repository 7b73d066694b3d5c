from __future__ import annotations

import pytest

from elemta_core.smtp.protocol import add_enhanced_code
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
