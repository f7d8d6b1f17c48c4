#!/bin/bash
# Issue 18's table, dockerd vs Dockyard in one run, with medians and ratios per row.
#   bench/compare.sh [--quick] [--only ROW ...] [--engines dockerd,dockyard] [--baseline-pythonpath DIR]
# See bench/compare.py for the rows and options. Needs root. Everything both daemons leave
# (processes, mounts, cgroups, dockerd's bridge) is removed at the end, also on failure or ^C.
set -u
here=$(cd "$(dirname "$0")" && pwd)
py=${PYTHON:-$here/../.venv/bin/python}
work=$(mktemp -d /tmp/dycmp.XXXXXX)
finish() {
    trap - EXIT INT TERM
    "$py" "$here/compare.py" --workdir "$work" --cleanup-only || true
    rm -rf "$work"
}
trap finish EXIT
trap 'exit 130' INT TERM
"$py" "$here/compare.py" --workdir "$work" "$@"
