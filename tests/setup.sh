#!/usr/bin/env bash
# Installs what the project needs on a fresh machine: a Python venv with the package and its test
# tools, the pinned npm packages (esbuild, analytics-next, the Pendo agent), Debian's postgresql
# for the relay's PostgreSQL tests and, with --with-chromium, Debian's chromium for the browser
# tests. Safe to run again: it skips what is there.
set -euo pipefail
cd "$(dirname "$0")/.."

with_chromium=false
[[ "${1:-}" == "--with-chromium" ]] && with_chromium=true

as_root() { if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi; }

if $with_chromium && ! command -v chromium >/dev/null 2>&1; then
  echo "setup: installing Debian's chromium" >&2
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi

# The relay's PostgreSQL tests start a throwaway cluster of Debian's postgresql (server programs only are used).
if ! compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
  echo "setup: installing Debian's postgresql" >&2
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi

if [[ ! -x .venv/bin/python ]]; then
  python3 -m venv .venv
fi
stamp=.venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)
if [[ ! -f "$stamp" ]]; then
  echo "setup: installing Python packages into .venv" >&2
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[test]'
  touch "$stamp"
fi

if [[ ! -f node_modules/.package-lock.json ]] || ! cmp -s package-lock.json node_modules/.package-lock-source; then
  echo "setup: installing npm packages" >&2
  npm ci --no-audit --no-fund --loglevel=error
  cp package-lock.json node_modules/.package-lock-source
fi

# The release wheels carry each platform's official esbuild (`python hatch_build.py --all-platforms`); their test
# builds them from npm's cache, so those @esbuild packages are put there now (checked offline first: no network
# when they are there already).
esbuild_version=$(node -p 'require("./package.json").dependencies.esbuild')
for platform in linux-x64 linux-arm64 darwin-x64 darwin-arm64 win32-x64; do
  spec="@esbuild/$platform@$esbuild_version"
  npm cache add --offline "$spec" --loglevel=silent >/dev/null 2>&1 || npm cache add "$spec" --loglevel=error
done
