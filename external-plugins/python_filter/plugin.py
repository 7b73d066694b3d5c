"""python_filter: header and subject rules on the message, plus a header on every message
that passes.

Config (the catalog entry's ``config`` table):

    reject_subjects = ["(?i)viagra"]       # regexes on Subject: reject (550 5.7.1)
    quarantine_subjects = ["(?i)invoice"]  # regexes on Subject: quarantine
    required_headers = ["From", "Date"]    # missing: reject (550 5.6.0)
    deny_headers = { "X-Mailer" = "(?i)massmailer" }  # header regex: reject
    add_header = "X-Elemta-Filter"         # added to accepted messages ("" = none)
"""

from __future__ import annotations

import re
from typing import Any

from elemta_plugin import Context, Plugin, Result

plugin = Plugin("python_filter", version="1.0.0",
                description="Subject and header rules; marks passing mail with a header",
                priority=60, failure_policy="continue")


class Rules:
    def __init__(self, config: dict[str, Any]) -> None:
        self.reject_subjects = [re.compile(p) for p in config.get("reject_subjects", [])]
        self.quarantine_subjects = [re.compile(p) for p in config.get("quarantine_subjects", [])]
        self.required = [str(h) for h in config.get("required_headers", [])]
        self.deny = {str(k): re.compile(v) for k, v in config.get("deny_headers", {}).items()}
        self.add_header = str(config.get("add_header", "X-Elemta-Filter"))


rules = Rules({})


@plugin.configure
def configure(config: dict[str, Any]) -> None:
    global rules
    rules = Rules(config)  # a bad regex raises: the server refuses the configuration


@plugin.hook("message")
def message(ctx: Context) -> Result | None:
    msg = ctx.message
    if msg is None:
        return None
    for name in rules.required:
        if msg.get(name) is None:
            return Result.reject(f"Message lacks a {name} header", 550, "5.6.0",
                                 reason=f"missing {name}")
    subject = msg.get("Subject", "") or ""
    for rx in rules.reject_subjects:
        if rx.search(subject):
            return Result.reject("Message refused by content policy", reason=f"subject ~ {rx.pattern}")
    for name, rx in rules.deny.items():
        for value in msg.get_all(name):
            if rx.search(value):
                return Result.reject("Message refused by content policy",
                                     reason=f"{name} ~ {rx.pattern}")
    for rx in rules.quarantine_subjects:
        if rx.search(subject):
            return Result.quarantine(f"subject ~ {rx.pattern}")
    r = Result.cont(**{"filter.result": "pass"})
    if rules.add_header:
        r.add_header(rules.add_header, f"pass (python_filter {plugin.version})")
    return r


if __name__ == "__main__":
    plugin.serve()
