"""Turning a run's measurements into medians, ratios, the issue's goals, a table and JSON.

Absolute figures on a shared machine are noise; what the suite reports and judges are
ratios between servers measured in the same run, interleaved.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field
from typing import Any

from tests.bench.scenarios import Chain

GOAL_NONE_VS_HARAKA = 1.2
GOAL_DEFAULT_VS_HARAKA = 0.8
GOAL_DISPATCH_NS = 2000.0
GOAL_SCALING = 0.75
SCALING_MIN_CORES = 8  # the scaling goal is judged only where 8 workers have 8 cores


@dataclass
class Series:
    """One server's rates at one message size, one per round."""

    rates: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def median(self) -> float | None:
        return statistics.median(self.rates) if self.rates else None


@dataclass
class Goal:
    name: str
    target: float
    measured: float | None
    at_least: bool = True  # False: the measured value must be at most the target
    judged: bool = True  # False: printed for information (e.g. scaling on a 2-core machine)
    note: str = ""

    @property
    def verdict(self) -> str:
        if self.measured is None:
            return "n/a"
        if not self.judged:
            return "info"
        ok = self.measured >= self.target if self.at_least else self.measured <= self.target
        return "PASS" if ok else "FAIL"


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a and b else None


def elemta_name(chain: Chain, workers: int) -> str:
    return f"elemta/{chain.value}/w{workers}"


def goals(results: dict[int, dict[str, Series]], workers: list[int], cores: int,
          dispatch: dict[str, Any] | None) -> list[Goal]:
    out: list[Goal] = []
    for size, series in results.items():
        haraka = series.get("haraka")
        h = haraka.median if haraka else None
        for w in workers:
            for chain, want in ((Chain.NONE, GOAL_NONE_VS_HARAKA),
                                (Chain.DEFAULT, GOAL_DEFAULT_VS_HARAKA)):
                s = series.get(elemta_name(chain, w))
                if s is None or haraka is None:
                    continue
                out.append(Goal(f"{chain.value} chain w{w} / haraka discard @ {size // 1024} KiB",
                                want, ratio(s.median, h)))
        for chain in Chain:
            one = series.get(elemta_name(chain, 1))
            for w in workers:
                many = series.get(elemta_name(chain, w))
                if w == 1 or one is None or many is None or not one.median or not many.median:
                    continue
                judged = cores >= SCALING_MIN_CORES and w <= SCALING_MIN_CORES
                out.append(Goal(
                    f"scaling {chain.value} w{w} / ({w} x w1) @ {size // 1024} KiB", GOAL_SCALING,
                    round(many.median / (w * one.median), 3), judged=judged,
                    note="" if judged else f"{cores} cores: judged on >= {SCALING_MIN_CORES}"))
    if dispatch:
        for key in ("sync_ns_per_hook", "async_ns_per_hook_no_timeout",
                    "async_ns_per_hook_with_timeout"):
            if key in dispatch:
                out.append(Goal(f"dispatch {key} (ns)", GOAL_DISPATCH_NS, dispatch[key],
                                at_least=False))
    return out


def table(results: dict[int, dict[str, Series]]) -> str:
    """One block per message size: median msgs/s, the rounds, and ratios to the peers."""
    lines = []
    head = (f"{'server':<22}{'msgs/s':>9}{'x haraka':>10}{'x aiosmtpd':>11}{'x sink':>8}"
            f"  rounds")
    for size, series in results.items():
        lines += [f"\n== {size // 1024} KiB messages ==", head, "-" * len(head)]
        ref = {k: series[k].median if k in series else None
               for k in ("haraka", "aiosmtpd", "smtp-sink")}
        for name, s in series.items():
            m = s.median

            def cell(r: float | None, width: int) -> str:
                return f"{r:>{width}.2f}" if r is not None else f"{'-':>{width}}"

            lines.append(f"{name:<22}{(f'{m:.0f}' if m else 'ERR'):>9}"
                         f"{cell(ratio(m, ref['haraka']), 10)}"
                         f"{cell(ratio(m, ref['aiosmtpd']), 11)}"
                         f"{cell(ratio(m, ref['smtp-sink']), 8)}  "
                         f"{' '.join(f'{r:.0f}' for r in s.rates)}"
                         + (f"  errors: {len(s.errors)}" if s.errors else ""))
    return "\n".join(lines)


def goal_table(gs: list[Goal]) -> str:
    lines = ["\n== goals (issue #10) =="]
    for g in gs:
        op = ">=" if g.at_least else "<="
        val = "-" if g.measured is None else f"{g.measured:g}"
        lines.append(f"{g.verdict:<5} {g.name:<55} {val:>9}  (goal {op} {g.target:g})"
                     + (f"  [{g.note}]" if g.note else ""))
    return "\n".join(lines)


def as_json(results: dict[int, dict[str, Series]], gs: list[Goal],
            meta: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {**meta, "sizes": {}, "goals": []}
    for size, series in results.items():
        ref = {k: series[k].median if k in series else None
               for k in ("haraka", "aiosmtpd", "smtp-sink")}
        out["sizes"][str(size)] = {
            name: {"median_msgs_per_s": round(s.median, 1) if s.median else None,
                   "rounds": [round(r, 1) for r in s.rates], "errors": s.errors,
                   "ratio_vs_haraka": ratio(s.median, ref["haraka"]),
                   "ratio_vs_aiosmtpd": ratio(s.median, ref["aiosmtpd"]),
                   "ratio_vs_smtp_sink": ratio(s.median, ref["smtp-sink"])}
            for name, s in series.items()}
    out["goals"] = [{**asdict(g), "verdict": g.verdict} for g in gs]
    return out
