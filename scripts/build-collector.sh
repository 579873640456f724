#!/usr/bin/env bash
# Build (or reuse) the OpenTelemetry Collector distribution described by
# collector-config/builder-manifest.yaml. The binary is cached outside the checkout under
# ~/.cache/otelbridge/collector-<hash>/, keyed by the manifest and the builder version, so a
# fresh clone reuses an earlier build. Prints the binary's path on the last line of stdout.
set -euo pipefail

BUILDER_VERSION="v0.159.0"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
manifest="$here/collector-config/builder-manifest.yaml"
key="$( { cat "$manifest"; echo "$BUILDER_VERSION"; go version 2>/dev/null || true; } | sha256sum | cut -c1-16)"
cache="${OTELBRIDGE_CACHE:-$HOME/.cache/otelbridge}/collector-$key"
binary="$cache/otelcol-otelbridge"

if [[ -x "$binary" ]]; then
  echo "collector: reusing cached build $binary" >&2
  echo "$binary"
  exit 0
fi

command -v go >/dev/null || { echo "collector: Go is required to build the Collector (https://go.dev/dl/)" >&2; exit 1; }
gobin="$(go env GOPATH)/bin"
# Capture the version first: under pipefail, `builder version | grep -q` fails whenever grep
# exits before the builder has finished writing (SIGPIPE), which forced a reinstall every run.
# The builder prints its version on stderr.
installed="$("$gobin/builder" version 2>&1 || true)"
if [[ "$installed" != *"${BUILDER_VERSION#v}"* ]]; then
  echo "collector: installing builder $BUILDER_VERSION" >&2
  go install "go.opentelemetry.io/collector/cmd/builder@$BUILDER_VERSION" >&2
fi

start=$(date +%s)
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# The manifest leaves output_path out so one file serves every cache directory.
sed "s|^dist:|dist:\n  output_path: $work/out|" "$manifest" > "$work/manifest.yaml"
echo "collector: building (first build takes several minutes; later runs reuse $cache)" >&2
"$gobin/builder" --config "$work/manifest.yaml" >&2
mkdir -p "$cache"
cp "$work/out/otelcol-otelbridge" "$binary.tmp"
mv "$binary.tmp" "$binary"
echo "collector: built in $(( $(date +%s) - start )) s -> $binary" >&2
echo "$binary"
