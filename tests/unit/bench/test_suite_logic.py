"""The benchmark suite's own logic: message, config, ratios, goals and profile folding.

The suite itself (tests/bench/run.py) needs minutes and real peers; these pin the parts a
wrong figure would come from, in milliseconds.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bench.load import _split
from tests.bench.profile_chain import fold, parse_frame
from tests.bench.report import Goal, Series, goals, ratio, table
from tests.bench.run import parse_args
from tests.bench.scenarios import (
    DEFAULT_CHAIN,
    Chain,
    Scenario,
    check_delivered,
    dkim_key,
    elemta_config,
    signed_message,
    worker_counts,
)


def test_worker_counts_cover_one_two_cores_and_eight() -> None:
    assert worker_counts(1) == [1, 2]
    assert worker_counts(2) == [1, 2]
    assert worker_counts(16) == [1, 2, 8, 16]


def test_split_spreads_messages_without_losing_any() -> None:
    assert _split(10, 3) == [4, 3, 3]
    assert sum(_split(1001, 4)) == 1001


def test_signed_message_has_the_size_lf_lines_and_a_signature() -> None:
    key = dkim_key()
    for size in (4096, 102400):
        m = signed_message(size, key)
        assert b"\r" not in m.lf_bytes
        assert m.lf_bytes.startswith(b"DKIM-Signature:") or b"\nDKIM-Signature:" in m.lf_bytes
        assert abs(len(m.lf_bytes) - size) < 0.1 * size


def test_default_chain_config_limits_loopback_without_refusing_it(tmp_path: Path) -> None:
    cfg = elemta_config(tmp_path, Scenario(Chain.DEFAULT, 2), "127.0.0.1:5353")
    assert cfg["plugins"]["enabled"] == list(DEFAULT_CHAIN)
    assert cfg["server"]["workers"] == 2
    assert cfg["rate_limiter"]["allow"] == []
    assert cfg["logging"]["level"] == "warning" and cfg["metrics"]["listen"] == ""
    ext = elemta_config(tmp_path, Scenario(Chain.EXTERNAL, 1), "127.0.0.1:5353")
    assert ext["plugins"]["external"][0]["name"] == "noop_rcpt"


def test_check_delivered_wants_every_auth_pass() -> None:
    ok = b"Authentication-Results: mx.test; spf=pass; dkim=pass; dmarc=pass\r\n\r\n"
    assert check_delivered(Chain.DEFAULT, ok) is None
    assert "dkim=pass" in (check_delivered(Chain.DEFAULT, ok.replace(b"dkim=pass", b"")) or "")
    assert check_delivered(Chain.NONE, b"") is None


def test_goals_are_ratios_in_the_same_run_and_scaling_is_info_on_few_cores() -> None:
    results = {4096: {"haraka": Series([1000, 1100, 900]),
                      "elemta/none/w1": Series([1300]), "elemta/none/w2": Series([2000]),
                      "elemta/default/w1": Series([700])}}
    gs = {g.name: g for g in goals(results, [1, 2], 2, {"sync_ns_per_hook": 500.0})}
    assert gs["none chain w1 / haraka discard @ 4 KiB"].measured == 1.3
    assert gs["none chain w1 / haraka discard @ 4 KiB"].verdict == "PASS"
    assert gs["default chain w1 / haraka discard @ 4 KiB"].verdict == "FAIL"
    assert gs["scaling none w2 / (2 x w1) @ 4 KiB"].verdict == "info"
    assert gs["dispatch sync_ns_per_hook (ns)"].verdict == "PASS"
    many = {g.name: g for g in goals(results, [1, 2], 16, None)}
    judged = many["scaling none w2 / (2 x w1) @ 4 KiB"]
    assert (judged.measured, judged.verdict) == (0.769, "PASS")  # 2000 / (2 x 1300)
    assert "ERR" in table({4096: {"elemta/none/w1": Series(errors=["boom"])}})
    assert ratio(None, 1.0) is None and Goal("x", 1, None).verdict == "n/a"


def test_fold_counts_own_and_inclusive_samples() -> None:
    raw = ("run (elemta_core/daemon.py:10);push (elemta_core/smtp/protocol.py:5);"
           "write (asyncio/streams.py:343) 3\n"
           "run (elemta_core/daemon.py:10);verify (dkim/__init__.py:9) 1\n"
           "garbage line\n")
    p = fold(raw)
    assert p.total == 4
    assert p.own.most_common(1)[0] == ("asyncio/streams.py:343 write", 3)
    assert p.inclusive["elemta_core/daemon.py run"] == 4
    assert p.inclusive["elemta_core/smtp/protocol.py push"] == 3
    assert parse_frame("process 123").func == "process 123"


def test_arguments_refuse_nonsense() -> None:
    a = parse_args(["--quick"])
    assert a.workers == [1] and a.sizes == [4096] and a.rounds == 1
    assert parse_args(["--workers", "1,N"]).workers == sorted({1, a.cores})
    for bad in (["--workers", "0"], ["--chains", "bogus"], ["--peers", "postfix"],
                ["--messages", "-1"]):
        with pytest.raises(SystemExit):
            parse_args(bad)
