"""Devices (the devices cgroup, --device, --device-cgroup-rule, --privileged), the container's
view of /sys/fs/cgroup (--cgroupns host|private) and --oom-score-adj, through the real docker
CLI against dockyardd. The device probes open /dev/loop-control (10:237): a device that is
not on Docker's default list and whose open needs no capability."""

import os
import re

import docker
import pytest


pytestmark = pytest.mark.privileged

needs_loop = pytest.mark.skipif(not os.path.exists("/dev/loop-control"), reason="host has no /dev/loop-control")
OPEN_LOOP = "mknod /dev/xloop c 10 237 && (exec 3</dev/xloop) && echo opened"


def containers(d):
    return set(d.docker("ps", "-aq", "--no-trunc").stdout.decode().split())


def run(d, *args):
    r = d.docker("run", "--rm", *args)
    return r.returncode, r.stdout.decode(), r.stderr.decode()


def ok(d, *args):
    code, out, err = run(d, *args)
    assert code == 0, err
    return out


# -- devices cgroup -------------------------------------------------------------------------------

@needs_loop
def test_default_list_denies_other_devices_but_mknod_works(d):
    code, out, err = run(d, "busybox", "sh", "-c", f"echo x > /dev/null && echo null-ok; {OPEN_LOOP}")
    assert out == "null-ok\n", (out, err)
    assert "Operation not permitted" in err  # mknod allowed (c *:* m), open refused
    assert code != 0


@needs_loop
def test_device_cgroup_rule_allows_that_device(d):
    out = ok(d, "--device-cgroup-rule", "c 10:237 rwm", "busybox", "sh", "-c", OPEN_LOOP)
    assert out == "opened\n"


def test_default_nodes_are_private_nodes_not_host_binds(d):
    out = ok(d, "busybox", "sh", "-c", "stat -c '%F %t:%T %a %u:%g' /dev/null /dev/zero /dev/tty; "
             "grep -c ' /dev/null ' /proc/self/mountinfo || true")
    lines = out.splitlines()
    assert lines[:3] == ["character special file 1:3 666 0:0", "character special file 1:5 666 0:0",
                         "character special file 5:0 666 0:0"]
    assert lines[3] == "0"  # not a mount: chmod in the container cannot reach the host's node


def test_device_mapping_is_readable_and_writable(d):
    out = ok(d, "--device", "/dev/null:/dev/xnull", "busybox", "sh", "-c",
             "stat -c '%t:%T %a' /dev/xnull && echo hi > /dev/xnull && cat /dev/xnull && echo rw-ok")
    assert out == "1:3 666\nrw-ok\n"


@needs_loop
def test_read_only_device_mapping_refuses_writes(d):
    # not /dev/null: it is on the default list (rwm), which runc appends after the user's rules
    code, out, err = run(d, "--device", "/dev/loop-control:/dev/xloop:r", "busybox", "sh", "-c",
                         "(exec 3</dev/xloop) && echo read-ok; (exec 3>/dev/xloop) && echo write-ok")
    assert out == "read-ok\n" and "Operation not permitted" in err, (out, err)


@needs_loop
def test_device_keeps_host_owner_and_mode(d):
    host = os.stat("/dev/loop-control")
    out = ok(d, "--device", "/dev/loop-control", "busybox", "sh", "-c",
             "stat -c '%a %u:%g' /dev/loop-control && (exec 3</dev/loop-control) && echo opened")
    assert out == f"{host.st_mode & 0o7777:o} {host.st_uid}:{host.st_gid}\nopened\n"


def test_device_directory_adds_every_node_below_it(d):
    out = ok(d, "--device", "/dev/net:/dev/vnet", "busybox", "stat", "-c", "%F %t:%T", "/dev/vnet/tun")
    assert out == "character special file a:c8\n"  # 10:200, in hex


def test_devices_are_shown_by_inspect(d):
    r = d.docker("create", "--device", "/dev/null:/dev/xnull:rw", "--device-cgroup-rule", "c 1:11 r",
                 "busybox", "true")
    assert r.returncode == 0, r.stderr.decode()
    cid = r.stdout.decode().strip()
    fmt = "{{json .HostConfig.Devices}} {{json .HostConfig.DeviceCgroupRules}}"
    out = d.docker("inspect", "-f", fmt, cid).stdout.decode().split(" ", 1)
    assert out[0] == '[{"PathOnHost":"/dev/null","PathInContainer":"/dev/xnull","CgroupPermissions":"rw"}]'
    assert out[1].strip() == '["c 1:11 r"]'


@pytest.mark.parametrize("flags,message", [
    (["--device", "/dev/no-such-device"], 'error gathering device information while adding custom device '
                                          '"/dev/no-such-device": no such file or directory'),
    (["--device", "/etc/hostname"], "not a device node"),
])
def test_bad_device_is_a_400_and_creates_nothing(d, flags, message):
    before = containers(d)
    for verb in ("create", "run"):
        r = d.docker(verb, *flags, "busybox", "true")
        assert r.returncode != 0 and message in r.stderr.decode(), r.stderr.decode()
    assert containers(d) == before


def test_bad_device_cgroup_rule_is_refused_by_the_daemon(client, d):
    before = containers(d)
    with pytest.raises(docker.errors.APIError) as exc:
        client.api.create_container("busybox", "true", host_config=client.api.create_host_config(
            device_cgroup_rules=["c 1:11 rwx"]))
    assert exc.value.status_code == 400 and "invalid device cgroup format 'c 1:11 rwx'" in str(exc.value)
    assert containers(d) == before


@needs_loop
def test_privileged_sees_and_opens_host_devices(d):
    out = ok(d, "--privileged", "busybox", "sh", "-c",
             "stat -c '%t:%T' /dev/loop-control && (exec 3</dev/loop-control) && echo opened; "
             "readlink /dev/ptmx")
    assert out == "a:ed\nopened\npts/ptmx\n"  # 10:237; /dev/ptmx stays the container's own


# -- /sys/fs/cgroup ---------------------------------------------------------------------------------

def v1_memory(d):
    if d.docker("info", "-f", "{{.CgroupVersion}}").stdout.decode().strip() != "1":
        pytest.skip("cgroup v1 host test")


def test_cgroupns_defaults_to_host_on_v1_and_inspect_shows_it(d):
    v1_memory(d)
    r = d.docker("create", "busybox", "true")
    assert r.returncode == 0, r.stderr.decode()
    cid = r.stdout.decode().strip()
    assert d.docker("inspect", "-f", "{{.HostConfig.CgroupnsMode}}", cid).stdout.decode() == "host\n"


@pytest.mark.parametrize("mode", ["host", "private"])
def test_container_sees_its_own_memory_limit(d, mode):
    v1_memory(d)
    out = ok(d, "--cgroupns", mode, "--memory", "64m", "--pids-limit", "77", "busybox", "sh", "-c",
             "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max; "
             "grep -c . /sys/fs/cgroup/memory/cgroup.procs; grep ':memory:' /proc/self/cgroup")
    lines = out.splitlines()
    assert lines[:3] == ["67108864", "77", "2"]  # sh and grep: only the container's processes
    if mode == "private":
        assert lines[3].endswith(":memory:/"), lines[3]  # the namespace's root is the container's cgroup
    else:
        assert re.fullmatch(r"\d+:memory:/.+/[0-9a-f]{64}", lines[3]), lines[3]  # the host's path


@pytest.mark.parametrize("mode", ["host", "private"])
def test_cgroupfs_is_read_only_and_mirrors_the_host_names(d, mode):
    v1_memory(d)
    names = sorted(n for n in os.listdir("/sys/fs/cgroup"))
    out = ok(d, "--cgroupns", mode, "busybox", "sh", "-c",
             "exec 2>&1; ls /sys/fs/cgroup; mkdir /sys/fs/cgroup/x; echo 1 > /sys/fs/cgroup/pids/pids.max; "
             "grep ' /sys/fs/cgroup ' /proc/self/mountinfo")
    seen = out.split("mkdir")[0].split()
    assert set(seen) <= set(names) and {"memory", "cpu", "pids"} <= set(seen)
    assert out.count("Read-only file system") == 2
    assert out.split("/sys/fs/cgroup ")[-1].startswith("ro,")  # the tmpfs itself


def test_private_cgroupns_in_proc_self_cgroup_and_exec(d):
    v1_memory(d)
    r = d.docker("run", "-d", "--cgroupns", "private", "busybox", "sleep", "60")
    assert r.returncode == 0, r.stderr.decode()
    cid = r.stdout.decode().strip()
    assert d.docker("inspect", "-f", "{{.HostConfig.CgroupnsMode}}", cid).stdout.decode() == "private\n"
    out = d.docker("exec", cid, "cat", "/proc/self/cgroup").stdout.decode()
    assert out and all(line.endswith(":/") for line in out.splitlines() if "name=" not in line), out


def test_bad_cgroupns_mode_is_refused(client, d):
    before = containers(d)
    with pytest.raises(docker.errors.APIError) as exc:
        client.api.create_container("busybox", "true", host_config={"CgroupnsMode": "shared"})
    assert exc.value.status_code == 400 and "invalid cgroup namespace mode: shared" in str(exc.value)
    assert containers(d) == before


# -- --oom-score-adj --------------------------------------------------------------------------------

def has_cap_sys_resource():
    with open("/proc/self/status") as f:
        eff = int(next(line for line in f if line.startswith("CapEff:")).split()[1], 16)
    return bool(eff & (1 << 24))


def test_negative_oom_score_adj_needs_cap_sys_resource(d):
    """Lowering the score needs CAP_SYS_RESOURCE in the daemon (this sandbox lacks it):
    applied when the daemon has it, else a start error that says so (as runc fails)."""
    code, out, err = run(d, "--oom-score-adj", "-500", "busybox", "cat", "/proc/self/oom_score_adj")
    if has_cap_sys_resource():
        assert (code, out) == (0, "-500\n"), err
    else:
        assert code != 0 and "oom_score_adj -500: permission denied" in err, err


def test_oom_score_adj_is_applied_to_the_container_and_its_execs(d):
    assert ok(d, "--oom-score-adj", "1000", "busybox", "cat", "/proc/self/oom_score_adj") == "1000\n"
    r = d.docker("run", "-d", "--oom-score-adj", "700", "busybox", "sleep", "60")
    assert r.returncode == 0, r.stderr.decode()
    cid = r.stdout.decode().strip()
    assert d.docker("exec", cid, "cat", "/proc/self/oom_score_adj").stdout.decode() == "700\n"
    assert d.docker("inspect", "-f", "{{.HostConfig.OomScoreAdj}}", cid).stdout.decode() == "700\n"
    assert ok(d, "busybox", "cat", "/proc/self/oom_score_adj") == "0\n"


def test_oom_score_adj_out_of_range_is_refused(d):
    before = containers(d)
    r = d.docker("create", "--oom-score-adj", "1001", "busybox", "true")
    assert r.returncode != 0
    assert "Invalid value 1001, range for oom score adj is [-1000, 1000]" in r.stderr.decode()
    assert containers(d) == before
