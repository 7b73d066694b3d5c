"""An external test plugin on the queue and delivery hooks: it refuses delivery to
``blocked@`` recipients and writes every event it sees as a JSON line to ``config.log``."""

from __future__ import annotations

import json
from typing import Any

from elemta_plugin import Context, Plugin, Result

plugin = Plugin("delivery_observer", version="1.0.0", priority=50, failure_policy="continue")
log_path = ""


@plugin.configure
def configure(config: dict[str, Any]) -> None:
    global log_path
    log_path = str(config["log"])


def record(hook: str, ctx: Context) -> None:
    d = ctx.delivery
    row = {"hook": hook, "queue_id": d.queue_id if d else "", "recipient": d.recipient if d else "",
           "status": d.status if d else "", "code": d.code if d else 0}
    with open(log_path, "a") as f:
        f.write(json.dumps(row) + "\n")


@plugin.hook("delivery_attempt")
def attempt(ctx: Context) -> Result | None:
    record("delivery_attempt", ctx)
    if ctx.delivery is not None and ctx.delivery.recipient.startswith("blocked@"):
        return Result.reject("no delivery to this recipient", 550, "5.7.1")
    return None


def observer(hook: str) -> None:
    @plugin.hook(hook)
    def observe(ctx: Context) -> None:
        record(hook, ctx)


for _hook in ("queued", "deferred", "bounced", "expired", "delivery_result"):
    observer(_hook)


if __name__ == "__main__":
    plugin.serve()
