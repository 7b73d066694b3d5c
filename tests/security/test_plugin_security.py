"""The plugin security manager against real plugin processes: AutoMTLS on the socket (and a
plaintext or foreign client refused), a plugin without mTLS refused when it is required,
run-as user ``nobody``, ownership refused at start, and a plugin refused at a restart shown
as ``refused`` with the reason in ``elemta plugin list``."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import smtplib
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from elemta_core.external import mtls
from elemta_core.external.catalog import parse_entry
from elemta_core.external.convert import HOOK_TO_PB
from elemta_core.external.errors import HandshakeError
from elemta_core.external.proto_gen.grpc_health.v1 import health_pb2, health_pb2_grpc
from elemta_core.external.supervisor import State, Supervisor
from elemta_core.hooks.context import HookContext
from elemta_core.hooks.types import Action, HookPoint
from tests.integration.external.conftest import pinned_entry, wait_until
from tests.support.server import ServerProcess

PLUGINS = Path(__file__).parent / "plugins"
BEHAVE = Path(__file__).parents[1] / "integration" / "external" / "plugins" / "behave.py"
SDK = Path(__file__).parents[2] / "external-plugins" / "sdk" / "python" / "elemta_plugin"


def ctx(rcpt: str) -> HookContext:
    c = HookContext(session_id="s", peer_ip="127.0.0.1", peer_port=1, local_ip="127.0.0.1",
                    local_port=25)
    c.begin_transaction("T1")
    c.mail_from = "a@example.org"
    c.recipient = rcpt
    return c


def supervisor(tmp: Path, script: Path, name: str, **kw: Any) -> Supervisor:
    raw = pinned_entry(tmp, script, name, **kw)
    entry = parse_entry(raw, "x", tmp, "")
    return Supervisor(entry, "localhost", tmp / f"state-{name}")


async def health(target: str, creds: grpc.ChannelCredentials | None) -> grpc.StatusCode:
    opts = [("grpc.ssl_target_name_override", "localhost")]
    ch = (grpc.aio.secure_channel(target, creds, options=opts) if creds
          else grpc.aio.insecure_channel(target))
    try:
        await health_pb2_grpc.HealthStub(ch).Check(  # type: ignore[no-untyped-call]
            health_pb2.HealthCheckRequest(service="plugin"), timeout=3)
        return grpc.StatusCode.OK
    except grpc.aio.AioRpcError as e:
        return e.code()
    finally:
        await ch.close(grace=None)


async def test_mtls_socket_serves_only_the_host(tmp_path: Path) -> None:
    sup = supervisor(tmp_path, BEHAVE, "behave", mtls=True)
    await sup.start()
    try:
        assert sup.state is State.READY
        r = await sup.call(HOOK_TO_PB[HookPoint.RCPT_TO], ctx("reject@localhost"))
        assert r.action is Action.REJECT and r.code == 550 and r.tags == {"behave": "rejected"}
        assert sup.process is not None and sup._socket_dir is not None
        assert mtls.ENV_CLIENT_CERT in sup.process.env
        (sock,) = list(sup._socket_dir.iterdir())
        target = f"unix:{sock}"
        # Plaintext: the TLS server does not speak to it.
        assert await health(target, None) != grpc.StatusCode.OK
        # TLS with our own certificate, trusting any server: no client cert the plugin knows.
        other = mtls.generate()
        foreign = grpc.ssl_channel_credentials(root_certificates=None,
                                               private_key=other.key_pem,
                                               certificate_chain=other.cert_pem)
        assert await health(target, foreign) != grpc.StatusCode.OK
        # The host's own channel still works.
        assert sup.client is not None
        await sup.client.controller.check(3)
    finally:
        await sup.stop()


async def test_mtls_required_but_the_plugin_answers_without_a_certificate(
        tmp_path: Path) -> None:
    sup = supervisor(tmp_path, PLUGINS / "echo_reply.py", "echo", mtls=True)
    with pytest.raises(HandshakeError, match="mtls is on but the plugin answered without a "
                                             "certificate"):
        await sup.start()
    assert sup.state is State.STOPPED and sup.pid is None


def test_handshake_certificate_field_is_checked() -> None:
    from elemta_core.external.handshake import parse

    with pytest.raises(HandshakeError, match="not configured for"):
        parse(b"1|1|unix|/tmp/x|grpc|QUJD\n")
    with pytest.raises(HandshakeError, match="not a base64 DER certificate"):
        mtls.server_cert_pem("not*base64")
    with pytest.raises(HandshakeError, match="not a base64 DER certificate"):
        mtls.server_cert_pem("QUJD")


def test_mtls_through_a_real_server(elemta_server: Any, tmp_path: Path) -> None:
    entry = pinned_entry(tmp_path, BEHAVE, "behave")
    srv: ServerProcess = elemta_server(plugins={"external": [entry], "mtls": True})
    with smtplib.SMTP("127.0.0.1", srv.port, timeout=10) as s:
        s.ehlo("client.test")
        s.mail("a@example.org")
        assert s.rcpt("reject@localhost")[0] == 550
        assert s.rcpt("ok@localhost")[0] == 250
    row = json.loads(srv.cli("plugin", "list", "--json").stdout)["plugins"][0]
    assert row["state"] == "ready" and row["failures"] == 0 and row["mtls"] is True


# -- run as nobody ---------------------------------------------------------------------------

SYSTEM_PYTHON = Path("/usr/bin/python3")


@pytest.fixture
def nobody_dir() -> Iterator[Path]:
    """A 0755 root-owned dir under /tmp (pytest's tmp dirs are 0700: nobody cannot enter
    them) with the SDK and its dependencies copied in, for the system python."""
    if os.geteuid() != 0:
        pytest.skip("running a plugin as another user needs root")
    try:
        pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no user nobody")
    if not SYSTEM_PYTHON.exists():
        pytest.skip("no /usr/bin/python3")
    ver = os.popen(f"{SYSTEM_PYTHON} -c 'import sys; print(sys.version_info[:2])'").read()
    if ver.strip() != str(sys.version_info[:2]):
        pytest.skip(f"/usr/bin/python3 is {ver.strip()}, the venv's grpc is built for "
                    f"{sys.version_info[:2]} (the venv's python is not reachable by nobody)")
    d = Path(tempfile.mkdtemp(prefix="elemta-nobody-"))
    try:
        d.chmod(0o755)
        lib = d / "lib"
        import google.protobuf
        import typing_extensions

        for src in (SDK, Path(grpc.__file__).parent, Path(google.protobuf.__file__).parents[1]):
            shutil.copytree(src, lib / src.name, ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copy(typing_extensions.__file__, lib / "typing_extensions.py")
        os.system(f"chmod -R a+rX {lib}")
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


async def test_plugin_runs_as_nobody(nobody_dir: Path) -> None:
    pdir = nobody_dir / "plugin"
    pdir.mkdir(mode=0o755)
    script = pdir / "whoami.py"
    shutil.copy(PLUGINS / "whoami.py", script)
    script.chmod(0o644)
    import hashlib

    entry = parse_entry({
        "name": "whoami", "command": [str(SYSTEM_PYTHON), "whoami.py"], "user": "nobody",
        "sha256": {"whoami.py": hashlib.sha256(script.read_bytes()).hexdigest()},
        "env": {"PYTHONPATH": str(nobody_dir / "lib")},
    }, "x", pdir, "")
    state = nobody_dir / "state"
    state.mkdir(mode=0o700)
    sup = Supervisor(entry, "localhost", state)
    await sup.start()
    try:
        r = await sup.call(HOOK_TO_PB[HookPoint.RCPT_TO], ctx("x@localhost"))
        nobody = pwd.getpwnam("nobody")
        assert r.text == f"uid {nobody.pw_uid} gid {nobody.pw_gid}"
        status = Path(f"/proc/{sup.pid}/status").read_text()
        assert f"Uid:\t{nobody.pw_uid}\t" in status
        assert (state / "plugins" / "whoami").stat().st_uid == nobody.pw_uid
    finally:
        await sup.stop()


# -- ownership and refusal ---------------------------------------------------------------------


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")
def test_a_plugin_file_owned_by_another_user_stops_the_server(elemta_server: Any,
                                                               tmp_path: Path) -> None:
    entry = pinned_entry(tmp_path, BEHAVE, "behave")
    os.chown(entry["command"][1], 65534, -1)
    srv: ServerProcess = elemta_server(start=False, plugins={"external": [entry]})
    srv.start(wait=False)
    assert srv.proc is not None
    assert srv.proc.wait(30) == 2
    assert "refused to launch" in srv.log() and "is owned by uid 65534" in srv.log()


def test_a_plugin_refused_at_restart_shows_refused_and_why(elemta_server: Any,
                                                           tmp_path: Path) -> None:
    entry = pinned_entry(tmp_path, BEHAVE, "behave")
    srv: ServerProcess = elemta_server(plugins={"external": [entry]})
    rows = json.loads(srv.cli("plugin", "list", "--json").stdout)["plugins"]
    pid = rows[0]["pid"]
    script = Path(entry["command"][1])
    script.write_text(script.read_text() + "\n# tampered\n")
    os.kill(pid, signal.SIGKILL)

    def row() -> dict[str, Any]:
        return json.loads(srv.cli("plugin", "list", "--json").stdout)["plugins"][0]  # type: ignore[no-any-return]

    assert wait_until(lambda: row()["state"] == "refused", 15, 0.1), row()
    assert "checksum mismatch for" in row()["last_error"]
    table = srv.cli("plugin", "list").stdout
    assert "behave is refused: checksum mismatch for" in table
    with smtplib.SMTP("127.0.0.1", srv.port, timeout=10) as s:  # the failure policy
        s.ehlo("client.test")
        s.mail("a@example.org")
        assert s.rcpt("ok@localhost")[0] == 451
