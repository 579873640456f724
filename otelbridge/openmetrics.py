"""OpenMetrics text files of timestamped samples, for `promtool tsdb create-blocks-from openmetrics`.

Names and labels are the ones the live /metrics page renders (the OTel Prometheus exporter's
translation: dots to `_`, unit suffixes, `_total` on counters), so backfilled and scraped samples
of a series are one series in Prometheus once `job` and `instance` match (given as extra labels).
Each metric family is written once, its series one after the other, each series' samples in time
order, timestamps in seconds; the file ends with `# EOF`.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from pathlib import Path
from typing import BinaryIO, TextIO

from opentelemetry.exporter.prometheus._mapping import sanitize_attribute

from otelbridge.docs import prometheus_name
from otelbridge.samples import Instrument, Span
from otelbridge.state import write_atomically

SUFFIX = ".om"


def escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def number(value: float) -> str:
    """Shortest text that parses back to the same float64 (integers without a decimal point)."""
    if value == int(value) and abs(value) < 2**53:
        return str(int(value))
    return repr(float(value))


def file_name(span: Span) -> str:
    return f"otelbridge-{span.start.strftime('%Y%m%dT%H%MZ')}{SUFFIX}"


def _family(instrument: Instrument) -> tuple[str, str]:
    """(family name, sample name)."""
    counter = instrument.kind == "counter"
    sample = prometheus_name(instrument.name, instrument.unit, counter)
    return (sample.removesuffix("_total") if counter else sample), sample


def render(span: Span, labels: Mapping[str, str], out: TextIO) -> None:
    extra = "".join(f',{name}="{escape(value)}"' for name, value in sorted(labels.items()))
    families = sorted((_family(span.instruments[name]), name) for name in {sid[0] for sid in span.series})
    ordered = sorted(span.series.items(), key=lambda item: (item[0][0], sorted(item[0][1])))
    series_of: dict[str, list[int]] = {}
    for index, ((name, _), _) in enumerate(ordered):
        series_of.setdefault(name, []).append(index)
    for (family, sample), name in families:
        instrument = span.instruments[name]
        out.write(f"# TYPE {family} {instrument.kind}\n")
        out.write(f"# HELP {family} {escape(instrument.description)}\n")
        for index in series_of[name]:
            (_, attributes), series = ordered[index]
            text = ",".join(f'{sanitize_attribute(k)}="{escape(v)}"' for k, v in sorted(attributes))
            head = f"{sample}{{{(text + extra).lstrip(',')}}} "
            for when, value in zip(series.times, series.values, strict=True):
                out.write(f"{head}{number(value)} {when}\n")
    out.write("# EOF\n")


def write(span: Span, labels: Mapping[str, str], directory: Path) -> Path:
    """The span's file in `directory`, written atomically (a rerun after an interruption writes
    the same bytes)."""
    path = directory / file_name(span)

    def fill(binary: BinaryIO) -> None:
        text = io.TextIOWrapper(binary, encoding="utf-8", newline="\n")
        render(span, labels, text)
        text.flush()
        text.detach()  # the file stays open for write_atomically's fsync

    write_atomically(path, fill)
    return path


class FileSink:
    """One OpenMetrics file per span in `directory`, every sample with `labels` added (job, instance)."""

    def __init__(self, directory: Path, labels: Mapping[str, str]) -> None:
        self.directory = directory
        self.labels = dict(labels)
        self.files: list[Path] = []

    def write(self, span: Span) -> None:
        self.files.append(write(span, self.labels, self.directory))
