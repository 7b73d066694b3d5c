"""greylist: triplet greylisting (client network, sender, recipient) with a SQLite store.

The first delivery attempt of an unknown triplet gets a 451; a retry after ``delay_s`` (and
within ``retry_window_s``) passes and whitelists the triplet for ``expire_s``. The store
lives in the plugin's state directory, so it survives restarts of the plugin and server.

Config: delay_s = 300, retry_window_s = 14400, expire_s = 3024000, ipv4_prefix = 24,
ipv6_prefix = 64, pass_networks = ["127.0.0.0/8"] (never greylisted), db = "greylist.db".
"""

from __future__ import annotations

import ipaddress
import os
import sqlite3
import time
from typing import Any

from elemta_plugin import Context, Plugin, Result

plugin = Plugin("greylist", version="1.0.0",
                description="Triplet greylisting with a persistent SQLite store",
                priority=40, failure_policy="continue")

SCHEMA = """
CREATE TABLE IF NOT EXISTS triplets (
  network TEXT NOT NULL, sender TEXT NOT NULL, recipient TEXT NOT NULL,
  first_seen REAL NOT NULL, passed REAL,
  PRIMARY KEY (network, sender, recipient)
) WITHOUT ROWID
"""


class Greylist:
    def __init__(self, config: dict[str, Any], state_dir: str) -> None:
        self.delay = float(config.get("delay_s", 300))
        self.window = float(config.get("retry_window_s", 4 * 3600))
        self.expire = float(config.get("expire_s", 35 * 86400))
        self.v4 = int(config.get("ipv4_prefix", 24))
        self.v6 = int(config.get("ipv6_prefix", 64))
        self.pass_networks = [ipaddress.ip_network(n, strict=False)
                              for n in config.get("pass_networks", [])]
        path = os.path.join(state_dir or ".", str(config.get("db", "greylist.db")))
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute(SCHEMA)

    def network(self, ip: str) -> str | None:
        addr = ipaddress.ip_address(ip)
        if any(addr in n for n in self.pass_networks):
            return None
        prefix = self.v4 if addr.version == 4 else self.v6
        return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))

    def check(self, ip: str, sender: str, recipient: str, now: float) -> float:
        """Seconds the client still has to wait (0: pass)."""
        net = self.network(ip)
        if net is None:
            return 0.0
        key = (net, sender.lower(), recipient.lower())
        row = self.db.execute("SELECT first_seen, passed FROM triplets WHERE network=? AND "
                              "sender=? AND recipient=?", key).fetchone()
        if row is not None:
            first, passed = row
            if passed is not None and now - passed < self.expire:
                self.db.execute("UPDATE triplets SET passed=? WHERE network=? AND sender=? "
                                "AND recipient=?", (now, *key))
                return 0.0
            if passed is None and self.delay <= now - first <= self.delay + self.window:
                self.db.execute("UPDATE triplets SET passed=? WHERE network=? AND sender=? "
                                "AND recipient=?", (now, *key))
                return 0.0
            if passed is None and now - first < self.delay:
                return self.delay - (now - first)
        self.db.execute("INSERT OR REPLACE INTO triplets VALUES (?, ?, ?, ?, NULL)", (*key, now))
        return self.delay


grey: Greylist | None = None


@plugin.configure
def configure(config: dict[str, Any]) -> None:
    global grey
    grey = Greylist(config, plugin.state_dir)


@plugin.hook("rcpt_to")
def rcpt_to(ctx: Context) -> Result | None:
    assert grey is not None, "configure was not called"
    wait = grey.check(ctx.peer_ip, ctx.mail_from or "", ctx.recipient or "", time.time())
    if wait > 0:
        return Result.tempfail(f"Greylisted, please try again in {int(wait) + 1} seconds",
                               451, "4.7.1", reason="greylisted")
    return Result.cont(greylist="pass")


if __name__ == "__main__":
    plugin.serve()
