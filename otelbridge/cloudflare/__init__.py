"""Cloudflare API client: GraphQL Analytics and the REST calls needed for discovery.

This layer knows Cloudflare and nothing of OpenTelemetry.
"""
