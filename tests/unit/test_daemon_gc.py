from __future__ import annotations

import gc

from elemta_core.daemon import GC_THRESHOLD, settle_gc


def test_start_up_heap_frozen_and_young_collections_rarer() -> None:
    before = gc.get_threshold()
    try:
        settle_gc()
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold()[0] == GC_THRESHOLD
        cycle: list[object] = []
        cycle.append(cycle)
        del cycle
        assert gc.collect() >= 1  # cycles made after start-up are still collected
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
