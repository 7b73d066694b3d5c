"""Parsing the go-plugin handshake line."""

from __future__ import annotations

import pytest

from elemta_core.external.errors import HandshakeError
from elemta_core.external.handshake import check_socket, parse


def test_go_plugin_line_parses() -> None:
    hs = parse(b"1|1|unix|/tmp/plugin123|grpc|\n")
    assert (hs.core_version, hs.app_version, hs.network, hs.address, hs.protocol) == (
        1, 1, "unix", "/tmp/plugin123", "grpc")
    assert hs.target == "unix:/tmp/plugin123"
    assert parse(b"1|1|tcp|127.0.0.1:1234|grpc").target == "127.0.0.1:1234"


@pytest.mark.parametrize(("line", "message"), [
    (b"", "stdout is not a handshake line"),
    (b"listening...\n", "stdout is not a handshake line: 'listening...'"),
    (b"\xff\xfe\n", "not UTF-8"),
    (b"x|1|unix|/s|grpc|", "is not a number"),
    (b"1|2|unix|/s|grpc|", ("hook protocol mismatch: the plugin speaks version 2, this server "
                            "speaks version 1")),
    (b"3|1|unix|/s|grpc|", "go-plugin core protocol mismatch"),
    (b"1|1|unix|/s|netrpc|", "'netrpc' is not supported"),
    (b"1|1|unix|rel.sock|grpc|", "not an absolute path"),
    (b"1|1|tcp|192.0.2.1:80|grpc|", "not a loopback host:port"),
    (b"1|1|udp|/s|grpc|", "network 'udp' is not supported"),
    (b"1|1|unix|/s|grpc|MIIBase64Cert", "AutoMTLS"),
])
def test_faults_have_clear_messages(line: bytes, message: str) -> None:
    with pytest.raises(HandshakeError, match=message.replace("(", r"\(")):
        parse(line)


def test_socket_must_exist_and_be_a_socket(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(HandshakeError, match="does not exist"):
        check_socket(parse(f"1|1|unix|{tmp_path}/nope|grpc|".encode()))
    (tmp_path / "file").write_text("")
    with pytest.raises(HandshakeError, match="is not a socket"):
        check_socket(parse(f"1|1|unix|{tmp_path}/file|grpc|".encode()))
