#!/usr/bin/env bash
# The whole test suite, from a fresh machine: set-up, then lint, types and every pytest test.
# Extra arguments go to pytest (e.g. `bash tests/run.sh -k config`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tests/setup.sh --with-chromium
.venv/bin/ruff check generator tests hatch_build.py
.venv/bin/ruff format --check generator tests hatch_build.py
.venv/bin/mypy
.venv/bin/python -m pytest "$@"
