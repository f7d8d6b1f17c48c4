"""dockyard.containers.effective: the privileges a container really gets, whatever road the
request took (no daemon: containers and volumes are stand-ins)."""

from __future__ import annotations

import os
from types import SimpleNamespace

import pytest

from dockyard.containers import effective as E
from dockyard.errors import NoSuchContainer


class Containers:
    """The two things effective.py asks of the containers service: get() and the volumes."""

    def __init__(self, *records, volumes=None):
        self.by_ref = {}
        for c in records:
            self.by_ref[c.id] = self.by_ref[c.name] = c
        self.daemon = SimpleNamespace(volumes=SimpleNamespace(records=volumes or {}))
        self.cgroups = SimpleNamespace(version=1)

    def get(self, ref):
        try:
            return self.by_ref[ref]
        except KeyError:
            raise NoSuchContainer(ref) from None


def record(name, pid=0, **hc):
    return SimpleNamespace(id=name + "-id", name=name, pid=pid, host_config=hc, mounts=[])


def test_requested_names_privileges_not_fields(tmp_path):
    (tmp_path / "link").symlink_to("/")
    p = E.requested("/containers/create", {"HostConfig": {
        "Binds": ["/etc/../:/a", f"{tmp_path}/link:/b", "vol:/c", "/d"],
        "Mounts": [{"Type": "bind", "Source": "//", "Target": "/e"},
                   {"Type": "volume", "Target": "/f", "VolumeOptions": {"DriverConfig": {
                       "Name": "local", "Options": {"type": "none", "o": "bind", "device": f"{tmp_path}/x/../"}}}}],
        "CapAdd": ["chown", "net_admin"], "SecurityOpt": ["seccomp:unconfined", "no-new-privileges"],
        "MaskedPaths": [], "PidMode": "host", "NetworkMode": "container:x"}})
    assert set(p.host_paths) == {"/", str(tmp_path)}
    assert p.capabilities == {"CAP_NET_ADMIN"}  # CHOWN is in Docker's default set
    assert p.unconfined == {"seccomp", "systempaths"} and p.host_namespaces == {"pid"}
    assert not p.privileged and not p.devices
    assert E.requested("/containers/create", {"HostConfig": {"Privileged": "false"}}).privileged  # true-ish
    assert not E.requested("/containers/create", {"HostConfig": {"CapAdd": ["NET_RAW"], "CapDrop": ["ALL"]}})
    assert E.requested("/containers/{id}/exec", {"Privileged": 1}).privileged
    assert E.requested("/build", None, {"networkmode": "host"}).host_namespaces == {"net"}
    with pytest.raises(ValueError):
        E.requested("/containers/create", {"HostConfig": {"SecurityOpt": [3]}})
    with pytest.raises(ValueError):
        E.requested("/containers/create", {"HostConfig": []})


@pytest.mark.parametrize("options, paths", [
    ({}, ()), ({"type": "tmpfs", "device": "tmpfs", "o": "size=1m"}, ()),
    ({"type": "none", "o": "bind", "device": "/etc/.."}, ("/",)),
    ({"type": "tmpfs", "o": "rbind", "device": "/usr/"}, ("/usr",)),
    ({"type": "ext4", "device": "/dev/null"}, ("/dev/null",)),
    ({"type": "overlay", "device": "overlay", "o": "lowerdir=/etc:/usr,upperdir=/srv/u"}, ("/etc", "/usr", "/srv/u")),
    ({"type": "nfs", "device": ":/export", "o": "addr=10.0.0.1"}, ("/",)),
])
def test_a_volume_is_what_it_mounts(options, paths):
    assert E.of_volume("local", options).host_paths == paths
    assert E.of_volume("someplugin", {"x": "y"}).host_paths == ("/",)
    assert E.of_volume("someplugin", {}).host_paths == ()


def test_container_namespaces_follow_the_chain_and_the_kernel():
    host = record("host", NetworkMode="host", PidMode="host")
    via = record("via", NetworkMode="container:host", PidMode="container:host")
    via2 = record("via2", NetworkMode="container:via-id")
    plain = record("plain", NetworkMode="default")
    loop_a, loop_b = record("a", NetworkMode="container:b"), record("b", NetworkMode="container:a")
    # a running container whose record says nothing, but the kernel says it is in our namespace
    sneaky = record("sneaky", pid=os.getpid(), NetworkMode="default")
    cs = Containers(host, via, via2, plain, loop_a, loop_b, sneaky)
    is_host = lambda mode, kind="net": E.namespace_is_host(cs, {E.NAMESPACE_FIELDS[kind]: mode}, kind)  # noqa: E731
    assert is_host("container:host") and is_host("container:via") and is_host("container:via2")
    assert is_host("container:via", "pid") and is_host("HOST")
    assert is_host("container:sneaky") and is_host("container:sneaky", "ipc")
    assert not is_host("container:plain") and not is_host("container:a") and not is_host("container:nobody")
    p = E.of_container(cs, {"NetworkMode": "container:via2", "CgroupnsMode": "host"}, [])
    assert p.host_namespaces == {"net"}  # cgroupns host is the default on cgroup v1: no privilege
    cs.cgroups.version = 2
    assert E.of_container(cs, {"CgroupnsMode": "host"}, []).host_namespaces == {"cgroup"}


def test_mount_records_and_named_volumes():
    vols = {"bindvol": {"Driver": "local", "Options": {"type": "none", "o": "bind", "device": "/var/.."}},
            "plain": {"Driver": "local", "Options": {}}}
    cs = Containers(volumes=vols)
    points = [{"Type": "volume", "Name": "bindvol"}, {"Type": "volume", "Name": "plain"},
              {"Type": "volume", "Name": "new", "Driver": "local", "driver_opts": {"type": "none", "o": "bind",
                                                                                 "device": "/srv/"}},
              {"Type": "bind", "Source": "/tmp/../etc/"}, {"Type": "tmpfs"}]
    assert set(E.of_container(cs, {}, points).host_paths) == {"/", "/srv", "/etc"}
    c = SimpleNamespace(id="c", host_config={}, mounts=[{"Type": "volume", "Name": "plain"}])
    assert not E.of_exec(cs, c, False)
    assert E.of_exec(cs, c, True).privileged
