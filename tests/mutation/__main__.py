"""Mutation testing of the counting core: `python -m tests.mutation [--module windows] [-j 2]`.

Each module is run against the fast tests that guard it (TARGETS); a mutant that no test notices
is listed with its line, so a test can be added or, if it cannot change behaviour, the mutant
recorded with its reason in tests/mutation/equivalent.txt. Exit status 1 when a mutant survives.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path

from tests.mutation.runner import Outcome, Report, Target, load_equivalents, mutate

ROOT = Path(__file__).resolve().parents[2]
EQUIVALENTS = Path(__file__).with_name("equivalent.txt")

BAD_ANSWERS = "tests/integration/test_bad_answers.py"
RESTART = "tests/integration/test_restart.py"
EXACT = "tests/integration/test_bridge_exact.py"
STATE = "tests/unit/test_state.py"
HEALTH = "tests/integration/test_health.py"
EXACT_SUMS = "tests/unit/test_exact_sums.py"
LOGS = "tests/integration/test_operator_logs.py"
TARGETS = {
    t.name: t
    for t in (
        Target(
            "windows",
            "otelbridge/windows.py",
            ("tests/unit/test_windows_boundaries.py", "tests/unit/test_windows_ledger.py"),
        ),
        Target(
            "ledger",
            "otelbridge/ledger.py",
            (
                "tests/unit/test_ledger_guards.py",
                "tests/unit/test_ledger_corrections.py",
                "tests/unit/test_ledger_idle.py",
                EXACT_SUMS,
                "tests/unit/test_windows_ledger.py",
                f"{STATE}::test_saved_state_loads_back_equal",
                f"{STATE}::test_a_state_file_with_a_bad_ledger_is_set_aside",
                f"{RESTART}::test_restart_continues_exactly_after_a_crash_and_downtime",
                f"{RESTART}::test_unusable_state_is_set_aside_and_counting_starts_fresh",
            ),
        ),
        Target(
            "poller",
            "otelbridge/poller.py",
            (
                "tests/integration/test_poller.py",
                "tests/integration/test_retries.py",
                f"{EXACT}::test_quantiles_are_the_apis_values_for_the_group_in_seconds",
                f"{BAD_ANSWERS}::test_transport_and_api_faults_keep_last_good_data",
                f"{BAD_ANSWERS}::test_budget_error_with_http_429_is_recognised",
                f"{BAD_ANSWERS}::test_account_without_access_is_down_and_others_keep_going",
                "tests/integration/test_rate_budget.py",
                f"{LOGS}::test_one_info_line_per_poll_with_what_it_counted",
                f"{LOGS}::test_retries_name_the_account",
                f"{LOGS}::test_a_failed_poll_settles_nothing_again",
            ),
        ),
        Target(
            "state",
            "otelbridge/state.py",
            (
                STATE,
                "tests/integration/test_state_file.py",
                "tests/integration/test_instance_id.py",
                f"{EXACT_SUMS}::test_state_files_hold_exact_sums_and_older_files_are_converted",
                f"{HEALTH}::test_unwritable_state_dir_keeps_outputs_fresh_and_heals_exactly",
                f"{RESTART}::test_unusable_state_is_set_aside_and_counting_starts_fresh",
                f"{RESTART}::test_state_of_another_api_is_not_used",
                f"{RESTART}::test_restart_continues_exactly_after_a_crash_and_downtime",
            ),
        ),
        Target(
            "answers",
            "otelbridge/cloudflare/answers.py",
            (
                "tests/unit/test_answers.py",
                "tests/unit/test_engine_generic.py",
                f"{BAD_ANSWERS}::test_unknown_extra_fields_are_ignored",
            ),
        ),
        Target(
            "snapshot",
            "otelbridge/snapshot.py",
            (
                "tests/unit/test_snapshot.py",
                "tests/integration/test_lean.py::test_full_profile_exports_every_metric_with_status",
                f"{HEALTH}::test_unwritable_state_dir_keeps_outputs_fresh_and_heals_exactly",
                f"{EXACT}::test_quantiles_are_the_apis_values_for_the_group_in_seconds",
                f"{RESTART}::test_restart_continues_exactly_after_a_crash_and_downtime",
                "tests/integration/test_retries.py::test_before_the_first_poll_every_account_is_down_with_no_poll_time",
                "tests/integration/test_retries.py::test_one_transient_failure_is_retried_within_the_cycle",
                "tests/integration/test_rate_budget.py::test_a_small_budget_is_never_exceeded_and_totals_still_converge",
            ),
        ),
    )
}


def table(reports: list[Report]) -> str:
    head = f"{'module':<34}{'mutants':>8}{'killed':>8}{'timeout':>8}{'survived':>9}{'equiv.':>8}{'score':>8}"
    rows = [head, "-" * len(head)]
    for r in reports:
        rows.append(
            f"{r.target.path:<34}{len(r.outcomes):>8}{r.count('killed'):>8}{r.count('timeout'):>8}"
            f"{r.count('survived'):>9}{r.count('equivalent'):>8}{r.score:>8.1%}"
        )
    return "\n".join(rows)


def survivors(report: Report) -> list[str]:
    return [
        f"  {report.target.path}:{o.mutant.where:<7} {o.mutant.operator:<10} {o.mutant.label}"
        for o in report.outcomes
        if o.status == "survived"
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.mutation", description=__doc__)
    parser.add_argument("--module", action="append", choices=sorted(TARGETS), help="repeatable; default all")
    parser.add_argument("-j", "--jobs", type=int, default=1, help="mutants run in parallel (one copy each)")
    parser.add_argument("--line", type=int, action="append", default=[], help="only mutants on this line")
    parser.add_argument("--list", action="store_true", help="list the mutants without running tests")
    parser.add_argument("--json", type=Path, help="write every outcome to this file")
    parser.add_argument("--no-fork", action="store_true", help="a fresh interpreter per run (slower)")
    parser.add_argument("-v", "--verbose", action="store_true", help="print each mutant's outcome")
    args = parser.parse_args(argv)
    # A plain kill still removes the temporary copies and stops the fork servers.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))

    equivalents = load_equivalents(EQUIVALENTS)
    targets = [TARGETS[name] for name in args.module or sorted(TARGETS)]
    if args.list:
        from tests.mutation.mutants import find, valid

        for target in targets:
            source = (ROOT / target.path).read_bytes()
            for m in valid(find(source), source):
                print(f"{target.path} | {m.where} | {m.operator} | {m.label}")
        return 0

    dots = [0]  # killed mutants shown as dots on one line; survivors on lines of their own

    def progress(outcome: Outcome) -> None:
        if args.verbose or outcome.status == "survived":
            m = outcome.mutant
            print(
                f"{chr(10) if dots[0] else ''}  {outcome.status:<10} {m.where:<7} {m.operator:<10} {m.label}"
            )
            dots[0] = 0
        else:
            print(".", end="", flush=True)
            dots[0] += 1

    reports = []
    for target in targets:
        print(f"{target.path}: tests {' '.join(target.tests)}", flush=True)
        report = mutate(
            ROOT, target, equivalents, args.jobs, progress, frozenset(args.line), not args.no_fork
        )
        print(f"\n  baseline {report.baseline_seconds:.1f}s per run", flush=True)
        for key in report.stale_equivalents:
            print(f"  equivalent.txt entry matches no mutant (update it): {key}")
        reports.append(report)

    print()
    print(table(reports))
    left = [line for r in reports for line in survivors(r)]
    if left:
        print("\nsurvivors:")
        print("\n".join(left))
    if args.json:
        args.json.write_text(
            json.dumps(
                [
                    {
                        "module": r.target.path,
                        "line": o.mutant.line,
                        "operator": o.mutant.operator,
                        "mutant": o.mutant.label,
                        "status": o.status,
                        "seconds": round(o.seconds, 2),
                        "reason": o.reason,
                    }
                    for r in reports
                    for o in r.outcomes
                ],
                indent=1,
            )
        )
    return 1 if left else 0


if __name__ == "__main__":
    sys.exit(main())
