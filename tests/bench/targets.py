"""The servers one benchmark run drives: the peers (smtp-sink, bare aiosmtpd, Haraka) and the
Elemta servers of each scenario, all started once and stopped together.

Elemta delivers what it accepted into a Maildir in the background. That work is not timed,
but it must not run while the next server is measured (it would steal the CPU from it), so
after each measurement `settle` waits until every accepted message is delivered, checks
the first one (did the chain do its work?), and empties them and moves them aside so 100 KiB
runs stay small. They are not deleted until the end: deleting thousands of files between
rounds frees their inodes, and on the journal-less ext4 of these VMs every file created in
the next 30 s then scans past the recently freed inodes (the kernel's ``recently_deleted``:
13% of the server's CPU in a ``perf`` profile), a cost of the harness, not of the server.
"""

from __future__ import annotations

import enum
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.bench import peers
from tests.bench.scenarios import RECIPIENT, Scenario, check_delivered, elemta_config
from tests.support.server import ServerProcess


class Kind(str, enum.Enum):
    CEILING = "ceiling"  # smtp-sink: what the load generator and kernel allow
    PEER = "peer"  # what Elemta is measured against
    ELEMTA = "elemta"


class SettleError(RuntimeError):
    """Elemta did not deliver what it accepted, or the chain did not do its work."""


@dataclass
class Target:
    name: str
    kind: Kind
    port: int
    peer: peers.Peer | None = None
    server: ServerProcess | None = None
    scenario: Scenario | None = None
    checked: bool = False
    _maildir: Path | None = field(default=None, repr=False)

    def settle(self, accepted: int, timeout: float = 120.0) -> None:
        """Wait for Elemta's deliveries of ``accepted`` messages, check one, remove them."""
        if self.server is None or self.scenario is None:
            return
        local, _, domain = RECIPIENT.rpartition("@")
        new = self.server.state_dir / "mail" / domain / local / "new"
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            names = os.listdir(new) if new.exists() else []
            seen = len(names)
            if seen >= accepted:
                break
            if time.monotonic() > deadline:
                raise SettleError(f"{self.name}: {seen} of {accepted} accepted messages "
                                  f"delivered after {timeout:.0f}s\n{self.server.log()[-2000:]}")
            time.sleep(0.05)
        if not self.checked and names:
            why = check_delivered(self.scenario.chain, (new / names[0]).read_bytes())
            if why:
                raise SettleError(f"{self.name}: {why}")
            self.checked = True
        seen = new.parent / "seen"
        seen.mkdir(exist_ok=True)
        for n in names:
            os.truncate(new / n, 0)
            os.rename(new / n, seen / n)

    def stop(self) -> None:
        if self.peer is not None:
            self.peer.stop()
        if self.server is not None:
            self.server.stop()


def start_peer(name: str, work: Path) -> Target:
    if name == "smtp-sink":
        return Target(name, Kind.CEILING, (p := peers.smtp_sink()).port, peer=p)
    if name == "aiosmtpd":
        return Target(name, Kind.PEER, (p := peers.aiosmtpd_sink()).port, peer=p)
    if name == "haraka":
        d = work / "haraka"
        d.mkdir()
        return Target(name, Kind.PEER, (p := peers.haraka(d)).port, peer=p)
    raise ValueError(f"unknown peer {name!r}: smtp-sink, aiosmtpd or haraka")


def start_elemta(scenario: Scenario, work: Path, dns_address: str) -> Target:
    d = work / scenario.name.replace("/", "-")
    d.mkdir()
    srv = ServerProcess(elemta_config(d, scenario, dns_address), d)
    try:
        srv.start()
    except Exception:
        srv.stop()
        raise
    return Target(scenario.name, Kind.ELEMTA, srv.port, server=srv, scenario=scenario)
