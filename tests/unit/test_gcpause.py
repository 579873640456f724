"""The collector hold is counted across overlapping holders."""

from __future__ import annotations

import gc
import weakref

from otelbridge import gcpause


def test_overlapping_holds_resume_only_when_the_last_leaves() -> None:
    assert gc.isenabled()
    first = gcpause.paused()
    second = gcpause.paused()
    first.__enter__()
    second.__enter__()
    assert not gc.isenabled()
    first.__exit__(None, None, None)
    assert not gc.isenabled(), "the second holder is still inside"
    second.__exit__(None, None, None)
    assert gc.isenabled()


def test_a_disabled_collector_stays_disabled() -> None:
    gc.disable()
    try:
        with gcpause.paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


class _Cycle:
    def __init__(self) -> None:
        self.me = self


def test_survivors_are_frozen_and_a_frozen_cycle_is_collected_at_the_periodic_full_pass() -> None:
    survivors = gcpause.Survivors(full_pass_every=3)
    try:
        cycle = _Cycle()
        gone = weakref.ref(cycle)
        assert survivors.keep() == 0  # render 1
        assert gc.get_freeze_count() > 0
        del cycle
        gc.collect()
        assert gone() is not None, "a frozen cycle is out of the collector's reach"
        assert survivors.keep() == 0 and gone() is not None  # render 2: not yet
        assert survivors.keep() > 0  # render 3: the full pass
        assert gone() is None and survivors.full_passes == 1
        assert gc.get_freeze_count() > 0, "frozen again after the pass"
    finally:
        survivors.release()
    assert gc.get_freeze_count() == 0
