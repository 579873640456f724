"""Holding off CPython's cyclic garbage collector while a large collection runs.

A collection through the SDK (a page render) or its OTLP encoding builds millions of short-lived
objects that stay alive for the whole collection, so they get promoted and trigger full collections in the
middle of it: at 10^5 series, several per collection and 0.3-0.4 s each, with the GIL held, so the
event loop and every scrape stopped too. What a collection leaves behind is acyclic and freed by
reference counting. gc.disable() is process-wide, so it is held only for the CPU-bound work, never
across network I/O (an OTLP send); renders and encodings may overlap on different threads, so the
hold is counted: the collector resumes when the last holder leaves.
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator

_lock = threading.Lock()
_holders = 0
_was_enabled = True


@contextlib.contextmanager
def paused() -> Iterator[None]:
    global _holders, _was_enabled
    with _lock:
        if _holders == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _holders += 1
    try:
        yield
    finally:
        with _lock:
            _holders -= 1
            if _holders == 0 and _was_enabled:
                gc.enable()
