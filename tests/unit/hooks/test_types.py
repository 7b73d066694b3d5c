from __future__ import annotations

from elemta_core.hooks.types import OBSERVER_HOOKS, Action, HookFamily, HookPoint, HookResult, smtp_reply


def test_every_hook_has_a_family() -> None:
    assert {hp.family for hp in HookPoint} == set(HookFamily)
    assert HookPoint.RATE_LIMITED in OBSERVER_HOOKS and HookPoint.RCPT_TO not in OBSERVER_HOOKS


def test_smtp_reply_defaults_and_sanity() -> None:
    assert smtp_reply(HookResult.reject()) == "550 5.7.1 Rejected by policy"
    assert smtp_reply(HookResult.tempfail("busy", 421, "4.7.0")) == "421 4.7.0 busy"
    assert smtp_reply(HookResult(Action.REJECT, 451, None, "x")) == "550 5.7.1 x"
    assert smtp_reply(HookResult(Action.TEMPFAIL, 450, "5.1.1", "x")) == "450 4.7.1 x"
    assert smtp_reply(HookResult.reject("one\ntwo\r\nthree")) == (
        "550-5.7.1 one\r\n550-5.7.1 two \r\n550 5.7.1 three")


def test_shared_continue_allocates_nothing() -> None:
    from elemta_core.hooks.types import CONTINUE

    assert HookResult() == CONTINUE and CONTINUE.tags == {}
