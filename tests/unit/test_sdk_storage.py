"""Contract with the OpenTelemetry SDK's internals that sdk_storage relies on.

If an SDK upgrade changes them, these tests fail: check sdk_storage against the new SDK, then
extend VERIFIED_SDK. The last test pins the SDK behaviour that makes the module necessary.
"""

from __future__ import annotations

from collections.abc import Iterable
from importlib.metadata import version

import pytest
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, NumberDataPoint

from otelbridge import sdk_storage, telemetry

LIVE = 8  # series per instrument in each collection: max_series


class World:
    """An observable counter and gauge whose live series are whatever `names` holds."""

    def __init__(self, prune: bool) -> None:
        self.names: list[str] = []
        self.reader = InMemoryMetricReader(cardinality_limits=telemetry.cardinality_limits(LIVE))
        self.provider = MeterProvider(metric_readers=[self.reader])
        meter = self.provider.get_meter("test")
        meter.create_observable_counter("c", [self.observe])
        meter.create_observable_gauge("g", [self.observe])
        self.installed = sdk_storage.forget_unobserved(self.provider) if prune else False

    def observe(self, options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(7, {"name": n}) for n in self.names]

    def collect(self) -> dict[str, dict[str, NumberDataPoint]]:
        data = self.reader.get_metrics_data()
        out: dict[str, dict[str, NumberDataPoint]] = {"c": {}, "g": {}}
        for rm in data.resource_metrics if data else ():
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    for point in metric.data.data_points:
                        key = str(point.attributes.get("name", "overflow" if point.attributes else ""))
                        out[metric.name][key] = point  # type: ignore[assignment]
        return out


def churn(world: World) -> list[int]:
    """Ten rounds of new series, the previous ones gone; the SDK's stored sets after each."""
    stored = []
    for round_ in range(10):
        world.names = [f"s{round_}-{i}" for i in range(LIVE)]
        points = world.collect()
        assert set(points["c"]) == set(points["g"]) == set(world.names), round_
        stored.append(sdk_storage.stored_series(world.provider))
    return stored


def test_the_sdk_is_a_verified_version_and_pruning_installs() -> None:
    assert version("opentelemetry-sdk").startswith(sdk_storage.VERIFIED_SDK)
    assert World(prune=True).installed


def test_gone_series_are_released_and_live_ones_never_overflow() -> None:
    world = World(prune=True)
    assert churn(world) == [2 * LIVE] * 10  # the live series of the two instruments, nothing else


def test_a_series_that_comes_back_starts_again_with_a_new_start_time() -> None:
    world = World(prune=True)
    world.names = ["a"]
    first = world.collect()["c"]["a"]
    world.names = []
    world.collect()
    world.names = ["a"]
    again = world.collect()["c"]["a"]
    assert again.value == 7
    assert again.start_time_unix_nano > first.start_time_unix_nano  # a reset, as OTLP defines it


def test_without_it_the_sdk_folds_live_series_into_overflow() -> None:
    world = World(prune=False)
    try:
        churn(world)
    except AssertionError:
        pass
    else:
        raise AssertionError("the SDK now releases unobserved series itself: sdk_storage may go")
    assert sdk_storage.stored_series(world.provider) > 2 * 2 * LIVE


class Stranger:
    """An aggregation that keeps its state under another name than `_value`."""

    def collect(self, *args: object) -> None:
        return None


def test_an_sdk_of_another_shape_turns_pruning_off_with_an_error(caplog: pytest.LogCaptureFixture) -> None:
    provider = MeterProvider()
    provider._measurement_consumer = None  # type: ignore[assignment]
    assert not sdk_storage.forget_unobserved(provider)
    assert "will not be released" in caplog.text

    world = World(prune=True)
    world.names = ["a"]
    world.collect()
    storage = next(iter(world.provider._measurement_consumer._reader_storages.values()))
    for matches in storage._instrument_view_instrument_matches.values():
        for match in matches:
            match._attributes_aggregation["stranger"] = Stranger()
    world.names = ["b"]
    points = world.collect()  # the collection goes on, without pruning
    assert "b" in points["c"]
    assert "pruning is off" in caplog.text


def test_stored_keys_share_their_attribute_pairs_and_series_are_still_found() -> None:
    scripts = ["a", "b", "c"]
    value = [1]

    def observe(options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(value[0], {"account": "acc", "script": s}) for s in scripts]

    reader = InMemoryMetricReader(cardinality_limits=telemetry.cardinality_limits(LIVE))
    provider = MeterProvider(metric_readers=[reader])
    provider.get_meter("test").create_observable_counter("c", [observe])
    assert sdk_storage.forget_unobserved(provider)
    reader.get_metrics_data()
    reader.get_metrics_data()  # the keys of the first collection are rebuilt before the second
    storage = next(iter(provider._measurement_consumer._reader_storages.values()))
    (match,) = next(iter(storage._instrument_view_instrument_matches.values()))
    keys = list(match._attributes_aggregation)
    assert len(keys) == 3
    accounts = [next(p for p in pairs if p[0] == "account") for _, pairs in keys]
    assert accounts[0] is accounts[1] is accounts[2], "one instance of the shared pair"

    value[0] = 5
    scripts.append("d")  # a new series joins: its key is rebuilt too, the others stay found
    data = reader.get_metrics_data()
    assert data is not None
    points = {
        p.attributes["script"]: p.value
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
        for p in m.data.data_points
    }
    assert points == {"a": 5, "b": 5, "c": 5, "d": 5}
    assert len(match._attributes_aggregation) == 4, "no series stored twice"
    assert [dict(pairs)["script"] for _, pairs in match._attributes_aggregation] == [
        ("str", s) for s in "abcd"
    ], "in the order series arrived"


def test_the_shared_pairs_are_rebuilt_from_the_live_keys_once_churn_could_be_half_of_them() -> None:
    shared = sdk_storage._SharedPairs()
    live = {("mapping", (("script", ("str", f"s{i}")),)): i for i in range(4)}
    shared.share(live)
    gone = ("mapping", (("script", ("str", "gone")),))
    shared.share({**live, gone: 9})
    assert gone[1][0] in shared.table
    shared.released = 4  # four keys deleted since: not more than the four live ones
    shared.rebuild_if_stale(list(live), len(live))
    assert gone[1][0] in shared.table
    shared.released = 5
    shared.rebuild_if_stale(list(live), len(live))
    assert gone[1][0] not in shared.table and len(shared.table) == 4 and shared.released == 0
