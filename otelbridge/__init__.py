"""otelbridge: Cloudflare Workers analytics as OpenTelemetry metrics, exactly."""

__version__ = "0.1.0"
