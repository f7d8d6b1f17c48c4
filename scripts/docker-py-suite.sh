#!/usr/bin/env bash
# Run docker-py's own integration suite (tests/integration of github docker/docker-py) against a
# private dockyardd, offline, and print passed/failed/skipped. Not part of CI (it needs a checkout
# of docker-py, which this repository does not vendor).
#
#   scripts/docker-py-suite.sh [DOCKER_PY_SRC] [extra pytest args...]
#
# DOCKER_PY_SRC is a docker-py work tree or git dir (default: $DOCKER_PY_SRC, then
# /work/.mirror/docker+docker-py/repo, then /tmp/docker-py). Only its tests/ are used: the suite
# runs against the `docker` package installed in .venv, whose version is checked against the
# checkout's. Images are built offline (busybox) and tagged as the suite's constants expect.
# scripts/docker-py-suite.deselect lists the tests left out (internet pulls, swarm, managed
# plugins, credential helpers), one `nodeid  # reason` a line.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
PY=$REPO/.venv/bin/python

SRC=${DOCKER_PY_SRC:-}
if [[ $# -gt 0 && ( -d $1 ) ]]; then SRC=$1; shift; fi
if [[ -z $SRC ]]; then
    for c in /work/.mirror/docker+docker-py/repo /tmp/docker-py; do
        [[ -e $c ]] && { SRC=$c; break; }
    done
fi
[[ -n $SRC ]] || { echo "no docker-py checkout: pass its path (git dir or work tree)" >&2; exit 2; }

BASE=$(mktemp -d /tmp/dockerpy-suite.XXXXXX)
SOCK=$BASE/dockyard.sock
DAEMON_PID=
cleanup() {
    if [[ -n $DAEMON_PID ]] && kill -0 "$DAEMON_PID" 2>/dev/null; then
        DOCKER_HOST=unix://$SOCK "$PY" - <<'EOF' || true
import docker
c = docker.from_env()
for x in c.api.containers(all=True):
    try:
        c.api.remove_container(x["Id"], force=True, v=True)
    except Exception:
        pass
for n in c.api.networks():
    if n["Name"] not in ("bridge", "host", "none"):
        try:
            c.api.remove_network(n["Id"])
        except Exception:
            pass
for v in c.api.volumes().get("Volumes") or []:
    try:
        c.api.remove_volume(v["Name"], force=True)
    except Exception:
        pass
EOF
        kill -TERM "$DAEMON_PID" 2>/dev/null || true
        for _ in $(seq 100); do kill -0 "$DAEMON_PID" 2>/dev/null || break; sleep 0.2; done
    fi
    if [[ -n ${KEEP:-} ]]; then echo "kept $BASE" >&2; else
        umount -R "$BASE"/data 2>/dev/null || true
        rm -rf "$BASE"
    fi
}
trap cleanup EXIT

# the suite, from the checkout: only tests/ and pytest.ini (not its docker/ package)
mkdir -p "$BASE/docker-py"
if git --git-dir="$SRC" rev-parse --git-dir >/dev/null 2>&1 && [[ ! -d $SRC/tests ]]; then
    git --git-dir="$SRC" archive HEAD tests pytest.ini pyproject.toml | tar -x -C "$BASE/docker-py"
    SRC_VERSION=$(git --git-dir="$SRC" describe --tags 2>/dev/null || echo unknown)
else
    cp -r "$SRC/tests" "$SRC/pytest.ini" "$BASE/docker-py/"
    SRC_VERSION=$(git -C "$SRC" describe --tags 2>/dev/null || echo unknown)
fi
INSTALLED=$("$PY" -c 'import docker; print(docker.__version__)')
echo "docker-py suite from $SRC ($SRC_VERSION), installed docker $INSTALLED"
if [[ ${SRC_VERSION%%-*} != "$INSTALLED" ]]; then
    echo "warning: the suite ($SRC_VERSION) and the installed docker ($INSTALLED) differ" >&2
fi
# the suite's helpers import paramiko (docker-py's `ssh` extra), its websocket attach test
# websocket-client (the `websockets` extra), its marks pytest-timeout: into the venv, for this script only
"$PY" -c 'import paramiko, pytest_timeout, websocket' 2>/dev/null ||
    "$PY" -m pip install -q 'paramiko>=2.4.3' pytest-timeout 'websocket-client>=1.3.0'

# a private daemon: own data root, exec root and socket. It runs in a mount namespace of its own
# whose / is shared, as on a systemd host (dockerd's rshared binds need it; this VM's / is
# private): nothing changes in the host's mount namespace.
# Its networks come from a pool of their own (dockerd's default-address-pools): a host where many
# engines run may have used every default pool.
POOL=${DOCKER_PY_SUITE_POOL:-10.213.0.0/16}
printf 'default-address-pools = [{base = "%s", size = 24}]\n' "$POOL" > "$BASE/dockyardd.toml"
# The suite talks to it over loopback TCP, as docker-py's own CI does (its websocket attach
# cannot go through a Unix socket); set-up and clean-up use the Unix socket.
PORT=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
unshare --mount --propagation unchanged sh -c 'mount --make-rshared / && exec "$0" "$@"' \
    "$PY" -m dockyard -H "unix://$SOCK" -H "tcp://127.0.0.1:$PORT" --data-root "$BASE/data" \
    --exec-root "$BASE/exec" --config-file "$BASE/dockyardd.toml" >"$BASE/daemon.log" 2>&1 &
DAEMON_PID=$!
for _ in $(seq 300); do
    [[ -S $SOCK ]] && curl -sf --unix-socket "$SOCK" http://d/_ping >/dev/null 2>&1 && break
    kill -0 "$DAEMON_PID" 2>/dev/null || { cat "$BASE/daemon.log" >&2; exit 1; }
    sleep 0.2
done
export DOCKER_HOST=unix://$SOCK

# images, offline: busybox, and an alpine stand-in built from it with what the suite expects of
# alpine (a `postgres` user, /var/opt), tagged under every name the suite uses as its test image
"$PY" -m dockyard.testing.images --load -H "unix://$SOCK" >/dev/null
docker tag busybox:latest busybox:buildroot-2014.02
printf '%s\n' 'FROM busybox:latest' \
    "RUN echo 'postgres:x:70:70:postgres:/var/lib/postgresql:/bin/sh' >> /etc/passwd && echo 'postgres:x:70:' >> /etc/group && mkdir -p /var/opt" |
    DOCKER_BUILDKIT=0 docker build -q -t alpine:3.10 - >/dev/null 2>"$BASE/build.log" ||
    { cat "$BASE/build.log" >&2; exit 1; }
docker tag alpine:3.10 alpine:latest

DESELECT=()
while IFS= read -r line; do
    line=${line%%#*}
    line=$(echo "$line" | xargs)
    [[ -n $line ]] && DESELECT+=(--deselect "$line")
done < "$REPO/scripts/docker-py-suite.deselect"

cd "$BASE/docker-py"
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/_ping" >/dev/null && break; sleep 0.1; done
# as docker-py's Makefile: the suite at the engine's API version (tests of newer APIs skip)
if [[ -z ${DOCKER_TEST_API_VERSION:-} ]]; then
    DOCKER_TEST_API_VERSION=$(curl -sf --unix-socket "$SOCK" http://d/version | "$PY" -c 'import json, sys; print(json.load(sys.stdin)["ApiVersion"])')
    export DOCKER_TEST_API_VERSION
fi
echo "API version: $DOCKER_TEST_API_VERSION"
set +e
DOCKER_HOST=tcp://127.0.0.1:$PORT \
"$PY" -m pytest tests/integration -p no:cacheprovider \
    -q -rfE "${DESELECT[@]}" "$@" 2>&1 | tee "$BASE/pytest.log"
rc=${PIPESTATUS[0]}
set -e
summary=$(tail -n 1 "$BASE/pytest.log")
count() { echo "$summary" | grep -o "[0-9]* $1" | grep -o "[0-9]*" || echo 0; }
echo "docker-py suite: passed $(count passed), failed $(count failed), skipped $(count skipped), errors $(count error), deselected $(count deselected)"
cp "$BASE/daemon.log" "/tmp/docker-py-suite.daemon.log" 2>/dev/null || true
exit "$rc"
