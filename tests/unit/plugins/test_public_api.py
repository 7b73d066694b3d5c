"""The plugin API is a contract with third parties: its surface changes only on purpose."""

from __future__ import annotations

from elemta_core import hooks, plugins


def test_plugin_api_surface_is_pinned() -> None:
    assert sorted(plugins.__all__) == ["Plugin", "PluginInfo", "PluginKind", "PluginServices"]
    assert sorted(hooks.__all__) == sorted([
        "CONTINUE", "Action", "DeliveryInfo", "FailurePolicy", "HeaderChange", "HeaderOp",
        "HookContext", "HookFamily", "HookPoint", "HookResult", "Pipeline", "PluginUnavailable",
        "SecurityEvent"])
    for name in hooks.__all__:
        assert getattr(hooks, name) is not None


def test_hook_points_are_the_designed_set() -> None:
    assert [h.value for h in hooks.HookPoint] == [
        "connect", "disconnect", "helo", "starttls", "auth", "unknown_command", "mail_from",
        "rcpt_to", "data_start", "message", "after_queue", "queued", "deferred", "bounced",
        "expired", "delivery_attempt", "delivery_result", "rate_limited", "auth_failed",
        "policy_violation", "plugin_failed"]
    assert [a.name for a in hooks.Action] == ["CONTINUE", "ACCEPT", "REJECT", "TEMPFAIL",
                                              "DISCARD", "QUARANTINE"]
