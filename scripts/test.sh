#!/usr/bin/env bash
# Set up (idempotent) and run the whole test suite, as root.
set -euo pipefail
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 && exec sudo -- bash "$0" "$@"
    echo "$0: run as root (there is no sudo here)" >&2
    exit 1
fi
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# lint first: a finding fails CI before the (long) suite runs; config in pyproject.toml
.venv/bin/ruff check core plugins
.venv/bin/mypy
exec .venv/bin/python -m pytest -q "$@"
