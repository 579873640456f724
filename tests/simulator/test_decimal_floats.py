"""The decimal_floats knob: non-dyadic float metrics whose row sums are the exact sums rounded once."""

from __future__ import annotations

from datetime import timedelta
from fractions import Fraction

from otelbridge.simulator import Traffic
from otelbridge.simulator.events import SUM_FIELDS
from tests.simulator.sim_support import NOW, Api

SUMS = "sum { " + " ".join(SUM_FIELDS) + " }"
END = NOW.replace(second=0)
START = END - timedelta(minutes=30)
FLOATS = ("duration", "requestDuration")


async def test_rows_are_the_exact_sums_rounded_once(api: Api, traffic: Traffic, account: str) -> None:
    api.sim.knobs.decimal_floats = True
    rows = await api.rows(account, START, END, "scriptName status", SUMS)
    exact = traffic.exact_series_totals(account, START, END)
    assert len(rows) == len(exact) > 10
    for row in rows:
        key = (row["dimensions"]["scriptName"], row["dimensions"]["status"])
        for name in FLOATS:
            assert row["sum"][name] == float(exact[key][name]), (key, name)
        truth = traffic.series_totals(account, START, END)[key]
        assert row["sum"] == truth  # the integer fields are unchanged by the knob


def test_values_are_decimal_and_float_sums_depend_on_order(traffic: Traffic, account: str) -> None:
    traffic.knobs.decimal_floats = True
    minute = int(START.timestamp() // 60)
    events = [e for m in range(minute, minute + 30) for e in traffic.block(account, m)]
    # Not a binary fraction of modest size (the default mode's values are multiples of 2**-16)
    assert all(Fraction(e.duration).denominator > 2**16 for e in events)
    assert any(Fraction(e.requestDuration).denominator > 2**4 for e in events)
    forward = backward = 0.0
    for e in events:
        forward += e.weight * e.duration
    for e in reversed(events):
        backward += e.weight * e.duration
    assert forward != backward, "float addition of these values is order dependent"


def test_default_mode_is_unchanged(traffic: Traffic, account: str) -> None:
    minute = int(START.timestamp() // 60)
    assert all(Fraction(e.duration).denominator <= 2**16 for e in traffic.block(account, minute))
    traffic.knobs.decimal_floats = True
    decimal = traffic.block(account, minute)
    traffic.knobs.decimal_floats = False
    dyadic = traffic.block(account, minute)
    assert [e.weight for e in decimal] == [e.weight for e in dyadic]  # same traffic, other values
    assert [e.duration for e in decimal] != [e.duration for e in dyadic]
