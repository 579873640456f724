"""otelbridge.corrections counts each downward revision once, across cycles and restarts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from otelbridge import exact
from otelbridge.ledger import Ledger, Rows
from otelbridge.windows import MINUTE, Timing, plan

T0 = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
FIELDS = ("requests", "errors")
KEY = ("s", "success")
# The open range stays open for the whole test: settle is far away.
TIMING = Timing(delay=MINUTE, settle=timedelta(hours=2), quantile_window=MINUTE)


def cycle(ledger: Ledger, minute: int, open_rows: Rows) -> Ledger:
    p = plan(T0 + timedelta(minutes=minute), ledger.settled, ledger.counted, TIMING)
    assert p.settling.empty
    ledger.apply(p, {}, open_rows)
    return ledger


def test_one_downward_revision_is_counted_once_while_it_lasts() -> None:
    ledger = cycle(Ledger.starting_at(FIELDS, T0), 5, {KEY: (10, 1)})
    for minute in range(6, 12):  # the same lower answer, six cycles in a row
        cycle(ledger, minute, {KEY: (8, 1)})
    assert ledger.totals[KEY] == (10, 1)
    assert ledger.corrections == 1


def test_a_further_drop_is_a_new_revision_a_partial_recovery_is_not() -> None:
    ledger = cycle(Ledger.starting_at(FIELDS, T0), 5, {KEY: (10, 1)})
    cycle(ledger, 6, {KEY: (8, 1)})
    cycle(ledger, 7, {KEY: (7, 1)})  # lower still: a second revision
    cycle(ledger, 8, {KEY: (9, 1)})  # rising, still below the exported 10
    cycle(ledger, 9, {KEY: (9, 1)})
    assert ledger.corrections == 2
    cycle(ledger, 10, {KEY: (12, 1)})  # caught up: no longer clamped
    assert ledger.totals[KEY] == (12, 1) and not ledger.clamped
    cycle(ledger, 11, {KEY: (11, 1)})  # a fresh drop after recovery counts again
    assert ledger.corrections == 3


def test_a_restart_does_not_count_the_same_revision_again() -> None:
    ledger = cycle(Ledger.starting_at(FIELDS, T0), 5, {KEY: (10, 1)})
    cycle(ledger, 6, {KEY: (8, 1)})
    document = ledger.to_json()
    assert "clamped" not in document  # derived from final + open, so older state files work as they are
    again = Ledger.from_json(document, FIELDS)
    assert again == ledger
    cycle(again, 7, {KEY: (8, 1)})
    assert again.corrections == 1


def test_a_float_field_lower_by_its_rounding_is_no_revision_but_never_lowers_the_counter() -> None:
    fields = ("requests", "duration")
    ledger = Ledger.starting_at(fields, T0, ("duration",))
    cycle(ledger, 5, {KEY: (10, 0.30000000000000004)})  # 0.1 + 0.2 answered as one row
    cycle(ledger, 6, {KEY: (10, 0.3)})  # one ulp lower: the same events rounded otherwise
    assert ledger.corrections == 0
    assert ledger.totals[KEY][1] == exact.units(0.30000000000000004)  # still never lower
    cycle(ledger, 7, {KEY: (10, 0.29)})  # a real revision
    assert ledger.corrections == 1


def test_an_open_row_no_longer_answered_is_one_revision_and_survives_a_restart() -> None:
    ledger = cycle(Ledger.starting_at(FIELDS, T0), 5, {KEY: (10, 1)})
    cycle(ledger, 6, {})
    cycle(ledger, 7, {})
    assert ledger.totals[KEY] == (10, 1) and ledger.corrections == 1
    again = Ledger.from_json(ledger.to_json(), FIELDS)
    cycle(again, 8, {})
    assert again.corrections == 1


def test_a_float_field_may_drop_by_two_to_the_minus_52_of_its_value_and_no_more() -> None:
    fields = ("requests", "duration")
    within = Ledger.starting_at(fields, T0, ("duration",))
    cycle(within, 5, {KEY: (10, 1.0)})
    cycle(within, 6, {KEY: (10, 1.0 - 2.0**-52)})  # the most two roundings of 2**-53 can take away
    assert within.corrections == 0
    beyond = Ledger.starting_at(fields, T0, ("duration",))
    cycle(beyond, 5, {KEY: (10, 1.0)})
    cycle(beyond, 6, {KEY: (10, 1.0 - 2.0**-51)})
    assert beyond.corrections == 1


def test_a_revision_of_one_field_keeps_the_others_rising() -> None:
    ledger = cycle(Ledger.starting_at(FIELDS, T0), 5, {KEY: (10, 1)})
    cycle(ledger, 6, {KEY: (8, 3)})  # requests revised down, errors up
    assert ledger.totals[KEY] == (10, 3) and ledger.corrections == 1


def test_open_rows_no_longer_answered_leave_zero_fields_at_zero() -> None:
    zeros = ("z", "success")
    ledger = cycle(Ledger.starting_at(FIELDS, T0), 5, {KEY: (10, 0), zeros: (0, 0)})
    cycle(ledger, 6, {})
    assert ledger.totals == {KEY: (10, 0), zeros: (0, 0)}
    assert ledger.corrections == 1  # a row of zeros gone takes nothing away
