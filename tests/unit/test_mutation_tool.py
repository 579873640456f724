"""The mutation tool itself (tests/mutation): its operators, and a run on a tiny package where
one mutant is equivalent and every other must be killed."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from tests.mutation.mutants import find, valid
from tests.mutation.runner import Target, equivalent_key, load_equivalents, mutate

SAMPLE = textwrap.dedent(
    '''
    """A docstring is not mutated."""
    import logging

    log = logging.getLogger(__name__)


    def clamp(x: int, low: int, high: int) -> int:
        """Neither is this one."""
        if x < low:
            log.info("below %d", low + 1)
            return low
        return min(x, high)


    def both(a: bool, b: bool) -> bool:
        return a and not b
    '''
).encode()

TESTS = textwrap.dedent(
    """
    from sample.calc import both, clamp


    def test_clamp() -> None:
        assert clamp(5, 0, 3) == 3
        assert clamp(-1, 0, 3) == 0
        assert clamp(2, 0, 3) == 2


    def test_both() -> None:
        assert both(True, False) and not both(True, True) and not both(False, False)
    """
)


def labels(source: bytes) -> set[tuple[str, str]]:
    return {(m.operator, m.label) for m in valid(find(source), source)}


def test_operators_make_the_expected_mutants() -> None:
    found = labels(SAMPLE)
    assert {
        ("cmp", "x < low -> x <= low"),
        ("cmp", "x < low -> x >= low"),
        ("call", "min(x, high) -> max(x, high)"),
        ("return", "return low -> return None"),
        ("return", "return min(x, high) -> return None"),
        ("bool", "a and not b -> a or not b"),
        ("not", "not b -> b"),
        ("remove", "if x < low: ... -> pass"),
    } <= found
    assert not [f for f in found if "docstring" in f[1] or "below" in f[1] or "low + 1" in f[1]]
    assert labels(b"x = 2 + 1\nok = True\n") >= {
        ("arith", "2 + 1 -> 2 - 1"),
        ("const", "2 -> 3"),
        ("const", "1 -> 0"),
        ("true-false", "True -> False"),
    }


def test_a_run_kills_every_mutant_but_the_equivalent_one(tmp_path: Path) -> None:
    (tmp_path / "sample").mkdir()
    (tmp_path / "sample" / "__init__.py").write_text("")
    (tmp_path / "sample" / "calc.py").write_bytes(SAMPLE)
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_calc.py").write_text(TESTS)
    target = Target("calc", "sample/calc.py", ("tests/test_calc.py",))

    report = mutate(tmp_path, target, {})
    survived = [o.mutant.label for o in report.outcomes if o.status == "survived"]
    # At x == low both branches give low: `<` and `<=` cannot be told apart.
    assert survived == ["x < low -> x <= low"]
    assert report.count("killed") == len(report.outcomes) - 1 > 5
    assert (tmp_path / "sample" / "calc.py").read_bytes() == SAMPLE, "the tree itself is never changed"

    mutant = next(o.mutant for o in report.outcomes if o.status == "survived")
    listing = tmp_path / "equivalent.txt"
    listing.write_text(f"# comment\n{equivalent_key(target, mutant)} | x == low returns low either way\n")
    again = mutate(tmp_path, target, load_equivalents(listing), only_lines=frozenset({mutant.line}))
    assert {o.status for o in again.outcomes} == {"killed", "equivalent"}
    assert again.score == 1.0


def test_an_equivalent_mutant_whose_text_holds_the_separator_is_read(tmp_path: Path) -> None:
    listing = tmp_path / "equivalent.txt"
    listing.write_text("pkg/m.py | 3:4 | remove | x: int | None = None -> pass | set before it is read\n")
    assert load_equivalents(listing) == {
        "pkg/m.py | 3:4 | remove | x: int | None = None -> pass": "set before it is read"
    }
    listing.write_text("pkg/m.py | 3:4 | remove | x = 1 -> pass\n")
    with pytest.raises(ValueError):
        load_equivalents(listing)
