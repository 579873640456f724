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


class Survivors:
    """Keeps long-lived objects out of the cyclic collector's full passes.

    At 10^5 series the process holds ~500k tracked objects (the SDK's aggregations and their
    locks, the snapshot, the ledgers) that live for hours. A full pass walks all of them, 0.3-0.4 s
    with the GIL held, and allocation counts make one run every poll or two. After each page render
    what is alive is long-lived, so it is moved to the permanent generation (gc.freeze, O(1)); later
    passes walk only what was made since, and reference counting still frees frozen objects.

    A steady poll makes no cyclic garbage (see cloudflare.client._PrintedOnce), but a failure's
    traceback can, and a cycle that is garbage when frozen stays until unfrozen. So every
    `full_pass_every` renders everything is unfrozen and collected once. (Counting the frozen
    objects to decide would itself walk all of them.)
    """

    def __init__(self, full_pass_every: int = 360) -> None:  # 6 hours of 60 s polls
        self.full_pass_every = full_pass_every
        self.renders = 0
        self.full_passes = 0

    def keep(self) -> int:
        """Call after a render, with the collector held off. Returns what a full pass collected."""
        self.renders += 1
        found = 0
        if self.renders % self.full_pass_every == 0:
            gc.unfreeze()
            found = gc.collect()
            self.full_passes += 1
        gc.freeze()
        return found

    @staticmethod
    def release() -> None:
        """Give every frozen object back to the collector (on shutdown)."""
        gc.unfreeze()
