"""The cgroup v1 ``release_agent`` escape (Felix Wilhelm, 2019; CVE-2022-0492 is its user-namespace
variant): mount a cgroup v1 hierarchy, set ``notify_on_release`` and point ``release_agent`` at a
script; the kernel runs it as host root when the cgroup empties. Issue 13 lists it among the
classes that already hold; this keeps them held.

In a default container every step is refused: ``mount`` is outside Docker's seccomp profile without
CAP_SYS_ADMIN (and the capability is not granted), and the cgroup filesystems the container sees are
read-only mounts. ``docker run --cap-add SYS_ADMIN`` opens the door on this engine exactly as on
Docker without AppArmor: Docker's seccomp profile allows mount with CAP_SYS_ADMIN and only the
AppArmor ``docker-default`` profile (``deny mount``) stops it, which this engine does not have. What
still holds there is asserted below (the cgroup mounts the container was given stay read-only).
``--userns-remap`` removes the danger: root in the container is not root in the init user namespace,
which the kernel requires for writing ``release_agent``.

Nothing on the host is changed if a defence failed: files are opened for writing (``: >> file``,
O_APPEND, writes nothing) or given back the value they already hold.
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.privileged

ATTEMPT = r'''
mkdir -p /tmp/cg
for opts in memory pids; do  # hierarchies that exist: no new one is ever created
  mount -t cgroup -o "$opts" cgroup /tmp/cg 2>/dev/null && { echo "MOUNTED $opts"; umount /tmp/cg; }
done
mount -t cgroup2 none /tmp/cg 2>/dev/null && { echo "MOUNTED cgroup2"; umount /tmp/cg; }
for f in /sys/fs/cgroup/*/notify_on_release /sys/fs/cgroup/*/release_agent /sys/fs/cgroup/*/cgroup.procs; do
  [ -e "$f" ] || continue
  echo "seen $f"
  ( : >> "$f" ) 2>/dev/null && echo "OPENED-FOR-WRITE $f"
done
for f in /sys/fs/cgroup/*/notify_on_release; do
  [ -e "$f" ] || continue
  v=$(cat "$f"); ( echo "$v" > "$f" ) 2>/dev/null && echo "WROTE $f"
done
grep -E " /sys/fs/cgroup(/[^ ]*)? " /proc/mounts | grep -v " ro," | sed 's/^/RW-MOUNT /'
true
'''


def attempt(d, *flags):
    r = d.docker("run", "--rm", *flags, "busybox", "sh", "-c", ATTEMPT)
    assert r.returncode == 0, r.stderr.decode()
    return r.stdout.decode()


def test_default_container_cannot_mount_cgroupfs_or_write_it(d):
    out = attempt(d)
    assert "seen /sys/fs/cgroup/" in out  # the container does see cgroup files: they were tried
    for bad in ("MOUNTED", "OPENED-FOR-WRITE", "WROTE", "RW-MOUNT"):
        assert bad not in out, out


def test_cgroupns_host_is_no_different(d):
    out = attempt(d, "--cgroupns", "host")
    for bad in ("MOUNTED", "OPENED-FOR-WRITE", "WROTE", "RW-MOUNT"):
        assert bad not in out, out


def test_with_sys_admin_the_given_cgroup_mounts_stay_read_only(d):
    """With CAP_SYS_ADMIN, Docker's seccomp profile (and so ours) allows mount: a fresh cgroup v1
    mount is possible here as on Docker without AppArmor (see the module docstring). The cgroup
    filesystems the engine mounted for the container are still read-only."""
    out = attempt(d, "--cap-add", "SYS_ADMIN")
    for bad in ("OPENED-FOR-WRITE /sys/fs/cgroup", "WROTE", "RW-MOUNT"):
        assert bad not in out, out
