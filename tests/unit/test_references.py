"""Comments and docstrings name files that exist: a renamed module must not leave readers a stale map."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FILE = re.compile(r"(?<![\w./-])((?:[\w-]+/)*[\w-]+\.py)\b")


def test_every_python_file_named_in_the_package_exists() -> None:
    names = {p.name for folder in ("otelbridge", "tests", "bench") for p in (ROOT / folder).rglob("*.py")}
    stale = []
    for source in sorted((ROOT / "otelbridge").rglob("*.py")):
        for number, line in enumerate(source.read_text(encoding="utf-8").splitlines(), 1):
            for name in FILE.findall(line):
                found = (ROOT / name).exists() if "/" in name else name in names
                if not found:
                    stale.append(f"{source.relative_to(ROOT)}:{number}: {name}")
    assert not stale, "names of files that do not exist:\n" + "\n".join(stale)
