#!/usr/bin/env bash
# Set up a fresh Debian 12 machine for Dockyard: system packages, a venv, every distribution.
# Idempotent: a second run only checks. Run as root.
set -euo pipefail
# Root is needed (namespaces, mounts, apt): as another user, re-run through sudo when there is one.
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 && exec sudo -- bash "$0" "$@"
    echo "$0: run as root (there is no sudo here)" >&2
    exit 1
fi
cd "$(dirname "$0")/.."

APT_PACKAGES=(busybox-static systemd tini runc iproute2 nftables libnftables1 iptables skopeo umoci
              python3-venv python3-dev gcc libc6-dev curl docker-registry apache2-utils
              docker-compose)
missing=()
for p in "${APT_PACKAGES[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "setup: installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# docker-registry's package starts a registry on :5000; tests start their own on 127.0.0.1.
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    systemctl disable --now docker-registry >/dev/null 2>&1 || true
elif [ -x /etc/init.d/docker-registry ]; then
    /etc/init.d/docker-registry stop >/dev/null 2>&1 || true
    update-rc.d docker-registry disable >/dev/null 2>&1 || true
fi

# python3 on PATH may be a slow shim: always build the venv from the system interpreter.
if [ ! -x .venv/bin/python ]; then
    /usr/bin/python3 -m venv .venv
fi
PIP=(.venv/bin/python -m pip install -q --disable-pip-version-check)
"${PIP[@]}" -U pip setuptools wheel
# The core distribution (editable) first: the plugins depend on it.
"${PIP[@]}" -e '.[fast,test,lint]'
# Each plugin is its own distribution, installed the way users install them (non-editable);
# they are what the 'all' extra names (pip install ./plugins/* '.[all]', or 'dockyard[all]' with
# --find-links to a directory of their wheels: they are on no index).
for plugin in plugins/*/; do
    [ -f "$plugin/pyproject.toml" ] && "${PIP[@]}" "$plugin"
done
# The daemon runs under python -OO (core/__main__.py): its bytecode at that level, made once
# here, as a distribution's install makes the default level's (PYTHONDONTWRITEBYTECODE may be set).
.venv/bin/python -m compileall -q -j 0 -o 2 .venv/lib/python3*/site-packages core >/dev/null \
    || echo "setup: some files did not byte-compile at -OO (they compile when imported)"
echo "setup: ready ($(.venv/bin/python --version), $(.venv/bin/pip list 2>/dev/null | grep -c -i dockyard) dockyard distributions)"
