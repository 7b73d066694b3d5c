"""Authentication-Results (RFC 8601): rendering, forged header removal, one header per message."""

from __future__ import annotations

import authres

from builtin_plugins.auth import results
from builtin_plugins.auth.results import ResInfo
from elemta_core.hooks.context import HookContext
from elemta_core.hooks.types import HeaderOp
from elemta_core.message.message import Message


def test_resinfo_rendering_and_quoting() -> None:
    r = ResInfo("spf", "pass", comment="192.0.2.1: ok (really)",
                props=(("smtp.mailfrom", "alice@example.org"), ("smtp.helo", "")))
    assert r.render() == r"spf=pass (192.0.2.1: ok \(really\)) smtp.mailfrom=alice@example.org"
    assert results.quote("a b") == '"a b"' and results.quote('x"y') == '"x\\"y"'
    assert results.quote("") == '""'


def test_header_value_orders_methods() -> None:
    tags = {"authres.dmarc": "dmarc=pass header.from=example.org",
            "authres.spf": "spf=pass smtp.mailfrom=example.org",
            "authres.arc": "arc=none", "authres.dkim": "dkim=none", "spam.score": "1"}
    assert results.header_value("mx.test", tags) == (
        "mx.test; spf=pass smtp.mailfrom=example.org; dkim=none; "
        "dmarc=pass header.from=example.org; arc=none")
    assert results.header_value("mx.test", {}) == "mx.test; none"


def test_our_header_parses_with_authres() -> None:
    tags = {
        "authres.spf": ResInfo("spf", "pass", "192.0.2.1: x",
                               props=(("smtp.mailfrom", "a@example.org"),)).render(),
        "authres.dkim": ResInfo("dkim", "pass", props=(("header.d", "example.org"),
                                                    ("header.s", "s1"),
                                                    ("header.b", "abc+/="))).render(),
        "authres.dmarc": ResInfo("dmarc", "fail", "p=reject sp=reject pct=100 dis=none",
                                 props=(("header.from", "example.org"),)).render(),
        "authres.arc": ResInfo("arc", "pass", "i=1",
                               props=(("smtp.remote-ip", "192.0.2.1"),)).render(),
    }
    value = results.header_value("mx.test", tags)
    parsed = authres.AuthenticationResultsHeader.parse(f"Authentication-Results: {value}")
    assert parsed.authserv_id == "mx.test"
    assert [r.method for r in parsed.results] == ["spf", "dkim", "dmarc", "arc"]


def test_authserv_id_of() -> None:
    assert results.authserv_id_of("MX.test; spf=pass") == "mx.test"
    assert results.authserv_id_of("mx.test 1; none") == "mx.test"
    assert results.authserv_id_of("(comment) mx.test; none") == "mx.test"
    assert results.authserv_id_of("") == ""


def ctx_with(raw: bytes) -> HookContext:
    ctx = HookContext(session_id="s", peer_ip="192.0.2.1", transaction_id="T1")
    ctx.message = Message(raw)
    return ctx


def test_forged_headers_are_removed_once_and_ours_replaced() -> None:
    raw = (b"Authentication-Results: other.test; spf=pass\r\n"
           b"Authentication-Results: MX.TEST; dkim=pass header.d=bank.test\r\n"
           b"Authentication-Results: mx.test; dmarc=pass\r\n"
           b"From: a@example.org\r\n\r\nbody\r\n")
    ctx = ctx_with(raw)
    first = results.publish(ctx, "mx.test", {"authres.spf": "spf=fail"})
    assert [(c.op, c.index) for c in first[:-1]] == [(HeaderOp.REMOVE, 3), (HeaderOp.REMOVE, 2)]
    ctx.header_changes.extend(first)
    ctx.tags["authres.spf"] = "spf=fail"
    second = results.publish(ctx, "mx.test", {"authres.dkim": "dkim=none"})
    assert len(second) == 1  # forged ones are already gone; the old header is replaced
    ctx.header_changes.extend(second)
    out = ctx.message.with_changes(ctx.header_changes).raw  # type: ignore[union-attr]
    assert out.count(b"Authentication-Results: mx.test;") == 1
    assert b"mx.test; spf=fail; dkim=none\r\n" in out
    assert b"other.test; spf=pass" in out and b"bank.test" not in out
    assert results.current_header(ctx) is second[0]


def test_a_new_transaction_starts_afresh() -> None:
    ctx = ctx_with(b"From: a@example.org\r\n\r\nx\r\n")
    ctx.header_changes.extend(results.publish(ctx, "mx.test", {}))
    ctx.begin_transaction("T2")
    ctx.message = Message(b"From: a@example.org\r\n\r\nx\r\n")
    assert results.current_header(ctx) is None
    assert len(results.publish(ctx, "mx.test", {})) == 1
