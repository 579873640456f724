"""What can go wrong talking to Cloudflare, sorted by what the caller should do about it."""

from __future__ import annotations


class CloudflareError(Exception):
    """Base class. `outcome` is the label used in the otelbridge.api.requests self-metric."""

    outcome = "error"
    retryable = False


class TransientError(CloudflareError):
    """Worth retrying with backoff: 5xx, timeouts, resets, bodies that are not GraphQL."""

    outcome = "server_error"
    retryable = True


class Timeout(TransientError):
    outcome = "timeout"


class ConnectionFailed(TransientError):
    outcome = "connection"


class MalformedResponse(TransientError):
    outcome = "malformed"


class RateLimited(CloudflareError):
    """Cloudflare's `budget` error: wait for the rate-limit window, whatever the HTTP status said."""

    outcome = "rate_limited"
    retryable = True

    def __init__(self, message: str, retry_after: float = 300.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after  # seconds; Cloudflare says "try again after 5 minutes"


class AuthenticationFailed(CloudflareError):
    """The credential itself was refused (REST-envelope codes 10000, 9109, 6003, 6111)."""

    outcome = "auth"


class NotAuthorized(CloudflareError):
    """The credential is valid but may not read this account (GraphQL `authz`)."""

    outcome = "authz"


class QueryRejected(CloudflareError):
    """Cloudflare refused the query itself (validation, limits): retrying the same query won't help."""

    outcome = "invalid"
