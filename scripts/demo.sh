#!/usr/bin/env bash
# See otelbridge work in a minute, without a Cloudflare account: install into a local virtual
# environment (reused on later runs) and run the bridge against the built-in simulated API.
# Extra arguments go to `otelbridge demo` (e.g. --port 9465, --knob ingestion_delay=240).
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${OTELBRIDGE_VENV:-.venv}"
if [[ ! -x "$venv/bin/otelbridge" ]]; then
  echo "demo: installing otelbridge into $venv (once)" >&2
  "${PYTHON:-python3}" -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check --no-compile . >&2
fi
exec "$venv/bin/otelbridge" demo "$@"
