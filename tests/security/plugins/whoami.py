"""Answers every RCPT with who it runs as: ``550 5.7.1 uid U gid G``."""

from __future__ import annotations

import os

from elemta_plugin import Context, Plugin, Result

plugin = Plugin("whoami", version="0.1.0", failure_policy="tempfail")


@plugin.hook("rcpt_to")
async def rcpt_to(ctx: Context) -> Result | None:
    return Result.reject(f"uid {os.getuid()} gid {os.getgid()}", 550, "5.7.1")


if __name__ == "__main__":
    plugin.serve()
