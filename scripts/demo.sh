#!/usr/bin/env bash
# The main job: set up, start dockyardd on its own socket, load a busybox image built
# offline from the host's busybox-static, run a container, and stop everything again.
set -euo pipefail
# Root is needed (namespaces, mounts, apt): as another user, re-run through sudo when there is one.
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 && exec sudo -- bash "$0" "$@"
    echo "$0: run as root (there is no sudo here)" >&2
    exit 1
fi
cd "$(dirname "$0")/.."
bash scripts/setup.sh
PY=.venv/bin/python
WORK=$(mktemp -d /tmp/dockyard-demo.XXXXXX)
SOCK="unix://$WORK/dockyard.sock"
cleanup() {
    [ -n "${DAEMON_PID:-}" ] && kill -TERM "$DAEMON_PID" 2>/dev/null && wait "$DAEMON_PID" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

$PY -m dockyard -H "$SOCK" --data-root "$WORK/data" --exec-root "$WORK/exec" >"$WORK/daemon.log" 2>&1 &
DAEMON_PID=$!
for _ in $(seq 100); do
    $PY -m dockyard_cli -H "$SOCK" version >/dev/null 2>&1 && break
    kill -0 "$DAEMON_PID" 2>/dev/null || { cat "$WORK/daemon.log"; exit 1; }
    sleep 0.1
done
dy() { $PY -m dockyard_cli -H "$SOCK" "$@"; }

echo "== dockyard info"
dy info
echo "== building busybox:latest offline from /bin/busybox and loading it"
$PY -m dockyard.testing.images "$WORK/busybox.tar"
dy load -i "$WORK/busybox.tar"
dy images
echo "== dockyard run --rm busybox"
dy run --rm busybox sh -c 'echo "hello from $(hostname), pid $$, in a Dockyard container"; uname -a'
echo "== a detached container: ps, logs, stop, rm"
dy run -d --name demo busybox sh -c 'trap "echo bye; exit 0" TERM; echo up; while :; do sleep 0.2; done'
sleep 0.5
dy ps
dy logs demo
dy stop demo
dy logs demo
dy rm demo
