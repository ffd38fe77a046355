#!/usr/bin/env bash
# Set up, build site_demo/demo.toml and serve the demo page at http://127.0.0.1:8000/.
# --guide-events (first) serves site_demo/guide-events.toml instead: the demo with Pendo guide events on.
# Other extra arguments go to `python -m generator serve` (e.g. --port 9000, --open).
set -euo pipefail
cd "$(dirname "$0")/.."
config=site_demo/demo.toml
if [[ "${1:-}" == "--guide-events" ]]; then
  config=site_demo/guide-events.toml
  shift
fi
bash tests/setup.sh
exec .venv/bin/python -m generator serve --config "$config" "$@"
