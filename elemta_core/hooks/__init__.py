"""The hook vocabulary shared by built-in and external plugins (see docs/hooks.md)."""

from elemta_core.hooks.context import DeliveryInfo, HookContext, SecurityEvent
from elemta_core.hooks.pipeline import Pipeline, PluginUnavailable
from elemta_core.hooks.types import (
    CONTINUE,
    Action,
    FailurePolicy,
    HeaderChange,
    HeaderOp,
    HookFamily,
    HookPoint,
    HookResult,
)

__all__ = [
    "CONTINUE", "Action", "DeliveryInfo", "FailurePolicy", "HeaderChange", "HeaderOp",
    "HookContext", "HookFamily", "HookPoint", "HookResult", "Pipeline", "PluginUnavailable",
    "SecurityEvent",
]
