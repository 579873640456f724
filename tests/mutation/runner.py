"""Run a module's tests against each of its mutants, in a private copy of the repository.

The working tree is never modified: the package and the tests are copied to a temporary
directory, each mutant is written over the module there and restored afterwards. Bytecode is
neither read nor written for the copy (a stale .pyc of the same size and second would otherwise
hide a mutant).
"""

from __future__ import annotations

import os
import queue
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.mutation.mutants import Mutant, find, valid

FORMAT = "module | line:column | operator | before -> after | reason"
COPIED = ("otelbridge", "tests", "pyproject.toml")


@dataclass(frozen=True)
class Target:
    name: str  # what --module selects
    path: str  # the module, relative to the root
    tests: tuple[str, ...]  # pytest arguments: files or node ids, relative to the root


@dataclass
class Outcome:
    mutant: Mutant
    status: str  # killed, survived, timeout, equivalent
    seconds: float = 0.0
    reason: str = ""


@dataclass
class Report:
    target: Target
    baseline_seconds: float
    outcomes: list[Outcome] = field(default_factory=list)
    stale_equivalents: list[str] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for o in self.outcomes if o.status == status)

    @property
    def score(self) -> float:
        """Killed (or timed out) among the mutants that are not equivalent."""
        judged = len(self.outcomes) - self.count("equivalent")
        return (self.count("killed") + self.count("timeout")) / judged if judged else 1.0


def equivalent_key(target: Target, mutant: Mutant) -> str:
    return f"{target.path} | {mutant.where} | {mutant.operator} | {mutant.label}"


def load_equivalents(path: Path) -> dict[str, str]:
    """`module | line:column | operator | before -> after | why it cannot be told apart` per line."""
    out: dict[str, str] = {}
    if not path.exists():
        return out
    for raw in path.read_text(encoding="utf-8").splitlines():
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        parts = [p.strip() for p in raw.split(" | ")]
        if len(parts) != 5 or not parts[4]:
            raise ValueError(
                f"{path}: expected `module | line:column | operator | before -> after | reason`: {raw}"
            )
        out[" | ".join(parts[:4])] = parts[4]
    return out


@contextmanager
def repository_copy(root: Path) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="otelbridge-mutants-") as tmp:
        copy = Path(tmp)
        for name in COPIED:
            source = root / name
            if source.is_dir():
                shutil.copytree(source, copy / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            elif source.exists():
                shutil.copy2(source, copy / name)
        yield copy


def _env(copy: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(PYTHONDONTWRITEBYTECODE="1", PYTHONPATH=str(copy), PYTHONHASHSEED="0")
    return env


def run_tests(copy: Path, tests: tuple[str, ...], timeout: float) -> tuple[str, float]:
    """killed / survived / timeout, and how long it took."""
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "--no-header", *tests]
    started = time.monotonic()
    try:
        done = subprocess.run(
            command, cwd=copy, env=_env(copy), capture_output=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        return "timeout", time.monotonic() - started
    elapsed = time.monotonic() - started
    if done.returncode in (4, 5):  # usage error, no tests collected: the selection is wrong
        raise RuntimeError(f"pytest could not run {tests}: {done.stdout.decode()[-2000:]}")
    return ("survived" if done.returncode == 0 else "killed"), elapsed


def check_copy_is_imported(copy: Path) -> None:
    probe = "import otelbridge, sys; sys.stdout.write(otelbridge.__file__)"
    where = subprocess.run(
        [sys.executable, "-c", probe], cwd=copy, env=_env(copy), capture_output=True, text=True, check=True
    ).stdout
    if not Path(where).resolve().is_relative_to(copy.resolve()):
        raise RuntimeError(f"the copy imports otelbridge from {where}, not from {copy}")


def mutate(
    root: Path,
    target: Target,
    equivalents: dict[str, str],
    jobs: int = 1,
    progress: Callable[[Outcome], None] | None = None,
    only_lines: frozenset[int] = frozenset(),
) -> Report:
    original = (root / target.path).read_bytes()
    mutants = [m for m in valid(find(original), original) if not only_lines or m.line in only_lines]
    keys = {equivalent_key(target, m) for m in mutants}
    stale = [k for k in equivalents if k.startswith(f"{target.path} |") and k not in keys]

    with _copies(root, max(1, jobs)) as copies:
        check_copy_is_imported(copies[0])
        status, baseline = run_tests(copies[0], target.tests, timeout=600)
        if status != "survived":
            raise RuntimeError(f"{target.name}: the tests fail (or hang) on the unmutated code")
        timeout = 3 * baseline + 10
        free: queue.Queue[Path] = queue.Queue()
        for copy in copies:
            free.put(copy)

        def one(mutant: Mutant) -> Outcome:
            reason = equivalents.get(equivalent_key(target, mutant))
            if reason is not None:
                outcome = Outcome(mutant, "equivalent", reason=reason)
            else:
                copy = free.get()
                module = copy / target.path
                try:
                    module.write_bytes(mutant.apply(original))
                    result, seconds = run_tests(copy, target.tests, timeout)
                finally:
                    module.write_bytes(original)
                    free.put(copy)
                outcome = Outcome(mutant, result, seconds)
            if progress is not None:
                progress(outcome)
            return outcome

        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            outcomes = list(pool.map(one, mutants))
    return Report(target, baseline, outcomes, stale)


@contextmanager
def _copies(root: Path, n: int) -> Iterator[list[Path]]:
    with ExitStack() as stack:
        yield [stack.enter_context(repository_copy(root)) for _ in range(n)]
