"""Exact float sums: order independent, rounded once, persisted without loss, older state converted."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from otelbridge import exact
from otelbridge.ledger import Ledger
from otelbridge.windows import MINUTE, Timing, plan

T0 = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
FIELDS = ("requests", "duration")
KEY = ("s", "success")
finite = st.floats(min_value=0, max_value=1e300, allow_nan=False, allow_infinity=False)


@settings(max_examples=300, deadline=None)
@given(values=st.lists(finite, min_size=1, max_size=40), divisor=st.sampled_from([1, 1000, 1_000_000]))
def test_sum_in_units_is_the_exact_sum_rounded_once(values: list[float], divisor: int) -> None:
    total = sum(exact.units(v) for v in values)
    truth = sum((Fraction(v) for v in values), Fraction(0))
    assert exact.quotient(total, divisor) == float(truth / divisor)
    assert exact.decode(exact.encode(total)) == total


def test_decode_refuses_what_no_float_sum_can_be() -> None:
    for text in ("0.1", "-1", "1/3", "abc"):
        with pytest.raises(ValueError):
            exact.decode(text)


def feed(rows: list[float], floats: tuple[str, ...]) -> Ledger:
    """One row per cycle, each settling one minute."""
    ledger = Ledger.starting_at(FIELDS, T0, floats)
    timing = Timing(delay=MINUTE, settle=MINUTE, quantile_window=MINUTE)
    for i, value in enumerate(rows):
        p = plan(T0 + timedelta(minutes=i + 2), ledger.settled, ledger.counted, timing)
        ledger.apply(p, {KEY: (1, value)}, {})
    return ledger


def test_ledger_float_totals_do_not_depend_on_the_order_of_rows() -> None:
    rng = random.Random(3)
    rows = [round(rng.random() * 10, 3) for _ in range(30)]  # decimals with three places
    forward, backward = feed(rows, ("duration",)), feed(rows[::-1], ("duration",))
    assert forward.totals == backward.totals
    naive_forward, naive_backward = feed(rows, ()), feed(rows[::-1], ())
    assert naive_forward.totals != naive_backward.totals  # what exactness removes
    assert forward.totals[KEY][0] == 30  # integer fields stay plain ints
    truth = sum((Fraction(v) for v in rows), Fraction(0))
    assert exact.quotient(int(forward.totals[KEY][1])) == float(truth)


def test_state_files_hold_exact_sums_and_older_files_are_converted() -> None:
    rows = [0.1, 0.7, 1e-3] * 4
    ledger = feed(rows, ("duration",))
    document = ledger.to_json()
    assert document["floats"] == ["duration"]
    assert Ledger.from_json(document, FIELDS) == ledger

    older = feed(rows, ())  # a ledger from before: plain float sums, no `floats`
    document = older.to_json()
    del document["floats"], document["seen"]
    loaded = Ledger.from_json(document, FIELDS)
    loaded.count_exactly(("duration",))
    before = older.totals[KEY][1]
    assert exact.quotient(int(loaded.totals[KEY][1])) == before  # taken exactly as it was
    timing = Timing(delay=MINUTE, settle=MINUTE, quantile_window=MINUTE)
    p = plan(T0 + timedelta(minutes=len(rows) + 2), loaded.settled, loaded.counted, timing)
    loaded.apply(p, {KEY: (1, 0.1)}, {})
    assert exact.quotient(int(loaded.totals[KEY][1])) == float(Fraction(before) + Fraction(0.1))
    assert loaded.corrections == 0


def test_a_field_that_stops_being_float_is_handed_back_rounded_once() -> None:
    ledger = feed([0.1, 0.2], ("duration",))
    ledger.count_exactly(())
    assert ledger.totals[KEY] == (2, float(Fraction(0.1) + Fraction(0.2)))
    assert ledger.floats == frozenset()
    with pytest.raises(ValueError):
        ledger.count_exactly(("nope",))


def test_every_field_may_be_a_float_field() -> None:
    ledger = Ledger.starting_at(("duration",), T0, ("duration",))
    timing = Timing(delay=MINUTE, settle=MINUTE, quantile_window=MINUTE)
    ledger.apply(plan(T0 + timedelta(minutes=2), ledger.settled, ledger.counted, timing), {KEY: (0.1,)}, {})
    assert ledger.totals[KEY] == (exact.units(0.1),)
    assert Ledger.from_json(ledger.to_json(), ("duration",)) == ledger
