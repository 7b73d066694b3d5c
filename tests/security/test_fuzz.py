"""Hypothesis-driven fuzzing: the SMTP command parser of a live server and the config loader."""

from __future__ import annotations

import smtplib
import socket
import string
from pathlib import Path
from typing import Any, Iterator

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from elemta_core.config.errors import ConfigError
from elemta_core.config.loader import CORE_SECTIONS, parse_config
from elemta_core.config.schema import load_section
from tests.support.server import ServerProcess, base_config

VERBS = ["HELO", "EHLO", "MAIL FROM:", "RCPT TO:", "DATA", "RSET", "NOOP", "QUIT", "VRFY",
         "EXPN", "HELP", "AUTH", "STARTTLS", "BDAT", "XCLIENT", "ETRN", ""]


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    work = tmp_path_factory.mktemp("fuzz")
    srv = ServerProcess(base_config(work, server={"max_bad_commands": 1000,
                                                  "max_connections_per_ip": 0}), work)
    srv.start()
    yield srv
    assert srv.proc is not None and srv.proc.poll() is None, "the server died under fuzzing"
    srv.stop()


line = st.builds(
    lambda verb, arg, end: verb.encode() + arg + end,
    st.sampled_from(VERBS),
    st.binary(max_size=300) | st.text(max_size=120).map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.sampled_from([b"\r\n", b"\n", b"\r", b"", b"\r\n\r\n", b"\x00\r\n"]),
)


def exchange(port: int, data: bytes) -> bytes:
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    got = b""
    while not got.endswith(b"\r\n"):  # wait for the greeting, as a client must
        got += s.recv(1024)
    s.settimeout(0.15)
    try:
        s.sendall(data)
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
    except (TimeoutError, socket.timeout, ConnectionError):
        pass
    finally:
        s.close()
    return got


@settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(line, min_size=1, max_size=8))
def test_command_parser_never_crashes(live: ServerProcess, lines: list[bytes]) -> None:
    got = exchange(live.port, b"".join(lines))
    assert got.startswith(b"220 ")
    for reply in got.split(b"\r\n"):
        if reply:
            assert reply[:3].isdigit() and reply[:1] in b"2345", reply
    # and the server still serves a well-behaved client
    with smtplib.SMTP("127.0.0.1", live.port, timeout=5) as s:
        assert s.ehlo("ok.test")[0] == 250
        assert s.noop()[0] == 250


keys = st.sampled_from(sorted({f.name for cls in CORE_SECTIONS.values()
                               for f in cls.__dataclass_fields__.values()} | {"bogus", "x"}))
scalars = (st.booleans() | st.integers(-2**40, 2**40) | st.floats(allow_nan=True)
           | st.text(string.printable, max_size=30))
values = st.recursive(scalars,
                      lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(keys, inner, max_size=4), max_leaves=10)
documents = st.dictionaries(st.sampled_from([*CORE_SECTIONS, "rate_limiter", "bogus"]),
                            st.dictionaries(keys, values, max_size=6) | values, max_size=5)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents)
def test_config_loader_only_ever_raises_config_error(doc: dict[str, Any]) -> None:
    try:
        cfg = parse_config(doc, path=Path("/etc/elemta/fuzz.toml"))
    except ConfigError as e:
        msg = str(e)
        assert msg.startswith("/etc/elemta/fuzz.toml: ") and "\n" not in msg
    else:
        assert cfg.server.listen or cfg.server.proxy_listen


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(keys, values, max_size=8))
def test_every_core_section_validates_or_explains(table: dict[str, Any]) -> None:
    for name, cls in CORE_SECTIONS.items():
        try:
            load_section(cls, table, name)
        except ConfigError as e:
            assert e.key and e.problem
