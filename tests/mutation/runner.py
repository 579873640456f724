"""Run a module's tests against each of its mutants, in a private copy of the repository.

The working tree is never modified: the package and the tests are copied to a temporary
directory, each mutant is written over the module there and restored afterwards. Bytecode is
neither read nor written for the copy (a stale .pyc of the same size and second would otherwise
hide a mutant).
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.mutation.mutants import Mutant, find, valid

FORMAT = "module | line:column | operator | before -> after | reason"
COPIED = ("tests", "pyproject.toml")  # and the mutated module's top-level package


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
        if len(parts) < 5 or not parts[-1]:
            raise ValueError(
                f"{path}: expected `module | line:column | operator | before -> after | reason`: {raw}"
            )
        # The mutant's text may hold " | " itself (a union type); the reason is the last field.
        out[" | ".join(parts[:-1])] = parts[-1]
    return out


def package_of(target: Target) -> str:
    return Path(target.path).parts[0]


@contextmanager
def repository_copy(root: Path, package: str) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="mutants-") as tmp:
        copy = Path(tmp)
        for name in (package, *COPIED):
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


PYTEST_ARGS = ("-x", "-q", "-p", "no:cacheprovider", "--no-header")


class Launcher:
    """Runs pytest in one copy: through a warm fork server, or a fresh interpreter each time."""

    def __init__(self, copy: Path, fork: bool = True) -> None:
        self.copy = copy
        self.server: subprocess.Popen[str] | None = None
        if fork and hasattr(os, "fork"):
            self.server = subprocess.Popen(
                [sys.executable, str(Path(__file__).with_name("forkserver.py"))],
                cwd=copy,
                env=_env(copy),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            assert self.server.stdout is not None
            if self.server.stdout.readline() != "ready\n":
                raise RuntimeError("the pytest fork server did not start")

    def close(self) -> None:
        if self.server is not None and self.server.stdin is not None:
            self.server.stdin.close()
            self.server.wait(30)

    def run(self, tests: tuple[str, ...], timeout: float) -> tuple[str, float]:
        """killed / survived / timeout, and how long it took."""
        started = time.monotonic()
        code = self._forked(tests, timeout) if self.server else self._fresh(tests, timeout)
        elapsed = time.monotonic() - started
        if code is None:
            return "timeout", elapsed
        if code == 5:  # no tests collected: the selection is wrong
            raise RuntimeError(f"pytest collected no tests from {tests}")
        # Any failure kills the mutant, including 4: a conftest that cannot import the mutant.
        return ("survived" if code == 0 else "killed"), elapsed

    def _fresh(self, tests: tuple[str, ...], timeout: float) -> int | None:
        command = [sys.executable, "-m", "pytest", *PYTEST_ARGS, *tests]
        try:
            done = subprocess.run(
                command, cwd=self.copy, env=_env(self.copy), capture_output=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired:
            return None
        return done.returncode

    def _forked(self, tests: tuple[str, ...], timeout: float) -> int | None:
        server = self.server
        assert server is not None and server.stdin is not None and server.stdout is not None
        server.stdin.write(json.dumps([*PYTEST_ARGS, *tests]) + "\n")
        server.stdin.flush()
        pid = int(server.stdout.readline().split()[1])
        expired = threading.Event()

        def expire() -> None:
            expired.set()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)

        timer = threading.Timer(timeout, expire)
        timer.start()
        try:
            code = int(server.stdout.readline().split()[1])
        finally:
            timer.cancel()
        return None if expired.is_set() else code


def check_copy_is_imported(copy: Path, package: str) -> None:
    probe = f"import {package}, sys; sys.stdout.write({package}.__file__)"
    where = subprocess.run(
        [sys.executable, "-c", probe], cwd=copy, env=_env(copy), capture_output=True, text=True, check=True
    ).stdout
    if not Path(where).resolve().is_relative_to(copy.resolve()):
        raise RuntimeError(f"the copy imports {package} from {where}, not from {copy}")


def mutate(
    root: Path,
    target: Target,
    equivalents: dict[str, str],
    jobs: int = 1,
    progress: Callable[[Outcome], None] | None = None,
    only_lines: frozenset[int] = frozenset(),
    fork: bool = True,
) -> Report:
    original = (root / target.path).read_bytes()
    mutants = [m for m in valid(find(original), original) if not only_lines or m.line in only_lines]
    keys = {equivalent_key(target, m) for m in mutants}
    mine = [k for k in equivalents if k.startswith(f"{target.path} |")]
    stale = [] if only_lines else [k for k in mine if k not in keys]

    with _launchers(root, package_of(target), max(1, jobs), fork) as launchers:
        check_copy_is_imported(launchers[0].copy, package_of(target))
        status, baseline = launchers[0].run(target.tests, timeout=600)
        if status != "survived":
            raise RuntimeError(f"{target.name}: the tests fail (or hang) on the unmutated code")
        timeout = 3 * baseline + 10
        free: queue.Queue[Launcher] = queue.Queue()
        for launcher in launchers:
            free.put(launcher)

        def one(mutant: Mutant) -> Outcome:
            reason = equivalents.get(equivalent_key(target, mutant))
            if reason is not None:
                outcome = Outcome(mutant, "equivalent", reason=reason)
            else:
                launcher = free.get()
                module = launcher.copy / target.path
                try:
                    module.write_bytes(mutant.apply(original))
                    result, seconds = launcher.run(target.tests, timeout)
                finally:
                    module.write_bytes(original)
                    free.put(launcher)
                outcome = Outcome(mutant, result, seconds)
            if progress is not None:
                progress(outcome)
            return outcome

        pool = ThreadPoolExecutor(max_workers=max(1, jobs))
        try:
            outcomes = list(pool.map(one, mutants))
        finally:  # on an interrupt, drop the mutants not started yet
            pool.shutdown(wait=True, cancel_futures=True)
    return Report(target, baseline, outcomes, stale)


@contextmanager
def _launchers(root: Path, package: str, n: int, fork: bool) -> Iterator[list[Launcher]]:
    with ExitStack() as stack:
        launchers = []
        for _ in range(n):
            launcher = Launcher(stack.enter_context(repository_copy(root, package)), fork)
            stack.callback(launcher.close)
            launchers.append(launcher)
        yield launchers
