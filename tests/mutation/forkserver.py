"""A warm pytest launcher: imports the heavy third-party packages once, then forks a child per
test run, so a mutant costs its tests and not the interpreter's start-up.

It never imports otelbridge or tests (the child imports them fresh, mutated). Protocol on
stdin/stdout, one line each: the runner sends JSON pytest arguments; the server answers
`pid N` when the child starts and `rc N` when it ends.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys

WARM = (
    "pytest",
    "_pytest.python",
    "pytest_asyncio",
    "hypothesis",
    "aiohttp",
    "aiohttp.web",
    "gql",
    "gql.transport.aiohttp",
    "graphql",
    "yaml",
    "prometheus_client",
    "opentelemetry.sdk.metrics",
    "opentelemetry.exporter.prometheus",
    "opentelemetry.exporter.otlp.proto.http.metric_exporter",
)


def serve() -> None:
    import importlib

    for name in WARM:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    out = sys.stdout
    out.write("ready\n")
    out.flush()
    for line in sys.stdin:
        args = json.loads(line)
        pid = os.fork()
        if pid == 0:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)
            os.setsid()  # a timeout kills the child's whole group, subprocesses included
            import pytest

            code = pytest.main(args)
            os._exit(int(code))
        out.write(f"pid {pid}\n")
        out.flush()
        _, status = os.waitpid(pid, 0)
        out.write(f"rc {os.waitstatus_to_exitcode(status)}\n")
        out.flush()


if __name__ == "__main__":
    serve()
