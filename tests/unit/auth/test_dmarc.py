"""DMARC (RFC 7489): records, organisational domains, the alignment matrix, p/sp/pct, caps."""

from __future__ import annotations

import pytest

from builtin_plugins.auth.dmarc import (
    Disposition,
    DmarcCheck,
    DmarcRecord,
    DmarcRecordError,
    DmarcResult,
    aligned,
    check_dmarc,
    enforce,
    evaluate,
    from_domain,
    org_domain,
    parse_record,
)
from elemta_core.dns import DnsAnswer, SyncResolver
from elemta_core.message.message import Message
from tests.support.dns_server import ZoneServer


def msg(from_: str = "Alice <alice@example.org>") -> Message:
    return Message(f"From: {from_}\r\nSubject: x\r\n\r\nhi\r\n".encode())


def test_parse_record() -> None:
    r = parse_record("v=DMARC1; p=reject; sp=quarantine; pct=50; adkim=s; aspf=r; "
                     "rua=mailto:d@example.org; fo=1; unknown=x")
    assert r == DmarcRecord(Disposition.REJECT, Disposition.QUARANTINE, 50, "s", "r",
                            "mailto:d@example.org")
    assert parse_record("v=DMARC1;p=none").p is Disposition.NONE
    assert parse_record("v=DMARC1; rua=mailto:x@example.org").p is Disposition.NONE  # §6.6.3


@pytest.mark.parametrize("text", [
    "p=reject; v=DMARC1", "v=dmarc1; p=reject", "v=DMARC1", "v=DMARC1; p=block",
    "v=DMARC1; p=reject; pct=101", "v=DMARC1; p=reject; pct=-1", "v=DMARC1; p=reject; adkim=x",
    "v=DMARC1; p", "v=DMARC1; p=reject; sp=maybe",
])
def test_bad_records(text: str) -> None:
    with pytest.raises(DmarcRecordError):
        parse_record(text)


def test_org_domain_uses_the_public_suffix_list() -> None:
    assert org_domain("mail.news.example.co.uk") == "example.co.uk"
    assert org_domain("a.b.example.org.") == "example.org"
    assert org_domain("co.uk") == "co.uk"


@pytest.mark.parametrize("a, b, mode, ok", [
    ("example.org", "example.org", "s", True),
    ("mail.example.org", "example.org", "s", False),
    ("mail.example.org", "example.org", "r", True),
    ("a.example.org", "b.example.org", "r", True),
    ("example.org", "example.net", "r", False),
    ("x.example.co.uk", "y.example.co.uk", "r", True),
    ("example1.co.uk", "example2.co.uk", "r", False),
    ("", "example.org", "r", False),
])
def test_alignment(a: str, b: str, mode: str, ok: bool) -> None:
    assert aligned(a, b, mode) is ok


REC = DmarcRecord(Disposition.REJECT)


@pytest.mark.parametrize("spf, spf_domain, dkim, adkim, aspf, result", [
    ("pass", "example.org", [], "r", "r", DmarcResult.PASS),
    ("pass", "bounce.example.org", [], "r", "r", DmarcResult.PASS),
    ("pass", "bounce.example.org", [], "r", "s", DmarcResult.FAIL),
    ("fail", "example.org", [], "r", "r", DmarcResult.FAIL),
    ("pass", "example.net", [], "r", "r", DmarcResult.FAIL),
    ("none", "", ["example.org"], "s", "r", DmarcResult.PASS),
    ("none", "", ["mail.example.org"], "r", "r", DmarcResult.PASS),
    ("none", "", ["mail.example.org"], "s", "r", DmarcResult.FAIL),
    ("none", "", ["example.net"], "r", "r", DmarcResult.FAIL),
    ("softfail", "example.org", ["example.net", "example.org"], "s", "s", DmarcResult.PASS),
])
def test_alignment_matrix(spf: str, spf_domain: str, dkim: list[str], adkim: str, aspf: str,
                          result: DmarcResult) -> None:
    rec = DmarcRecord(Disposition.REJECT, adkim=adkim, aspf=aspf)
    assert evaluate("example.org", rec, "example.org", spf, spf_domain, dkim).result is result


def test_subdomain_policy_and_pct() -> None:
    rec = DmarcRecord(Disposition.REJECT, sp=Disposition.QUARANTINE, pct=30)
    org = evaluate("example.org", rec, "example.org", "fail", "", [], rand=lambda: 0.1)
    sub = evaluate("a.example.org", rec, "example.org", "fail", "", [], rand=lambda: 0.1)
    out = evaluate("example.org", rec, "example.org", "fail", "", [], rand=lambda: 0.5)
    assert org.policy is Disposition.REJECT
    assert sub.policy is Disposition.QUARANTINE
    assert out.policy is Disposition.QUARANTINE and out.sampled_out  # next less strict
    q = DmarcRecord(Disposition.QUARANTINE, pct=0)
    assert evaluate("example.org", q, "example.org", "fail", "", []).policy is Disposition.NONE


@pytest.mark.parametrize("published, cap, expect", [
    (Disposition.REJECT, "none", Disposition.NONE),
    (Disposition.REJECT, "quarantine", Disposition.QUARANTINE),
    (Disposition.REJECT, "reject", Disposition.REJECT),
    (Disposition.QUARANTINE, "reject", Disposition.QUARANTINE),
    (Disposition.NONE, "reject", Disposition.NONE),
])
def test_local_cap(published: Disposition, cap: str, expect: Disposition) -> None:
    chk = DmarcCheck(DmarcResult.FAIL, "example.org", "example.org", REC, published)
    assert enforce(chk, cap) is expect
    assert enforce(DmarcCheck(DmarcResult.PASS, policy=published), cap) is Disposition.NONE


@pytest.mark.parametrize("header, problem", [
    ("", "no From"),
    ("Undisclosed recipients:;", "no address"),
    ("undisclosed", "no usable domain"),
    ("a@example.org, b@example.net", "several domains"),
    ("a@localhost", "no usable domain"),
])
def test_from_domain_problems(header: str, problem: str) -> None:
    m = Message(b"Subject: x\r\n\r\nhi\r\n") if not header else msg(header)
    assert problem in from_domain(m)[1]
    two = Message(b"From: a@example.org\r\nFrom: b@example.org\r\n\r\nhi\r\n")
    assert from_domain(two) == ("", "several From headers")
    assert from_domain(msg("a@x.example.org, b@X.example.org"))[0] == "x.example.org"


async def check(sync: SyncResolver, m: Message, spf: str = "none", spf_domain: str = "",
                dkim: list[str] | None = None) -> DmarcCheck:
    async def txt(name: str) -> DnsAnswer:
        return await sync.resolver.query(name, "TXT")

    return await check_dmarc(m, txt, spf, spf_domain, dkim or [])


async def test_discovery_falls_back_to_the_organisational_domain(
        zone: ZoneServer, sync: SyncResolver) -> None:
    zone.txt("_dmarc.example.org", "v=DMARC1; p=reject; sp=none")
    sub = await check(sync, msg("a@news.example.org"))
    assert sub.result is DmarcResult.FAIL and sub.policy_domain == "example.org"
    assert sub.policy is Disposition.NONE
    assert zone.queries[("_dmarc.news.example.org", "TXT")] == 1
    org = await check(sync, msg())
    assert org.policy is Disposition.REJECT
    assert "dmarc=fail (p=reject sp=none pct=100 dis=reject) header.from=example.org" == \
        org.resinfo().render()


async def test_results_from_dns(zone: ZoneServer, sync: SyncResolver) -> None:
    zone.txt("_dmarc.example.org", "v=DMARC1; p=quarantine")
    assert (await check(sync, msg(), "pass", "example.org")).result is DmarcResult.PASS
    assert (await check(sync, msg("a@example.net"))).result is DmarcResult.NONE
    zone.txt("_dmarc.example.com", "v=DMARC1; p=reject").txt("_dmarc.example.com",
                                                           "v=DMARC1; p=none")
    assert (await check(sync, msg("a@example.com"))).result is DmarcResult.NONE
    zone.txt("_dmarc.example.info", "v=DMARC1; p=sometimes")
    assert (await check(sync, msg("a@example.info"))).result is DmarcResult.PERMERROR
    zone.servfail.add("_dmarc.example.biz")
    assert (await check(sync, msg("a@example.biz"))).result is DmarcResult.TEMPERROR
    zone.txt("_dmarc.example.edu", "some other text")
    assert (await check(sync, msg("a@example.edu"))).result is DmarcResult.NONE
    assert (await check(sync, msg("a@localhost"))).result is DmarcResult.PERMERROR


def test_records_and_org_domains_are_memoised_errors_are_not() -> None:
    assert parse_record("v=DMARC1; p=reject") is parse_record("v=DMARC1; p=reject")
    for _ in range(2):
        with pytest.raises(DmarcRecordError):
            parse_record("v=DMARC1; p=maybe")
    assert org_domain("x.example.org") == org_domain("x.example.org") == "example.org"
