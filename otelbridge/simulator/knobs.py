"""Realism knobs of the simulated Cloudflare API. All off by default; mutable at any time.

Fields are plain ints/floats/bools so a command line can set them by name.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Literal

# One-shot faults a test can queue with `Simulator.fail_next`.
FaultKind = Literal["server_error", "malformed", "reset", "data_null", "budget", "html"]
FAULT_KINDS: tuple[FaultKind, ...] = ("server_error", "malformed", "reset", "data_null", "budget", "html")


@dataclass
class Knobs:
    ingestion_delay: float = 0.0
    """Seconds after a minute ends over which its events arrive (0: complete as soon as it ends)."""
    sampling: bool = False
    """Adaptive sampling: busy groups are estimated from sampled events, avg.sampleInterval > 1."""
    decimal_floats: bool = False
    """Per-invocation GB·s and requestDuration are decimal values (0.128 GB times wall seconds; µs
    with three decimals), not binary fractions; float sums are the exact sums rounded once."""
    rate_limit: bool = False
    """Enforce the GraphQL query budget per credential."""
    rate_limit_queries: int = 300
    """Queries allowed per credential within the rate-limit window."""
    rate_limit_window: float = 300.0
    """Length of the sliding rate-limit window, seconds of the simulator clock."""
    rate_limit_http_status: int = 200
    """HTTP status of a budget error (Cloudflare has been seen sending 200 and 429)."""
    enforce_limits: bool = False
    """Reject queries beyond maxDuration / notOlderThan (limit vs maxPageSize is always checked)."""
    max_page_size: int = 10000
    """Dataset maxPageSize: largest accepted `limit`."""
    max_duration: int = 259200
    """Dataset maxDuration: widest queryable time range, seconds."""
    not_older_than: int = 2678400
    """Dataset notOlderThan: oldest queryable data, seconds before now."""
    max_number_of_fields: int = 30
    """Dataset maxNumberOfFields as reported by settings (not enforced)."""
    data_null_probability: float = 0.0
    """Probability that a GraphQL request fails as a whole (`data: null` with one error)."""
    latency: float = 0.0
    """Seconds of wall-clock delay before every response."""
    server_error_probability: float = 0.0
    """Probability of an edge 502/503 with Cloudflare's HTML body."""
    malformed_probability: float = 0.0
    """Probability of a truncated JSON body (HTTP 200)."""
    reset_probability: float = 0.0
    """Probability that the connection is reset without a response."""
    fault_seed: int = 0
    """Seed of the RNG behind the probabilistic faults (re-seeded when the simulator starts)."""

    @classmethod
    def names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    def set(self, name: str, text: str) -> None:
        """Set a knob from its textual value (for command lines)."""
        current = getattr(self, name)
        value: object
        if isinstance(current, bool):
            value = text.strip().lower() in ("1", "true", "yes", "on")
        elif isinstance(current, int):
            value = int(text)
        else:
            value = float(text)
        setattr(self, name, value)
