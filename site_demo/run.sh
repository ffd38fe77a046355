#!/usr/bin/env bash
# Set up, build site_demo/demo.toml and serve the demo page at http://127.0.0.1:8000/.
# Extra arguments go to `python -m generator serve` (e.g. --port 9000, --open).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tests/setup.sh
exec .venv/bin/python -m generator serve --config site_demo/demo.toml "$@"
