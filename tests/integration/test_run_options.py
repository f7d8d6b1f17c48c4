"""``docker run`` options are implemented or refused, never silently ignored: the real docker
CLI 28 and docker-py against dockyardd (busybox loaded). Refusals are Docker's 400 messages
and leave no container behind."""

import json
import os
import socket
from pathlib import Path

import docker
import pytest

pytestmark = pytest.mark.privileged


def containers(d):
    return set(d.docker("ps", "-aq", "--no-trunc").stdout.decode().split())


def run(d, *args):
    r = d.docker("run", "--rm", *args)
    assert r.returncode == 0, r.stderr.decode()
    return r.stdout.decode()


# -- refused: Docker's message, nothing created -------------------------------------------------

REFUSED = [
    (["--runtime", "foo"], "unknown or invalid runtime name: foo"),
    (["--gpus", "all"], 'could not select device driver "" with capabilities: [[gpu]]'),
    (["--storage-opt", "size=1G"], "--storage-opt is supported only for overlay over xfs with 'pquota' mount option"),
    (["--link", "nosuchcontainer:db"], "could not get container for nosuchcontainer"),
    (["--mac-address", "01:00:5e:00:00:01"], "multicast"),
    (["--network", "host", "--mac-address", "02:42:ac:11:00:99"], "conflicting options: mac-address"),
    (["--log-driver", "fluentd"], "logger: no log driver named 'fluentd' is registered"),
    (["--cpu-rt-runtime", "950000"], "--cpu-rt-runtime is not supported"),
    (["--device-read-bps", "/dev/null:1mb"], "--device-read-bps is not supported"),
    (["--blkio-weight-device", "/dev/null:100"], "--blkio-weight-device is not supported"),
    (["--oom-kill-disable"], "--oom-kill-disable is not supported"),
    (["--isolation", "hyperv"], "linux only supports 'default'"),
    (["--ipc", "host", "--sysctl", "kernel.shmmax=1000000"], "is not allowed in the hosts ipc namespace"),
    (["--network", "host", "--sysctl", "net.ipv4.ip_forward=1"], "not allowed in host network namespace"),
    (["--platform", "linux/s390x"], "does not match the specified platform (linux/s390x)"),
    (["--mount", "type=volume,dst=/v,volume-subpath=x"], "volume-subpath (VolumeOptions.Subpath) is not supported"),
    (["--uts", "host", "-h", "boat"], "conflicting options: --hostname"),
    (["--security-opt", "seccomp=unconfined", "--security-opt", "bogus=1"], "invalid --security-opt"),
]


@pytest.mark.parametrize("flags,message", REFUSED, ids=[" ".join(f) for f, _ in REFUSED])
def test_refused_option_is_a_400_and_creates_nothing(d, flags, message):
    before = containers(d)
    r = d.docker("create", *flags, "busybox", "true")
    assert r.returncode != 0
    assert message in r.stderr.decode(), r.stderr.decode()
    assert containers(d) == before


def test_refusals_reach_docker_py_as_api_errors(d, client):
    before = containers(d)
    with pytest.raises(docker.errors.APIError) as exc:
        client.containers.create("busybox", "true", runtime="foo")
    assert exc.value.status_code == 400 and "unknown or invalid runtime name: foo" in str(exc.value)
    with pytest.raises(docker.errors.APIError) as exc:
        client.containers.create("busybox", "true", device_requests=[
            docker.types.DeviceRequest(count=-1, capabilities=[["gpu"]])])
    assert exc.value.status_code == 400 and "could not select device driver" in str(exc.value)
    with pytest.raises(docker.errors.APIError) as exc:  # the docker CLI refuses it itself
        client.containers.create("busybox", "true", sysctls={"kernel.panic": "1"})
    assert exc.value.status_code == 400 and "is not in a separate kernel namespace" in str(exc.value)
    with pytest.raises(docker.errors.APIError) as exc:
        client.api.create_container("busybox", "true", host_config={"UsernsMode": "foo"})
    assert exc.value.status_code == 400 and "invalid USER mode: foo" in str(exc.value)
    with pytest.raises(docker.errors.APIError) as exc:
        client.api.create_container("busybox", "true", host_config={"IOMaximumIOps": 10})
    assert exc.value.status_code == 400 and "Maximum IO Bandwidth or Maximum IO IOps" in str(exc.value)
    with pytest.raises(docker.errors.APIError) as exc:
        client.api.create_container("busybox", "true", networking_config={
            "EndpointsConfig": {"bridge": {"Links": ["nosuchcontainer:x"]}}})
    assert exc.value.status_code == 400 and "could not get container for nosuchcontainer" in str(exc.value)
    assert containers(d) == before


# -- implemented --------------------------------------------------------------------------------


def test_runtime_names_of_this_daemon_are_accepted(d):
    default = d.docker("info", "--format", "{{.DefaultRuntime}}").stdout.decode().strip()
    listed = json.loads(d.docker("info", "--format", "{{json .Runtimes}}").stdout.decode())
    assert default in listed
    for name in listed:  # docker info lists exactly what --runtime accepts
        assert run(d, "--runtime", name, "busybox", "echo", "ok") == "ok\n"
    if "runc" not in listed:  # no alias of the native runtime: a clear refusal
        r = d.docker("run", "--rm", "--runtime", "runc", "busybox", "true")
        assert r.returncode != 0 and b"runtime runc is not available" in r.stderr


def test_mac_address_is_set_on_eth0_and_shown_in_inspect(d):
    r = d.docker("run", "-d", "--mac-address", "92:D0:C6:0A:29:33", "busybox", "sleep", "60")
    assert r.returncode == 0, r.stderr.decode()
    cid = r.stdout.decode().strip()
    out = d.docker("exec", cid, "cat", "/sys/class/net/eth0/address").stdout.decode()
    assert out == "92:d0:c6:0a:29:33\n"
    fmt = "{{.NetworkSettings.MacAddress}} {{.NetworkSettings.Networks.bridge.MacAddress}}"
    assert d.docker("inspect", "-f", fmt, cid).stdout.decode().split() == ["92:d0:c6:0a:29:33"] * 2
    assert d.docker("restart", "-t", "0", cid).returncode == 0  # kept across starts
    assert d.docker("exec", cid, "cat", "/sys/class/net/eth0/address").stdout.decode() == "92:d0:c6:0a:29:33\n"


def test_default_mac_is_derived_from_the_ip(d):
    out = run(d, "busybox", "sh", "-c", "cat /sys/class/net/eth0/address; ip -4 -o addr show eth0")
    mac, addr = out.splitlines()[0], out.split("inet ")[1].split("/")[0]
    assert mac == "02:42:" + ":".join(f"{int(b):02x}" for b in addr.split("."))


def test_mac_address_on_a_user_network(d):
    assert d.docker("network", "create", "macnet").returncode == 0
    out = run(d, "--network", "macnet", "--mac-address", "02:00:00:00:00:07", "busybox",
              "cat", "/sys/class/net/eth0/address")
    assert out == "02:00:00:00:00:07\n"


def test_bad_mac_address_is_refused_by_docker_py(client):
    with pytest.raises(docker.errors.APIError) as exc:
        client.api.create_container("busybox", "true", mac_address="zz:00:00:00:00:01")
    assert exc.value.status_code == 400 and "invalid MAC address" in str(exc.value)


def test_domainname_sets_the_uts_domain_and_hosts(d):
    out = run(d, "-h", "boat", "--domainname", "sea.example", "busybox", "sh", "-c",
              "hostname; cat /proc/sys/kernel/domainname; cat /etc/hostname; grep boat /etc/hosts")
    lines = out.splitlines()
    assert lines[:3] == ["boat", "sea.example", "boat"]
    assert lines[3].split()[1:] == ["boat.sea.example", "boat"]


def test_host_network_has_its_own_names(d):
    """As Docker: --network host shares the network, not the UTS namespace; the hostname is the
    host's unless -h names another, and the host's names never change."""
    host = socket.gethostname()
    assert run(d, "--network", "host", "busybox", "hostname") == f"{host}\n"
    out = run(d, "--network", "host", "-h", "boat", "--domainname", "sea.example", "busybox", "sh", "-c",
              "hostname; cat /proc/sys/kernel/domainname; ls /sys/class/net | grep -c .")
    lines = out.splitlines()
    assert lines[:2] == ["boat", "sea.example"] and int(lines[2]) == len(os.listdir("/sys/class/net"))
    assert socket.gethostname() == host and "sea.example" not in open("/proc/sys/kernel/domainname").read()


def test_domainname_is_seen_by_exec(d):
    r = d.docker("run", "-d", "--domainname", "sea.example", "busybox", "sleep", "60")
    assert r.returncode == 0, r.stderr.decode()
    cid = r.stdout.decode().strip()
    assert d.docker("exec", cid, "cat", "/proc/sys/kernel/domainname").stdout.decode() == "sea.example\n"
    assert "sea.example" not in open("/proc/sys/kernel/domainname").read()


def test_links_on_the_default_bridge(d):
    r = d.docker("run", "-d", "--name", "linkweb", "-e", "SECRET=x", "--expose", "80", "busybox", "sleep", "60")
    assert r.returncode == 0, r.stderr.decode()
    ip = d.docker("inspect", "-f", "{{.NetworkSettings.IPAddress}}", "linkweb").stdout.decode().strip()
    out = run(d, "--name", "linkme", "--link", "linkweb:db", "busybox", "sh", "-c",
              "grep -w db /etc/hosts; env | grep ^DB_ | sort")
    lines = out.splitlines()
    assert lines[0].split()[0] == ip and {"db", "linkweb"} <= set(lines[0].split()[1:])
    assert f"DB_PORT=tcp://{ip}:80" in lines
    assert f"DB_PORT_80_TCP_ADDR={ip}" in lines
    assert "DB_NAME=/linkme/db" in lines
    assert "DB_ENV_SECRET=x" in lines


def test_link_to_a_stopped_container_fails_the_start(d):
    assert d.docker("create", "--name", "linkidle", "busybox", "true").returncode == 0
    r = d.docker("run", "--rm", "--link", "linkidle:idle", "busybox", "true")
    assert r.returncode != 0 and "Cannot link to a non running container" in r.stderr.decode()


def test_net_sysctl_is_set_in_the_container_namespace(d):
    before = open("/proc/sys/net/ipv4/ip_unprivileged_port_start").read()
    out = run(d, "--sysctl", "net.ipv4.ip_unprivileged_port_start=53", "busybox",
              "cat", "/proc/sys/net/ipv4/ip_unprivileged_port_start")
    assert out == "53\n"
    assert open("/proc/sys/net/ipv4/ip_unprivileged_port_start").read() == before


def test_systempaths_unconfined_unmasks_proc(d):
    probe = "grep -c ' /proc/keys ' /proc/mounts; grep -c ' /proc/sys ' /proc/mounts; true"
    assert run(d, "busybox", "sh", "-c", probe).split() == ["1", "1"]  # masked, read-only
    out = run(d, "--security-opt", "systempaths=unconfined", "busybox", "sh", "-c", probe)
    assert out.split() == ["0", "0"]


def test_pid_and_ipc_of_another_container(d):
    r = d.docker("run", "-d", "--ipc", "shareable", "--name", "nsdonor", "busybox", "sleep", "60")
    assert r.returncode == 0, r.stderr.decode()
    donor = r.stdout.decode().strip()
    pid = int(d.docker("inspect", "-f", "{{.State.Pid}}", donor).stdout.decode())
    import os

    want = {k: os.readlink(f"/proc/{pid}/ns/{k}") for k in ("pid", "ipc")}
    out = run(d, "--pid", "container:nsdonor", "--ipc", "container:nsdonor", "busybox", "sh", "-c",
              "readlink /proc/self/ns/ipc; ps -o comm | grep -c sleep")
    ipc, sleeps = out.split()
    assert ipc == want["ipc"] and int(sleeps) >= 1
    r = d.docker("run", "-d", "--name", "nsprivate", "busybox", "sleep", "60")
    assert r.returncode == 0
    r = d.docker("run", "--rm", "--ipc", "container:nsprivate", "busybox", "true")
    assert r.returncode != 0 and "non-shareable IPC" in r.stderr.decode()


def test_ipc_none_has_no_dev_shm_and_host_shares_the_hosts(d, tmp_path):
    out = run(d, "--ipc", "none", "busybox", "sh", "-c", "grep -c ' /dev/shm ' /proc/mounts; test -e /dev/shm || echo absent")
    assert out.split() == ["0", "absent"]  # nothing mounted, as Docker
    name = f"dockyard-test-{os.getpid()}"
    Path("/dev/shm", name).write_text("from the host\n")
    try:
        assert run(d, "--ipc", "host", "busybox", "cat", f"/dev/shm/{name}") == "from the host\n"
    finally:
        Path("/dev/shm", name).unlink()


def test_compose_style_json_file_logging_is_accepted(d):
    assert run(d, "--log-driver", "json-file", "--log-opt", "max-size=1m", "busybox", "echo", "hi") == "hi\n"


def test_log_driver_none_keeps_nothing_to_read(d):
    assert run(d, "--log-driver", "none", "busybox", "echo", "attached") == "attached\n"  # attach still works
    r = d.docker("run", "-d", "--log-driver", "none", "busybox", "sh", "-c", "echo hidden")
    assert r.returncode == 0, r.stderr.decode()
    cid = r.stdout.decode().strip()
    assert d.docker("wait", cid).stdout.strip() == b"0"
    r = d.docker("logs", cid)
    assert r.returncode != 0 and "configured logging driver does not support reading" in r.stderr.decode()
    assert d.docker("inspect", "-f", "{{.HostConfig.LogConfig.Type}}", cid).stdout.strip() == b"none"
    d.docker("rm", cid)


def test_link_on_a_user_network_is_a_name_without_variables(d):
    assert d.docker("network", "create", "linknet").returncode == 0
    r = d.docker("run", "-d", "--network", "linknet", "--name", "userweb", "busybox", "sleep", "60")
    assert r.returncode == 0, r.stderr.decode()
    r = d.docker("run", "--rm", "--link", "userweb:cache", "busybox", "true")  # from the default bridge
    assert r.returncode != 0 and "as it does not belong to the default network" in r.stderr.decode()
    ip = d.docker("inspect", "-f", "{{.NetworkSettings.Networks.linknet.IPAddress}}", "userweb").stdout.decode()
    out = run(d, "--network", "linknet", "--link", "userweb:cache", "busybox", "sh", "-c",
              "grep -w cache /etc/hosts; env | grep -c ^CACHE_ || true")
    assert out.split()[0] == ip.strip() and out.split()[-1] == "0"


def test_matching_platform_is_accepted(d):
    arch = d.docker("image", "inspect", "-f", "{{.Os}}/{{.Architecture}}", "busybox").stdout.decode().strip()
    assert run(d, "--platform", arch, "busybox", "echo", "ok") == "ok\n"


def test_mac_address_from_docker_py_config(client):
    out = client.containers.run("busybox", ["cat", "/sys/class/net/eth0/address"], mac_address="02:00:00:00:00:09",
                                remove=True)
    assert out == b"02:00:00:00:00:09\n"
