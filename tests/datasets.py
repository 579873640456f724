"""The dataset catalogues as tests name them."""

from __future__ import annotations

from otelbridge.catalogue import Catalogue, Dataset, load

WORKERS = "workersInvocationsAdaptive"
STATUS = "cloudflare.workers.status"  # the optional attribute of the Workers counters
# The aliases of one account request: sums of the settling and open minutes, and gauges.
SETTLING, OPEN, GAUGES = (f"{WORKERS}_{role}" for role in ("settling", "open", "gauges"))


def workers(catalogue: Catalogue | None = None) -> Dataset:
    """The Workers dataset's catalogue (of `catalogue`, e.g. a bridge's selected one)."""
    return (catalogue or load()).dataset(WORKERS)
