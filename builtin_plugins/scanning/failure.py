"""What a scanner plugin does when its daemon is down, slow or talking nonsense."""

from __future__ import annotations

from collections.abc import Mapping

from elemta_core.hooks.context import HookContext, SecurityEvent
from elemta_core.hooks.pipeline import PluginUnavailable, failure_result
from elemta_core.hooks.types import FailurePolicy, HookPoint, HookResult
from elemta_core.plugins.api import Plugin

__all__ = ["scanner_failed"]


def scanner_failed(plugin: Plugin, ctx: HookContext, policy: FailurePolicy | None, why: str,
                   tags: Mapping[str, str]) -> HookResult:
    """Apply the section's ``failure_policy``; unset, leave it to the pipeline.

    Raising :class:`PluginUnavailable` lets the pipeline apply the plugin's configured policy
    (``[plugins.options.<name>]``), count the failure and tell the ``plugin_failed``
    observers; a section policy does the same here, so both paths look alike from outside.
    """
    if policy is None:
        raise PluginUnavailable(why)
    plugin.log.warning("%s: %s; policy %s", ctx.transaction_id or ctx.session_id, why,
                       policy.value)
    plugin.services.security_event(
        HookPoint.PLUGIN_FAILED, ctx,
        SecurityEvent("plugin_failed", why, plugin=plugin.name,
                      data={"hook": HookPoint.MESSAGE.value, "policy": policy.value}))
    result = failure_result(policy)
    return HookResult(result.action, result.code, result.enhanced, result.text,
                      tags=dict(tags), reason=why)
