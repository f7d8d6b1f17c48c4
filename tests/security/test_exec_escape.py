"""Exec and healthcheck helpers are never visible in a container before they are confined
(issue 13, finding 1).

The attack: a container with ``--cap-add SYS_PTRACE`` polls /proc for processes and, for each,
reads ``/proc/PID/root/<host marker>`` and the ``CapEff``/``Seccomp`` lines of
``/proc/PID/status``, while the test runs many ``docker exec`` and a healthcheck runs every
100 ms. Before the fix the shim's monitor joined the container's pid namespace and cloned the
helper into it: the helper was visible with the host's root (the marker was readable through
``/proc/PID/root``) and full capabilities, without seccomp, until it had joined the mount
namespace, chrooted and dropped its privileges. Now an intermediate process outside the
container's pid namespace does all of that and only then forks the process that lands in the
namespace (runc's nsexec order). The watcher uses only shell builtins (``read``, ``case``):
no fork per probe, so it is fast enough to hit a window of a few hundred microseconds.

The structural checks do not depend on the race: the exec'd process runs with the container's
capabilities, no_new_privs and seccomp mode, in every namespace of the container's pid 1; it is
a child of its monitor, and the monitor never entered the container (its
``pid_for_children`` namespace is the host's).
"""

from __future__ import annotations

import os
import secrets
import time
from pathlib import Path

import pytest

from dockyard.runtime import capabilities

pytestmark = pytest.mark.privileged

CONTAINER_CAPS = capabilities.mask(list(capabilities.DOCKER_DEFAULT) + ["CAP_SYS_PTRACE"])

# Polls every process of the container. Only builtins in the loop: no fork per probe. It writes
# "<pid> root <line>" when a marker line could be read through /proc/PID/root, and
# "<pid> caps <CapEff> <Seccomp>" for every process whose status differs from its own.
WATCHER = r"""
while read -r k v; do
  case "$k" in CapEff:) mycap=$v;; Seccomp:) mysec=$v;; esac
done < /proc/self/status
: > /tmp/ready
while :; do
  for p in /proc/[0-9]*; do
    pid=${p#/proc/}
    [ "$pid" = "$$" ] && continue
    if read -r line < "$p/root$MARKER" 2>/dev/null; then echo "$pid root $line" >> /tmp/found; fi
    cap= sec=
    while read -r k v 2>/dev/null; do
      case "$k" in CapEff:) cap=$v;; Seccomp:) sec=$v;; esac
    done < "$p/status" 2>/dev/null
    if [ -n "$cap" ] && { [ "$cap" != "$mycap" ] || [ "$sec" != "$mysec" ]; }; then
      echo "$pid caps $cap $sec" >> /tmp/found
    fi
  done
done
"""


def state_dir(d, cid: str) -> Path:
    """The native runtime's state dir of container ``cid``."""
    for p in Path(d.exec_root).rglob("pid"):
        if p.parent.name == cid:
            return p.parent
    raise AssertionError(f"no runtime state dir for {cid}")


def _status(pid: int | str) -> dict[str, str]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        k, _, v = line.partition(":")
        out[k] = v.strip()
    return out


@pytest.fixture
def marker(tmp_path: Path) -> tuple[Path, str]:
    secret = f"host-secret-{secrets.token_hex(8)}"
    path = tmp_path / f"marker-{secrets.token_hex(4)}"
    path.write_text(secret + "\n")
    return path, secret


def test_exec_and_health_helpers_are_never_seen_unconfined(d, client, marker):
    path, secret = marker
    c = client.containers.run(
        "busybox", ["sh", "-c", WATCHER], detach=True, cap_add=["SYS_PTRACE"],
        environment={"MARKER": str(path)},
        healthcheck={"test": ["CMD", "true"], "interval": 100_000_000, "timeout": 5_000_000_000},
    )
    deadline = time.monotonic() + 30
    while c.exec_run(["test", "-e", "/tmp/ready"]).exit_code != 0:
        assert time.monotonic() < deadline, "the watcher did not start"
        time.sleep(0.05)
    for i in range(150):
        cmd = ["true"] if i % 3 else ["sh", "-c", "exit 0"]
        r = c.exec_run(cmd, tty=(i % 5 == 0), user="" if i % 7 else "1000")
        assert r.exit_code == 0, r.output
    c.reload()
    assert c.attrs["State"]["Status"] == "running"
    assert c.attrs["State"]["Health"]["Log"], "no healthcheck ran"
    found = c.exec_run(["sh", "-c", "cat /tmp/found 2>/dev/null; true"]).output.decode()
    assert secret not in found, f"a helper's /proc/PID/root led to the host:\n{found[:2000]}"
    over = []
    for line in found.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[1] == "caps":
            cap = int(parts[2], 16)
            sec = parts[3] if len(parts) > 3 else ""
            if cap & ~CONTAINER_CAPS or sec not in ("2", ""):
                over.append(line)
    assert not over, "processes seen in the container with more than its capabilities or no seccomp:\n" + \
        "\n".join(over[:50])


def test_exec_process_is_confined_like_the_container(d, client):
    c = client.containers.run("busybox", ["sleep", "300"], detach=True, cap_add=["SYS_PTRACE"],
                              security_opt=["no-new-privileges"])
    c.reload()
    pid1 = c.attrs["State"]["Pid"]
    want = _status(pid1)
    assert int(want["CapEff"], 16) == CONTAINER_CAPS
    out = c.exec_run(["sh", "-c", "grep -E '^(CapEff|CapPrm|CapBnd|CapInh|CapAmb|NoNewPrivs|Seccomp):' "
                      "/proc/self/status; for n in pid mnt net ipc uts cgroup; do "
                      "echo ns $n $(readlink /proc/self/ns/$n) $(readlink /proc/1/ns/$n); done"]).output.decode()
    got = {}
    for line in out.splitlines():
        if line.startswith("ns "):
            _, kind, mine, init = line.split()
            assert mine == init, f"exec is not in the container's {kind} namespace: {line}"
        else:
            k, _, v = line.partition(":")
            got[k] = v.strip()
    for key in ("CapEff", "CapPrm", "CapBnd", "CapInh", "CapAmb", "NoNewPrivs", "Seccomp"):
        assert got[key] == want[key], (key, got, want)
    assert got["NoNewPrivs"] == "1" and got["Seccomp"] == "2"


def test_exec_monitor_never_enters_the_container(d, client):
    """The exec'd process is the monitor's child (CLONE_PARENT through the intermediate), and
    the monitor's namespaces, pid_for_children included, are the host's."""
    c = client.containers.run("busybox", ["sleep", "300"], detach=True)
    c.reload()
    pid1 = c.attrs["State"]["Pid"]
    ex = client.api.exec_create(c.id, ["sleep", "300"])
    client.api.exec_start(ex["Id"], detach=True)
    pidfile = state_dir(d, c.id) / "exec" / ex["Id"] / "pid"
    deadline = time.monotonic() + 30
    while not pidfile.exists():
        assert time.monotonic() < deadline
        time.sleep(0.02)
    cpid, mpid = (int(x) for x in pidfile.read_text().split()[:2])
    try:
        assert int(_status(cpid)["PPid"]) == mpid
        for kind in ("pid", "pid_for_children", "mnt", "net", "ipc", "uts"):
            assert os.readlink(f"/proc/{mpid}/ns/{kind}") == os.readlink(f"/proc/self/ns/{kind}"), kind
        for kind in ("pid", "mnt", "net", "ipc", "uts"):
            assert os.readlink(f"/proc/{cpid}/ns/{kind}") == os.readlink(f"/proc/{pid1}/ns/{kind}"), kind
        # the monitor never leaves the host's root either
        assert os.readlink(f"/proc/{mpid}/root") == "/"
    finally:
        os.kill(cpid, 9)


def test_container_joining_a_pid_namespace_is_never_seen_unconfined(d, client, marker):
    """``--pid container:Y``: the new container's process appears in Y's pid namespace only
    once it is built and confined (its setup runs outside it; /proc is mounted with pidns=).
    Before, the monitor cloned it into Y's namespace, where Y saw its whole setup as host root."""
    path, secret = marker
    y = client.containers.run("busybox", ["sh", "-c", WATCHER], detach=True, cap_add=["SYS_PTRACE"],
                              environment={"MARKER": str(path)}, network_mode="none")
    deadline = time.monotonic() + 30
    while y.exec_run(["test", "-e", "/tmp/ready"]).exit_code != 0:
        assert time.monotonic() < deadline, "the watcher did not start"
        time.sleep(0.05)
    for i in range(25):
        out = client.containers.run("busybox", ["sh", "-c", "cat /proc/1/cmdline; echo; echo $$"], remove=True,
                                    pid_mode=f"container:{y.id}", network_mode="none", tty=(i % 5 == 0))
        assert out.split()[0].startswith(b"sh"), out  # Y's pid 1 (its /proc is Y's namespace)
    found = y.exec_run(["sh", "-c", "cat /tmp/found 2>/dev/null; true"]).output.decode()
    assert secret not in found, f"a starting container's /proc/PID/root led to the host:\n{found[:2000]}"
    over = [line for line in found.splitlines() if line.split()[1:2] == ["caps"]
            and (int(line.split()[2], 16) & ~CONTAINER_CAPS or line.split()[3:4] not in (["2"], []))]
    assert not over, "processes seen in Y with more than the default capabilities or no seccomp:\n" + \
        "\n".join(over[:50])
