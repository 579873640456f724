"""Errors carry the facts needed to act on them: the URL and HTTP status of a wrong API path, the
host and port that refused a connection, and the variable holding an unsupported OTLP protocol."""

from __future__ import annotations

import socket

import pytest

from otelbridge.catalogue import load
from otelbridge.cli import main
from otelbridge.cloudflare.client import CloudflareClient
from otelbridge.cloudflare.credentials import Credentials, Secret
from otelbridge.cloudflare.errors import ConnectionFailed, QueryRejected
from otelbridge.simulator import Simulator
from tests.conftest import TOKEN
from tests.datasets import workers


def client(api_url: str) -> CloudflareClient:
    return CloudflareClient(api_url, Credentials(token=Secret(TOKEN)), load().default_quantiles)


async def test_a_wrong_api_path_names_the_url_and_status(sim: Simulator) -> None:
    wrong = sim.base_url.removesuffix("/client/v4")  # a common mistake: the host without the path
    async with client(wrong) as c:
        with pytest.raises(QueryRejected) as listing:
            await c.accounts()
        with pytest.raises(QueryRejected) as graphql:
            await c.settings(sim.traffic.accounts[0].tag, (workers(),))
    assert str(listing.value).startswith(f"HTTP 404 from GET {wrong}/accounts")
    assert str(graphql.value).startswith(f"HTTP 404 from POST {wrong}/graphql")
    assert "api_url" in str(listing.value)


async def test_connection_refused_names_host_and_port() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: connections are refused
        async with client(f"http://127.0.0.1:{port}/client/v4") as c:
            for call in (c.accounts(), c.settings("0" * 32, (workers(),))):
                with pytest.raises(ConnectionFailed) as refused:
                    await call
                assert str(refused.value) == f"cannot connect to 127.0.0.1:{port}: Connection refused"


@pytest.mark.parametrize("variable", ["OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL"])
def test_unsupported_otlp_protocol_is_a_configuration_error(
    variable: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CLOUDFLARE_API_TOKEN", TOKEN)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", raising=False)
    monkeypatch.setenv(variable, "http/json")
    with socket.socket() as taken:  # were the protocol let through, `run` would stop here instead
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        monkeypatch.setenv("OTEL_EXPORTER_PROMETHEUS_HOST", "127.0.0.1")
        monkeypatch.setenv("OTEL_EXPORTER_PROMETHEUS_PORT", str(taken.getsockname()[1]))
        monkeypatch.setenv("OTELBRIDGE_API_URL", "http://127.0.0.1:9/client/v4")
        assert main(["run"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(
        f"otelbridge: configuration error: {variable}: OTLP protocol 'http/json' is not supported"
    )
