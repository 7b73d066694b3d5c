"""Elemta plugin SDK: write an external plugin in a few lines.

    from elemta_plugin import Plugin, Result

    plugin = Plugin("no_spam_bob", version="1.0")

    @plugin.hook("rcpt_to")
    def rcpt(ctx):
        if ctx.recipient == "bob@example.org":
            return Result.reject("Bob does not want mail")

    if __name__ == "__main__":
        plugin.serve()

The SDK does the go-plugin handshake, health and controller services, the hook stream,
watching the parent process, and logging to stderr (which the server captures).
"""

from __future__ import annotations

from elemta_plugin.plugin import Plugin
from elemta_plugin.types import (
    HOOKS,
    Action,
    Context,
    FailurePolicy,
    HeaderChange,
    HeaderOp,
    Message,
    Result,
)

__all__ = ["HOOKS", "Action", "Context", "FailurePolicy", "HeaderChange", "HeaderOp", "Message",
           "Plugin", "Result"]
__version__ = "0.1.0"
