#!/usr/bin/env bash
# Run every check and test from a fresh machine: venv, Python packages, Prometheus (Debian
# package), the Collector (built once, cached under ~/.cache/otelbridge/), lint, types, tests.
# Extra arguments go to pytest. OTELBRIDGE_REQUIRE_E2E=1 turns a missing Prometheus or Collector
# into an error instead of a reported skip.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"
cache="${OTELBRIDGE_CACHE:-$HOME/.cache/otelbridge}"
mkdir -p "$cache"

py="${PYTHON:-python3}"
key="$( { cat pyproject.toml; "$py" --version; } | sha256sum | cut -c1-16)"
venv="$cache/venv-$key"
if [[ ! -x "$venv/bin/otelbridge" ]]; then
  echo "test: creating $venv" >&2
  rm -rf "$venv"
  "$py" -m venv "$venv"
  "$venv/bin/pip" install -q --upgrade pip >&2
  "$venv/bin/pip" install -q -e ".[dev]" >&2
else
  # The venv is shared between checkouts: point the editable install at this one.
  "$venv/bin/pip" install -q --no-deps -e . >&2
fi

stop_packaged_prometheus() {
  if command -v systemctl >/dev/null && systemctl is-active --quiet prometheus.service 2>/dev/null; then
    systemctl disable --now prometheus.service || true
  elif [[ -x /etc/init.d/prometheus ]]; then
    /etc/init.d/prometheus stop || true  # without systemd: the init script stops its own pidfile's daemon
  fi
}

if ! command -v prometheus >/dev/null || ! command -v promtool >/dev/null; then
  if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null; then
    echo "test: installing Debian's prometheus package" >&2
    (apt-get install -y -qq prometheus >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq prometheus >/dev/null; }) >&2
    # The package was not installed before, so a running prometheus unit is the one this install
    # just started: stop and disable that unit (it would hold port 9090). Any other Prometheus on
    # the host is left alone: the tests only ever stop processes they started.
    stop_packaged_prometheus >&2
  else
    echo "test: prometheus not installed and cannot install it here; e2e tests will be skipped" >&2
  fi
fi

if command -v go >/dev/null; then
  OTELBRIDGE_COLLECTOR="$(./scripts/build-collector.sh | tail -n1)"
  export OTELBRIDGE_COLLECTOR
  # helm for the chart tests (tests/deploy), built once and cached like the Collector.
  OTELBRIDGE_HELM="$(./scripts/build-helm.sh | tail -n1)"
  export OTELBRIDGE_HELM
else
  echo "test: Go not found; Collector tests will be skipped" >&2
fi
# The container image (base made with debootstrap, built with podman; both need root), exported
# for tests/deploy/test_container.py. Cached under ~/.cache/otelbridge/; a failure is reported there.
if [[ "$(id -u)" == 0 ]] && image_export="$(PYTHON="$venv/bin/python" ./scripts/build-image.sh | tail -n1)"; then
  export OTELBRIDGE_IMAGE_EXPORT="$image_export"
fi

echo "test: ruff" >&2
"$venv/bin/ruff" check otelbridge tests bench dashboards
"$venv/bin/ruff" format --check otelbridge tests bench dashboards
echo "test: mypy --strict" >&2
"$venv/bin/mypy"
echo "test: pytest" >&2
"$venv/bin/pytest" -q -ra "$@"
