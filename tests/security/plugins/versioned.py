"""A plugin whose answers carry its VERSION (the hot reload test edits that line).

rcpt_to: ``probe@…`` is refused with "version N"; message: every message gets
``X-Plugin-Version: N``.
"""

from __future__ import annotations

from elemta_plugin import Context, Plugin, Result

VERSION = "1"

plugin = Plugin("versioned", version=f"{VERSION}.0.0", failure_policy="tempfail")


@plugin.hook("rcpt_to")
async def rcpt_to(ctx: Context) -> Result | None:
    if (ctx.recipient or "").startswith("probe@"):
        return Result.reject(f"version {VERSION}", 550, "5.7.1")
    return None


@plugin.hook("message")
async def message(ctx: Context) -> Result | None:
    return Result.cont().add_header("X-Plugin-Version", VERSION)


if __name__ == "__main__":
    plugin.serve()
