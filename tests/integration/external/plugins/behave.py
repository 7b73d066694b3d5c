"""A test plugin that misbehaves on request: the recipient's local part says how.

crash@…  exits at once (os._exit)          hang@…   never answers (async)
block@…  blocks its event loop for 5 s      reject@… 550 with a tag
anything else: CONTINUE with tag behave=ok. ``config.crash_after_start`` exits after start.
"""

from __future__ import annotations

import asyncio
import os
import time

from elemta_plugin import Context, Plugin, Result

plugin = Plugin("behave", version="0.1.0", failure_policy="tempfail")


@plugin.configure
def configure(config: dict) -> None:
    if config.get("crash_after_start"):
        asyncio.get_running_loop().call_later(float(config["crash_after_start"]), os._exit, 7)


@plugin.hook("rcpt_to")
async def rcpt_to(ctx: Context) -> Result | None:
    local = (ctx.recipient or "").partition("@")[0]
    if local == "crash":
        os._exit(3)
    if local == "hang":
        await asyncio.sleep(3600)
    if local == "block":
        time.sleep(5)  # noqa: ASYNC251 - blocking the loop is the point
    if local == "reject":
        return Result.reject("no thanks", 550, "5.7.1").tag(behave="rejected")
    return Result.cont(behave="ok")


if __name__ == "__main__":
    plugin.serve()
