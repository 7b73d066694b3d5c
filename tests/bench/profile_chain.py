"""Where an `elemta serve` process spends its CPU under load: py-spy samples one worker while
smtp-source drives it, then the samples are folded into the top functions.

    .venv/bin/python -m tests.bench.profile_chain [--chain default] [--size 4096]
        [--seconds 20] [--rate 250] [--top 10] [--out profile.txt]

The server is the suite's (tests/bench/scenarios.py): one worker, the signed message, the
local DNS server. py-spy runs as ``py-spy record --pid P --format raw`` (collapsed stacks, so
needs ptrace rights: root, or ptrace_scope 0), with ``--gil`` by default: only the thread
holding the GIL is sampled, which is where Python spends CPU. Printed: the top functions by own samples
(where the CPU is) and by inclusive samples among Elemta's own code (which of its calls
cost it), each as a percentage of all samples. ``--out`` keeps the raw stacks for
flamegraph tools.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from tests.bench.load import Load, LoadError, drive
from tests.bench.scenarios import Chain, Scenario, dkim_key, publish, signed_message
from tests.bench.targets import start_elemta
from tests.support.dns_server import ZoneServer

REPO = Path(__file__).resolve().parents[2]
_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")
OWN = ("elemta_core/", "builtin_plugins/")


@dataclass(frozen=True)
class Frame:
    func: str
    file: str
    line: int

    @property
    def short_file(self) -> str:
        f = self.file
        for marker in ("site-packages/", str(REPO) + "/", "/lib/python3"):
            if marker in f:
                return f.split(marker, 1)[1]
        return f

    @property
    def where(self) -> str:
        """``file:line function``: one sampled line."""
        return f"{self.short_file}:{self.line} {self.func}" if self.line else self.function

    @property
    def function(self) -> str:
        """``file function``: the function whichever line was running, for inclusive totals."""
        return f"{self.short_file} {self.func}".strip()


def parse_frame(text: str) -> Frame:
    m = _FRAME.match(text.strip())
    if not m:
        return Frame(text.strip(), "", 0)
    return Frame(m["func"], m["file"], int(m["line"] or 0))


@dataclass
class Profile:
    total: int
    own: Counter[str]  # leaf frame (file:line function) -> samples
    inclusive: Counter[str]  # Elemta function -> samples with it anywhere on the stack

    def top(self, counter: Counter[str], n: int) -> list[tuple[str, int, float]]:
        return [(k, v, 100.0 * v / self.total) for k, v in counter.most_common(n)]


def fold(raw: str) -> Profile:
    """py-spy's raw format: one ``frame;frame;…;leaf count`` line per distinct stack, the
    root first (a thread's name or process frame may lead, without a file)."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [parse_frame(f) for f in stack.split(";") if f]
        if frames:
            own[frames[-1].where] += n
        seen = {f.function for f in frames if any(o in f.file for o in OWN)}
        for fn in seen:
            inclusive[fn] += n
    return Profile(total, own, inclusive)


def record(pid: int, seconds: float, rate: int, out: Path, gil: bool) -> subprocess.Popen[bytes]:
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        raise SystemExit("py-spy is missing: .venv/bin/pip install py-spy")
    return subprocess.Popen([spy, "record", "--pid", str(pid), "--rate", str(rate),
                             "--duration", str(int(seconds)), "--format", "raw",
                             "-o", str(out), "--nonblocking", *(["--gil"] if gil else [])],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.bench.profile_chain")
    ap.add_argument("--chain", type=Chain, default=Chain.DEFAULT)
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--seconds", type=int, default=20)
    ap.add_argument("--rate", type=int, default=250, help="samples per second")
    ap.add_argument("--sessions", type=int, default=20)
    ap.add_argument("--top", type=int, default=10)
    ap.add_argument("--out", default="", help="keep the raw collapsed stacks here")
    ap.add_argument("--all-threads", action="store_true",
                    help="sample every thread, not only the one holding the GIL (py-spy counts "
                         "threads blocked in futex waits as busy: use for latency, not CPU)")
    a = ap.parse_args(argv)
    if a.seconds < 1 or a.rate < 1 or a.top < 1:
        ap.error("--seconds, --rate and --top must be positive")
    key = dkim_key()
    with ZoneServer() as zone, tempfile.TemporaryDirectory(prefix="elemta-prof-") as tmp:
        work = Path(tmp)
        publish(zone, key)
        msg = signed_message(a.size, key).write(work / "message.txt")
        target = start_elemta(Scenario(a.chain, 1), work, zone.address)
        stop = threading.Event()
        sent = [0]

        def keep_busy() -> None:
            while not stop.is_set():
                try:
                    drive(target.port, Load(200, a.sessions, msg))
                    target.settle(200)
                except LoadError as e:
                    print(f"load: {e}", file=sys.stderr)
                    return
                sent[0] += 200

        try:
            assert target.server is not None and target.server.proc is not None
            drive(target.port, Load(200, a.sessions, msg))  # warm-up
            target.settle(200)
            loader = threading.Thread(target=keep_busy, daemon=True)
            loader.start()
            raw = work / "stacks.txt"
            t0 = time.monotonic()
            spy = record(target.server.proc.pid, a.seconds, a.rate, raw, not a.all_threads)
            _, err = spy.communicate(timeout=a.seconds + 60)
            took = time.monotonic() - t0
            stop.set()
            loader.join(60)
            if spy.returncode != 0 or not raw.exists():
                raise SystemExit(f"py-spy failed ({spy.returncode}): {err.decode()[-1000:]}")
            text = raw.read_text()
            if a.out:
                Path(a.out).write_text(text)
        finally:
            stop.set()
            target.stop()
    prof = fold(text)
    print(f"chain={a.chain.value} size={a.size} samples={prof.total} over {took:.1f}s "
          f"({sent[0]} messages sent while sampling, {sent[0] / took:.0f} msgs/s)")
    print(f"\n-- top {a.top} by own samples (where the CPU is) --")
    for k, v, pct in prof.top(prof.own, a.top):
        print(f"{pct:6.1f}%  {v:6d}  {k}")
    print(f"\n-- top {a.top} Elemta functions by inclusive samples --")
    for k, v, pct in prof.top(prof.inclusive, a.top):
        print(f"{pct:6.1f}%  {v:6d}  {k}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
