"""Docker's masked and read-only paths hold in a default container (issue 13: a class that already
held, kept as a regression test), and ``--privileged`` lifts them as on Docker.

Masked (moby daemon/pkg/oci/defaults.go): /proc/acpi, asound, interrupts (GHSA-6fw5-f8r9-fgfm),
kcore, keys, latency_stats, sched_debug, scsi, timer_list, timer_stats, /sys/firmware,
/sys/devices/virtual/powercap, /sys/devices/system/cpu/cpu*/thermal_throttle: a file becomes
/dev/null, a directory an empty read-only tmpfs. Read-only: /proc/bus, fs, irq, sys, sysrq-trigger.
``--security-opt systempaths=unconfined`` is covered by
tests/integration/test_run_options.py::test_systempaths_unconfined_unmasks_proc.

Nothing on the host is changed even if a defence failed: the only write is the host's own
``core_pattern`` value written back to itself; everything else is only opened for writing
(``: >> file`` opens with O_APPEND and writes nothing) or read.
"""

from __future__ import annotations

import os

import pytest

from dockyard.drivers.runtime import DEFAULT_MASKED_PATHS, DEFAULT_READONLY_PATHS

pytestmark = pytest.mark.privileged

# what a masked path looks like from inside: "<path> <mounted over> <bytes readable> <entries>"
REPORT = r'''
for p in "$@"; do
  if [ -d "$p" ]; then n=$(ls -A "$p" | wc -l); else n=0; fi
  echo "$p $(grep -c " $p " /proc/mounts) $(cat "$p" 2>/dev/null | wc -c) $n"
done
'''


def masked_view(d, flags=(), paths=None, exec_into=None):
    paths = [p for p in (paths or DEFAULT_MASKED_PATHS) if os.path.exists(p)]
    assert paths, "none of Docker's masked paths exists on this host"
    if exec_into:
        r = d.docker("exec", exec_into, "sh", "-c", REPORT, "sh", *paths)
    else:
        r = d.docker("run", "--rm", *flags, "busybox", "sh", "-c", REPORT, "sh", *paths)
    assert r.returncode == 0, r.stderr.decode()
    return {p: (int(m), int(n), int(e)) for p, m, n, e in (ln.split() for ln in r.stdout.decode().splitlines())}


def test_masked_paths_are_masked(d):
    view = masked_view(d)
    assert "/proc/interrupts" in view  # exists on every Linux host: the list is really exercised
    for path, (mounted, size, entries) in view.items():
        assert mounted >= 1 and size == 0 and entries == 0, (path, mounted, size, entries)


def test_masks_hold_for_exec_too(d):
    r = d.docker("run", "-d", "busybox", "sleep", "60")
    assert r.returncode == 0, r.stderr.decode()
    view = masked_view(d, exec_into=r.stdout.decode().strip())
    for path, (mounted, size, entries) in view.items():
        assert mounted >= 1 and size == 0 and entries == 0, path


def test_a_mask_cannot_be_unmounted(d):
    r = d.docker("run", "--rm", "busybox", "sh", "-c",
                 "umount /proc/keys; umount -l /proc/interrupts; echo $(wc -c < /proc/interrupts)")
    assert r.stdout.decode().split()[-1] == "0", r.stdout.decode() + r.stderr.decode()
    assert "Operation not permitted" in r.stderr.decode()


def test_readonly_paths_refuse_writes(d):
    host_core_pattern = open("/proc/sys/kernel/core_pattern").read()
    script = r'''
cat /proc/sys/kernel/core_pattern > /tmp/v
cat /tmp/v > /proc/sys/kernel/core_pattern && echo WROTE-core_pattern
for p in "$@"; do
  [ -e "$p" ] || continue
  if [ -d "$p" ]; then
    grep " $p " /proc/mounts | grep -q " ro," || echo "WRITABLE-MOUNT $p"
  else
    ( : >> "$p" ) 2>/dev/null && echo "WRITABLE $p"
  fi
  echo "checked $p"
done
true
'''
    paths = [*DEFAULT_READONLY_PATHS, "/proc/sys/kernel/modprobe", "/proc/sys/vm/drop_caches",
             "/proc/sys/kernel/core_pattern"]
    r = d.docker("run", "--rm", "busybox", "sh", "-c", script, "sh", *paths)
    out, err = r.stdout.decode(), r.stderr.decode()
    assert r.returncode == 0, err
    assert "Read-only file system" in err and "WROTE" not in out and "WRITABLE" not in out, out + err
    assert all(f"checked {p}\n" in out for p in paths if os.path.exists(p)), out
    assert open("/proc/sys/kernel/core_pattern").read() == host_core_pattern


def test_privileged_lifts_masks_and_read_only_paths(d):
    view = masked_view(d, flags=("--privileged",), paths=["/proc/interrupts", "/proc/keys", "/sys/firmware"])
    assert view["/proc/interrupts"][1] > 0  # the real file
    assert all(mounted == 0 for mounted, _, _ in view.values()), view
    r = d.docker("run", "--rm", "--privileged", "busybox", "sh", "-c",
                 ": >> /proc/sys/kernel/core_pattern && echo writable")  # opened, nothing written
    assert r.stdout.decode().strip() == "writable", r.stderr.decode()
