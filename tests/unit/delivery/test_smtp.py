"""The SMTP/LMTP client against real aiosmtpd servers on loopback."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from elemta_core.delivery.pool import ConnectionPool
from elemta_core.delivery.remote import RemoteDelivery
from elemta_core.delivery.smtp import ClientSettings, SessionError, SmtpSession
from elemta_core.delivery.transports import Kind, Route, parse_transport
from elemta_core.dns.answer import DnsAnswer, DnsStatus
from elemta_core.smtp.tls import load_or_create
from tests.support.smtp_sink import Sink, SinkHandler

SETTINGS = ClientSettings(helo_name="client.test", connect_timeout=5, command_timeout=5)
MSG = b"From: a@example.org\r\nSubject: t\r\n\r\n.leading dot\r\nbody\r\n"


def _refuse(address: str) -> str | None:
    if address.startswith("gone"):
        return "550 5.1.1 no such user"
    if address.startswith("full"):
        return "452 4.2.2 mailbox full"
    return None


def remote(pool: ConnectionPool | None = None, dns: object = None, **kw: object) -> RemoteDelivery:
    return RemoteDelivery(ClientSettings(helo_name="client.test", connect_timeout=2,
                                         command_timeout=5, **kw),  # type: ignore[arg-type]
                          dns, pool or ConnectionPool(), 4)  # type: ignore[arg-type]


@pytest.mark.parametrize("pipelining", [True, False])
async def test_per_recipient_replies(pipelining: bool) -> None:
    with Sink(SinkHandler(rcpt_policy=_refuse, pipelining=pipelining)) as sink:
        s = SmtpSession(SETTINGS, "127.0.0.1", sink.port)
        await s.open()
        assert s.pipelining is pipelining
        replies = await s.send("a@example.org", ["bob@r.test", "gone@r.test", "full@r.test"], MSG)
        await s.quit()
    assert replies["bob@r.test"].ok
    assert replies["gone@r.test"].permanent and replies["gone@r.test"].code == 550
    assert replies["full@r.test"].code == 452 and not replies["full@r.test"].permanent
    (got,) = sink.messages
    assert got.rcpt_tos == ["bob@r.test"]
    assert got.data == MSG  # dot-stuffing undone by the server: the bytes arrive unchanged


async def test_every_recipient_refused_sends_no_data_and_keeps_the_connection() -> None:
    with Sink(SinkHandler(rcpt_policy=_refuse)) as sink:
        s = SmtpSession(SETTINGS, "127.0.0.1", sink.port)
        await s.open()
        replies = await s.send("a@example.org", ["gone@r.test"], MSG)
        assert replies["gone@r.test"].code == 550 and s.usable
        replies = await s.send("a@example.org", ["bob@r.test"], MSG)
        assert replies["bob@r.test"].ok
        await s.quit()
    assert [m.rcpt_tos for m in sink.messages] == [["bob@r.test"]]


async def test_data_refusal_applies_to_every_accepted_recipient() -> None:
    with Sink(SinkHandler(data_reply="554 5.7.1 spam")) as sink:
        s = SmtpSession(SETTINGS, "127.0.0.1", sink.port)
        await s.open()
        replies = await s.send("a@example.org", ["x@r.test", "y@r.test"], MSG)
        await s.quit()
    assert {r.code for r in replies.values()} == {554}
    assert sink.messages == []


async def test_opportunistic_starttls(tmp_path: Path) -> None:
    tls = load_or_create(tmp_path, "sink.test")
    with Sink(tls=tls) as sink:
        s = SmtpSession(SETTINGS, "127.0.0.1", sink.port)
        await s.open()
        assert s.tls
        await s.send("a@example.org", ["bob@r.test"], MSG)
        await s.quit()
    assert sink.messages[0].tls


async def test_required_tls_without_starttls_is_a_session_error() -> None:
    with Sink() as sink:
        s = SmtpSession(ClientSettings("client.test", 5, 5, tls="require"), "127.0.0.1", sink.port)
        with pytest.raises(SessionError, match="TLS is required"):
            await s.open()
    assert sink.messages == []


async def test_relayhost_auth() -> None:
    with Sink(SinkHandler(auth=("relay", "s3cret"))) as sink:
        ok = await remote().deliver(Route(Kind.SMTP, "127.0.0.1", sink.port, auth=("relay", "s3cret")),
                                    "a@example.org", ["bob@r.test"], MSG)
        bad = await remote().deliver(Route(Kind.SMTP, "127.0.0.1", sink.port, auth=("relay", "no")),
                                     "a@example.org", ["bob@r.test"], MSG)
    assert ok[0].ok
    assert not bad[0].ok and not bad[0].permanent and "AUTH" in bad[0].text
    assert len(sink.messages) == 1


async def test_connection_is_reused_for_several_messages() -> None:
    pool = ConnectionPool(reuse=3, idle=5)
    rd = remote(pool)
    with Sink() as sink:
        route = Route(Kind.SMTP, "127.0.0.1", sink.port)
        for i in range(5):
            (res,) = await rd.deliver(route, "a@example.org", [f"u{i}@r.test"], MSG)
            assert res.ok
        await rd.close()
    assert len(sink.messages) == 5
    assert pool.opened == 2 and pool.reused == 3  # reuse=3: a new connection after 3 messages
    assert sink.handler.sessions == 2


async def test_a_stale_cached_connection_is_replaced() -> None:
    pool = ConnectionPool(reuse=10, idle=30)
    rd = remote(pool)
    with Sink() as sink:
        route = Route(Kind.SMTP, "127.0.0.1", sink.port)
        assert (await rd.deliver(route, "a@example.org", ["u1@r.test"], MSG))[0].ok
        for stack in pool._idle.values():  # the server side drops the idle connection
            for _, sess in stack:
                assert sess.smtp is not None and sess.smtp.transport is not None
                sess.smtp.transport.abort()
        await asyncio.sleep(0.05)
        assert (await rd.deliver(route, "a@example.org", ["u2@r.test"], MSG))[0].ok
        await rd.close()
    assert len(sink.messages) == 2


async def test_per_destination_concurrency_limit() -> None:
    active = peak = 0
    lock = asyncio.Lock()

    class Slow(RemoteDelivery):
        async def _send(self, t, mail_from, recipients, data):  # type: ignore[no-untyped-def]
            nonlocal active, peak
            async with lock:
                active += 1
                peak = max(peak, active)
            await asyncio.sleep(0.05)
            async with lock:
                active -= 1
            from elemta_core.delivery.smtp import Reply
            return {a: Reply(250, "ok") for a in recipients}, "x"

    rd = Slow(SETTINGS, None, ConnectionPool(), 3)
    route = Route(Kind.SMTP, "127.0.0.1", 9)
    await asyncio.gather(*(rd.deliver(route, "a@b.test", [f"u{i}@r.test"], MSG) for i in range(12)))
    assert peak == 3


class FakeDNS:
    def __init__(self, mx: list[tuple[int, str]] | None, hosts: dict[str, str]) -> None:
        self.mx, self.hosts = mx, hosts

    async def query(self, name: str, rdtype: str) -> DnsAnswer:
        if rdtype == "MX":
            return DnsAnswer(DnsStatus.OK, tuple(self.mx)) if self.mx else DnsAnswer(DnsStatus.NODATA)
        if rdtype == "A" and name in self.hosts:
            return DnsAnswer(DnsStatus.OK, (self.hosts[name],))
        return DnsAnswer(DnsStatus.NODATA)


async def test_mx_fallback_when_the_best_host_is_down() -> None:
    with Sink() as sink:
        dns = FakeDNS([(10, "dead.r.test"), (20, "live.r.test")],
                      {"dead.r.test": "127.0.0.2", "live.r.test": "127.0.0.1"})
        (res,) = await remote(dns=dns).deliver(Route(Kind.SMTP, "r.test", sink.port, mx=True),
                                               "a@example.org", ["bob@r.test"], MSG)
    assert res.ok and str(sink.port) in res.destination
    assert len(sink.messages) == 1


async def test_every_mx_down_defers() -> None:
    dns = FakeDNS([(10, "dead.r.test")], {"dead.r.test": "127.0.0.2"})
    (res,) = await remote(dns=dns).deliver(Route(Kind.SMTP, "r.test", 9, mx=True),
                                           "a@example.org", ["bob@r.test"], MSG)
    assert not res.ok and not res.permanent and res.text.startswith("4.4.1")


async def test_null_mx_fails_permanently() -> None:
    dns = FakeDNS([(0, ".")], {})
    (res,) = await remote(dns=dns).deliver(Route(Kind.SMTP, "r.test", 25, mx=True),
                                           "a@example.org", ["bob@r.test"], MSG)
    assert res.permanent and res.code == 556 and "5.1.10" in res.text


async def test_lmtp_over_tcp_answers_per_recipient() -> None:
    def lmtp_policy(a: str) -> str | None:
        return "452 4.2.2 over quota" if a.startswith("quota") else None

    with Sink(SinkHandler(lmtp_policy=lmtp_policy), lmtp=True) as sink:
        res = await remote().deliver(parse_transport("t", f"lmtp:127.0.0.1:{sink.port}"),
                                     "a@example.org", ["bob@l.test", "quota@l.test", "eve@l.test"],
                                     MSG)
    by = {r.recipient: r for r in res}
    assert by["bob@l.test"].ok and by["eve@l.test"].ok
    assert by["quota@l.test"].code == 452 and not by["quota@l.test"].permanent
    assert sink.messages[0].rcpt_tos == ["bob@l.test", "eve@l.test"]


async def test_lmtp_over_a_unix_socket(tmp_path: Path) -> None:
    sock = tmp_path / "lmtp.sock"
    with Sink(unix_path=sock) as sink:
        res = await remote().deliver(parse_transport("t", f"lmtp:unix:{sock}"),
                                     "a@example.org", ["bob@l.test", "eve@l.test"], MSG)
    assert all(r.ok for r in res)
    assert sink.messages[0].rcpt_tos == ["bob@l.test", "eve@l.test"]


async def test_smtputf8_only_where_offered() -> None:
    with Sink(smtputf8=False) as sink:
        s = SmtpSession(SETTINGS, "127.0.0.1", sink.port)
        await s.open()
        replies = await s.send("a@example.org", ["jös@r.test"], MSG)
        await s.quit()
    assert replies["jös@r.test"].code == 553 and "5.6.7" in replies["jös@r.test"].text
    assert sink.messages == []
    with Sink() as sink:
        s = SmtpSession(SETTINGS, "127.0.0.1", sink.port)
        await s.open()
        replies = await s.send("a@example.org", ["jös@r.test"], MSG)
        await s.quit()
    assert replies["jös@r.test"].ok
    assert sink.messages[0].rcpt_tos == ["jös@r.test"] and "SMTPUTF8" in sink.messages[0].mail_options


def test_pipelined_replies_reach_our_protocol_under_uvloop() -> None:
    """uvloop caches a protocol's data_received when the connection is made; replies that
    went to aiosmtplib's own method would be dropped while another waits to be read."""
    import uvloop

    from elemta_core.delivery import smtp as smtp_mod

    calls = 0
    original = smtp_mod.PipeliningProtocol.data_received

    def counting(self, data):  # type: ignore[no-untyped-def]
        nonlocal calls
        calls += 1
        original(self, data)

    async def run() -> None:
        with Sink() as sink:
            s = SmtpSession(SETTINGS, "127.0.0.1", sink.port)
            await s.open()
            before = calls
            for i in range(3):
                replies = await s.send("a@example.org", [f"u{i}@r.test", f"v{i}@r.test"], MSG)
                assert all(r.ok for r in replies.values())
            assert calls > before
            await s.quit()

    smtp_mod.PipeliningProtocol.data_received = counting  # type: ignore[method-assign]
    try:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(run())
    finally:
        smtp_mod.PipeliningProtocol.data_received = original  # type: ignore[method-assign]


async def test_421_on_mail_is_a_connection_problem_not_a_recipient_one() -> None:
    class Closing(SinkHandler):
        async def handle_MAIL(self, server, session, envelope, address, options):  # type: ignore[no-untyped-def]
            return "421 4.3.2 shutting down"

    with Sink(Closing()) as sink:
        s = SmtpSession(SETTINGS, "127.0.0.1", sink.port)
        await s.open()
        with pytest.raises(SessionError, match="421"):
            await s.send("a@example.org", ["bob@r.test"], MSG)
