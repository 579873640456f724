"""The ledger refuses an answer for minutes that do not continue where it stands."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from otelbridge.ledger import Ledger
from otelbridge.windows import MINUTE, Timing, plan

T0 = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
TIMING = Timing(delay=MINUTE, settle=5 * MINUTE, quantile_window=MINUTE)


def test_a_plan_made_for_other_boundaries_is_refused() -> None:
    ledger = Ledger.starting_at(("requests",), T0)
    stale = plan(T0 + timedelta(minutes=30), T0 - 10 * MINUTE, T0 - 10 * MINUTE, TIMING)
    assert not stale.abandon_open and stale.skipped.empty
    with pytest.raises(ValueError, match="ledger is settled to"):
        ledger.apply(stale, {}, {})
    assert ledger.settled == ledger.counted == T0, "nothing was applied"


def test_a_plan_that_continues_the_ledger_is_taken() -> None:
    ledger = Ledger.starting_at(("requests",), T0)
    step = plan(T0 + timedelta(minutes=30), T0, T0, TIMING)
    ledger.apply(step, {("s", "success"): (4,)}, {("s", "success"): (1,)})
    assert ledger.totals == {("s", "success"): (5,)}
    assert (ledger.settled, ledger.counted) == (step.settled, step.counted)
