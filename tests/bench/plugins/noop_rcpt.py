"""The cheapest useful external plugin, for benchmarks: a sync rcpt_to handler that tags."""

from __future__ import annotations

import os

from elemta_plugin import Plugin, Result

plugin = Plugin("noop_rcpt", version="1.0", failure_policy="continue",
                streaming=os.environ.get("NOOP_STREAMING", "1") == "1")
TAGGED = Result.cont(bench="ok")


@plugin.hook("rcpt_to")
def rcpt_to(ctx):  # type: ignore[no-untyped-def]
    return TAGGED


if __name__ == "__main__":
    plugin.serve()
