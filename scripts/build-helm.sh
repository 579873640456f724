#!/usr/bin/env bash
# Build (or reuse) the helm binary the chart tests run. Built from the Go module proxy with
# `go install`, cached outside the checkout under ~/.cache/otelbridge/helm-<hash>/, keyed by the
# helm version and the Go toolchain. Prints the binary's path on the last line of stdout.
set -euo pipefail

HELM_VERSION="v3.22.0"
key="$( { echo "$HELM_VERSION"; go version 2>/dev/null || true; } | sha256sum | cut -c1-16)"
cache="${OTELBRIDGE_CACHE:-$HOME/.cache/otelbridge}/helm-$key"
binary="$cache/helm"

if [[ -x "$binary" ]]; then
  echo "helm: reusing cached build $binary" >&2
  echo "$binary"
  exit 0
fi

command -v go >/dev/null || { echo "helm: Go is required to build helm (https://go.dev/dl/)" >&2; exit 1; }
start=$(date +%s)
mkdir -p "$cache"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
echo "helm: building $HELM_VERSION (takes a few minutes once; later runs reuse $cache)" >&2
GOBIN="$work" go install "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" >&2
cp "$work/helm" "$binary.tmp"
mv "$binary.tmp" "$binary"
echo "helm: built in $(( $(date +%s) - start )) s -> $binary" >&2
echo "$binary"
