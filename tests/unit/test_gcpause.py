"""The collector hold is counted across overlapping holders."""

from __future__ import annotations

import gc

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
