"""Benchmark of otelbridge against the simulated Cloudflare API: `python -m bench.run`."""
