"""The SMTP edge under abuse, through raw sockets against a real server."""

from __future__ import annotations

import base64
import json
import socket
import ssl
import struct
import time
from pathlib import Path

import pytest

from elemta_core.smtp.users import hash_password
from tests.security.rawsmtp import Raw
from tests.support.ports import free_port
from tests.support.server import ServerProcess, with_test_plugins_env


def test_nul_and_8bit_garbage_in_commands(elemta_server) -> None:
    srv: ServerProcess = elemta_server()
    c = Raw(srv.port)
    assert c.cmd("EHLO c.test").startswith("250")
    assert c.cmd(b"MAIL FROM:<a\x00b@example.org>").startswith("500 5.5.2")
    assert c.cmd(b"\xff\xfe\xfd").startswith("500 5.5.2")
    assert c.cmd(b"MA\xc3\x8fL FROM:<a@example.org>").startswith("500 5.5.2")
    assert c.cmd(b"\x00\x00\x00").startswith("500")
    assert c.cmd("NOOP").startswith("250")  # still a working session


def test_early_talker_is_refused(elemta_server) -> None:
    srv: ServerProcess = elemta_server(server={"greet_pause": 0.5})
    c = Raw(srv.port, greet=False)
    c.send(b"EHLO eager.test\r\n")
    assert c.reply().startswith("554 5.5.1")
    assert c.closed()
    ok = Raw(srv.port)  # a patient client is greeted
    assert ok.greeting.startswith("220 ")


def test_pipelining_before_ehlo_is_a_synchronization_error(elemta_server) -> None:
    srv: ServerProcess = elemta_server()
    c = Raw(srv.port)
    c.send(b"HELO c.test\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<bob@localhost>\r\n")
    assert c.reply().startswith("554 5.5.0")
    assert c.closed()


def test_plaintext_injected_behind_starttls_is_refused(elemta_server) -> None:
    srv: ServerProcess = elemta_server()
    c = Raw(srv.port)
    assert c.cmd("EHLO c.test").startswith("250")
    c.send(b"STARTTLS\r\nRSET\r\nMAIL FROM:<injected@example.org>\r\n")
    assert c.reply().startswith("554 5.5.0")
    assert c.closed()


def test_starttls_then_commands_work(elemta_server) -> None:
    srv: ServerProcess = elemta_server()
    c = Raw(srv.port)
    c.cmd("EHLO c.test")
    assert c.cmd("STARTTLS").startswith("220")
    ctx = ssl._create_unverified_context()
    tls = ctx.wrap_socket(c.s, server_hostname="mx.test")
    assert tls.version() in ("TLSv1.2", "TLSv1.3")
    c.s = tls
    assert c.cmd("EHLO c.test").startswith("250")


def test_tls_below_1_2_is_refused(elemta_server) -> None:
    srv: ServerProcess = elemta_server()
    c = Raw(srv.port)
    c.cmd("EHLO c.test")
    assert c.cmd("STARTTLS").startswith("220")
    ctx = ssl._create_unverified_context()
    ctx.minimum_version = ssl.TLSVersion.TLSv1
    ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    try:
        ctx.set_ciphers("ALL:@SECLEVEL=0")
    except ssl.SSLError:
        pass
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        ctx.wrap_socket(c.s, server_hostname="mx.test")


def test_rcpt_flood_is_cut_off(elemta_server) -> None:
    srv: ServerProcess = elemta_server(server={"max_bad_recipients": 5})
    c = Raw(srv.port)
    c.cmd("EHLO c.test")
    c.cmd("MAIL FROM:<a@example.org>")
    for i in range(5):
        assert c.cmd(f"RCPT TO:<u{i}@relay.example>").startswith("554 5.7.1")
    assert c.cmd("RCPT TO:<u9@relay.example>").startswith("421 4.7.0")
    assert c.closed()


def test_auth_brute_force_is_throttled_per_ip(elemta_server, tmp_path: Path) -> None:
    users = tmp_path / "users"
    users.write_text(f"alice:{hash_password('right')}\n")
    srv: ServerProcess = elemta_server(server={"users_file": str(users), "auth_max_failures": 3})
    ctx = ssl._create_unverified_context()

    def attempt(password: str) -> str:
        c = Raw(srv.port)
        c.cmd("EHLO c.test")
        c.cmd("STARTTLS")
        c.s = ctx.wrap_socket(c.s, server_hostname="mx.test")
        c.cmd("EHLO c.test")
        blob = base64.b64encode(f"\0alice\0{password}".encode()).decode()
        return c.cmd(f"AUTH PLAIN {blob}")

    for _ in range(3):
        assert attempt("wrong").startswith("535 5.7.8")
    # now even the right password is not tried for this address
    assert attempt("right").startswith("421 4.7.0")


def test_per_ip_connection_cap(elemta_server) -> None:
    srv: ServerProcess = elemta_server(server={"max_connections_per_ip": 2})
    a, b = Raw(srv.port), Raw(srv.port)
    c = Raw(srv.port, greet=False)
    assert c.reply().startswith("421 4.7.0 Too many connections from your address")
    a.close()
    time.sleep(0.2)
    d = Raw(srv.port)
    assert d.greeting.startswith("220")
    b.close()


def proxy_v2(src: str, sport: int, dst: str = "127.0.0.1", dport: int = 25) -> bytes:
    sig = b"\r\n\r\n\x00\r\nQUIT\n"
    addr = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!HH", sport, dport)
    return sig + bytes([0x21, 0x11]) + struct.pack("!H", len(addr)) + addr


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_proxy_protocol_gives_the_real_client_ip(elemta_server, tmp_path: Path, version: str) -> None:
    pport = free_port()
    log = tmp_path / "hooks.jsonl"
    srv: ServerProcess = elemta_server(
        env=with_test_plugins_env(),
        server={"proxy_listen": [f"127.0.0.1:{pport}"], "relay_networks": ["203.0.113.0/24"]},
        plugins={"enabled": ["t_first"]}, testplugins={"log_file": str(log)})
    c = Raw(pport, greet=False)
    header = (b"PROXY TCP4 203.0.113.7 127.0.0.1 40000 25\r\n" if version == "v1"
              else proxy_v2("203.0.113.7", 40000))
    c.send(header)
    assert c.reply().startswith("220 ")
    c.cmd("EHLO c.test")
    c.cmd("MAIL FROM:<a@example.org>")
    # relaying is allowed for the real client's network, proving the IP drives policy
    assert c.cmd("RCPT TO:<x@remote.example>").startswith("250")
    connects = [json.loads(ln) for ln in log.read_text().splitlines()
                if json.loads(ln)["hook"] == "connect"]
    assert [x["peer"] for x in connects] == ["203.0.113.7"]


def test_proxy_header_required_and_only_from_trusted(elemta_server) -> None:
    pport = free_port()
    srv: ServerProcess = elemta_server(server={"proxy_listen": [f"127.0.0.1:{pport}"],
                                               "proxy_timeout": 1.0})
    c = Raw(pport, greet=False)
    c.send(b"EHLO no-proxy-header\r\n")
    assert c.closed() and c.buf == b""
    srv.stop()
    srv2: ServerProcess = elemta_server(server={"proxy_listen": [f"127.0.0.1:{free_port()}"],
                                                "proxy_trusted": ["192.0.2.0/24"]})
    port2 = int(srv2.config["server"]["proxy_listen"][0].rpartition(":")[2])
    c2 = Raw(port2, greet=False)
    c2.send(b"PROXY TCP4 203.0.113.7 127.0.0.1 40000 25\r\n")
    assert c2.closed() and c2.buf == b""
