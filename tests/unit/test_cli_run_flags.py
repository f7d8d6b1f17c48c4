"""``run``/``create`` flags -> ``POST /containers/create`` body, one case per flag (the bodies
docker CLI 28 sends, as captured; tests/integration/test_cli_run_flags.py compares against the
real docker CLI), and docker's usage errors for bad values."""

import click
import pytest
from click.testing import CliRunner

from dockyard_cli.create_flags import create_body
from dockyard_cli.run import create, run
from dockyard_cli.run_flags import attach_streams, localhost_dns_warnings, read_kv_file


def body(detached=False, **opts):
    return create_body("busybox", [], opts, attach=not detached, environ={})


def hc(**opts):
    return body(**opts)["HostConfig"]


CASES = [
    ({"add_host": ("a:1.2.3.4", "b=::1", "c=[::2]", "h:host-gateway")},
     {"ExtraHosts": ["a:1.2.3.4", "b:::1", "c:::2", "h:host-gateway"]}),
    ({"dns": ("1.1.1.1", " ::ffff:1.2.3.4")}, {"Dns": ["1.1.1.1", "1.2.3.4"]}),
    ({"dns_search": ("x.y", ".", "a.b.")}, {"DnsSearch": ["x.y", ".", "a.b"]}),
    ({"dns_option": ("ndots:2", "rotate")}, {"DnsOptions": ["ndots:2", "rotate"]}),
    ({"sysctl": ("net.ipv4.ip_forward=1", "kernel.shmmax=1", "fs.mqueue.x=a=b")},
     {"Sysctls": {"net.ipv4.ip_forward": "1", "kernel.shmmax": "1", "fs.mqueue.x": "a=b"}}),
    ({"shm_size": "64m"}, {"ShmSize": 64 << 20}),
    ({"log_driver": "json-file", "log_opt": ("max-size=1m", "max-file=2")},
     {"LogConfig": {"Type": "json-file", "Config": {"max-size": "1m", "max-file": "2"}}}),
    ({"log_opt": ("mode=x",)}, {"LogConfig": {"Type": "", "Config": {"mode": "x"}}}),
    ({"device": ("/dev/null", "/dev/null:/dev/x", "/dev/zero:r", "/dev/full:/dev/f:rw", "/dev/nu*")},
     {"Devices": [{"PathOnHost": "/dev/null", "PathInContainer": "/dev/null", "CgroupPermissions": "rwm"},
                  {"PathOnHost": "/dev/null", "PathInContainer": "/dev/x", "CgroupPermissions": "rwm"},
                  {"PathOnHost": "/dev/zero", "PathInContainer": "/dev/zero", "CgroupPermissions": "r"},
                  {"PathOnHost": "/dev/full", "PathInContainer": "/dev/f", "CgroupPermissions": "rw"},
                  {"PathOnHost": "/dev/nu*", "PathInContainer": "/dev/nu*", "CgroupPermissions": "rwm"}]}),
    ({"device_cgroup_rule": ("c 1:3 rwm", "b *:* m")}, {"DeviceCgroupRules": ["c 1:3 rwm", "b *:* m"]}),
    ({"cgroupns": "private"}, {"CgroupnsMode": "private"}),
    ({"oom_score_adj": 100}, {"OomScoreAdj": 100}),
    ({"oom_kill_disable": True}, {"OomKillDisable": True}),
    ({"link": ("a", "b:c")}, {"Links": ["a", "b:c"]}),
    ({"pid": "container:x", "ipc": "shareable", "uts": "host", "userns": "host"},
     {"PidMode": "container:x", "IpcMode": "shareable", "UTSMode": "host", "UsernsMode": "host"}),
    ({"group_add": ("10", "audio")}, {"GroupAdd": ["10", "audio"]}),
    ({"memory_reservation": "10m", "cpu_period": 100000, "cpu_quota": 50000, "cpuset_mems": "0", "blkio_weight": 300},
     {"MemoryReservation": 10 << 20, "CpuPeriod": 100000, "CpuQuota": 50000, "CpusetMems": "0", "BlkioWeight": 300}),
    ({"memory_swappiness": 50, "cpu_rt_period": 1000, "cpu_rt_runtime": 100},
     {"MemorySwappiness": 50, "CpuRealtimePeriod": 1000, "CpuRealtimeRuntime": 100}),
    ({"blkio_weight_device": ("/dev/sda:300",), "device_read_bps": ("/dev/sda:1mb",),
      "device_write_bps": ("/dev/sda:2k",), "device_read_iops": ("/dev/sda:100",), "device_write_iops": ("/dev/sda:5",)},
     {"BlkioWeightDevice": [{"Path": "/dev/sda", "Weight": 300}],
      "BlkioDeviceReadBps": [{"Path": "/dev/sda", "Rate": 1 << 20}],
      "BlkioDeviceWriteBps": [{"Path": "/dev/sda", "Rate": 2048}],
      "BlkioDeviceReadIOps": [{"Path": "/dev/sda", "Rate": 100}],
      "BlkioDeviceWriteIOps": [{"Path": "/dev/sda", "Rate": 5}]}),
    ({"runtime": "runc", "isolation": "default", "cgroup_parent": "p"},
     {"Runtime": "runc", "Isolation": "default", "CgroupParent": "p"}),
    ({"annotation": ("a=b", "c")}, {"Annotations": {"a": "b", "c": ""}}),
    ({"storage_opt": ("size=1G",)}, {"StorageOpt": {"size": "1G"}}),
    ({"gpus": ("all", "2", "device=0,1")},
     {"DeviceRequests": [
         {"Driver": "", "Count": -1, "DeviceIDs": None, "Capabilities": [["gpu"]], "Options": {}},
         {"Driver": "", "Count": 2, "DeviceIDs": None, "Capabilities": [["gpu"]], "Options": {}},
         {"Driver": "", "Count": 1, "DeviceIDs": ["0"], "Capabilities": [["gpu"]], "Options": {}}]}),
    ({"gpus": ("count=2,driver=nvidia,capabilities=compute,options=a=b",)},
     {"DeviceRequests": [{"Driver": "nvidia", "Count": 2, "DeviceIDs": None, "Capabilities": [["compute", "gpu"]],
                          "Options": {"a": "b"}}]}),
    ({"cidfile": "/tmp/x.cid"}, {"ContainerIDFile": "/tmp/x.cid"}),
    ({"cap_add": ("net_admin", "CAP_CHOWN", "net_admin"), "cap_drop": ("all", "chown")},
     {"CapAdd": ["CAP_CHOWN", "CAP_NET_ADMIN"], "CapDrop": ["ALL", "CAP_CHOWN"]}),
]


@pytest.mark.parametrize("opts,want", CASES)
def test_host_config_fields(opts, want):
    assert hc(**opts) == want


def test_config_and_endpoint_fields():
    b = body(domainname="ex.com", mac_address="92:d0:c6:0a:29:33", ip6="2001:db8::33",
             link_local_ip=("169.254.1.1",))
    assert b["Domainname"] == "ex.com"
    assert b["NetworkingConfig"] == {"EndpointsConfig": {"default": {
        "MacAddress": "92:d0:c6:0a:29:33", "IPAMConfig": {"IPv6Address": "2001:db8::33", "LinkLocalIPs": ["169.254.1.1"]}}}}
    # on a user-defined network the links and the --ip go to its endpoint too, as docker CLI 28 sends them
    b = body(network="foo", link=("a:b",), ip="10.1.1.1", network_alias=("q",))
    assert b["HostConfig"]["Links"] == ["a:b"]
    assert b["NetworkingConfig"] == {"EndpointsConfig": {"foo": {
        "Links": ["a:b"], "IPAMConfig": {"IPv4Address": "10.1.1.1"}, "Aliases": ["q"]}}}
    assert "NetworkingConfig" not in body(link=("a",))
    assert body(health_cmd="true", health_start_interval="1s")["Healthcheck"] == {
        "Test": ["CMD-SHELL", "true"], "StartInterval": 1_000_000_000}


def test_attach_streams():
    def fields(**opts):
        b = body(**opts)
        return tuple(b[k] for k in ("AttachStdin", "AttachStdout", "AttachStderr", "OpenStdin", "StdinOnce"))

    assert fields() == (False, True, True, False, False)
    assert fields(interactive=True) == (True, True, True, True, True)
    assert fields(attach=("stdin",)) == (True, False, False, False, False)
    assert fields(attach=("STDOUT",)) == (False, True, False, False, False)
    assert fields(interactive=True, attach=("stdin", "stdout")) == (True, True, False, True, True)
    detached = body(detached=True, interactive=True)
    assert (detached["AttachStdin"], detached["AttachStdout"], detached["StdinOnce"]) == (False, False, False)
    assert attach_streams({"attach": ("stderr",)}) == (False, False, True)


def test_localhost_dns_warning():
    assert localhost_dns_warnings(body(dns=("8.8.8.8", "127.0.0.53", "::1"))) == \
        ["Localhost DNS (127.0.0.53) may fail in containers."]
    assert localhost_dns_warnings(body(dns=("8.8.8.8",))) == []


def test_label_file(tmp_path):
    f = tmp_path / "labels"
    f.write_text("\ufeffa=b\n# comment\n\n   c=d=e \nbare\n")
    assert read_kv_file(str(f)) == ["a=b", "c=d=e "]
    assert body(label_file=(str(f),), label=("a=x", "y"))["Labels"] == {"a": "x", "c": "d=e ", "y": ""}
    f.write_text("k y=1\n")
    with pytest.raises(click.UsageError, match=r"variable 'k y' contains whitespaces"):
        read_kv_file(str(f))


BAD = [
    ({"add_host": ("bad",)}, 'invalid argument "bad" for "--add-host" flag: bad format for add-host: "bad"'),
    ({"add_host": ("a:b:c",)}, 'invalid IP address in add-host: "b:c"'),
    ({"add_host": ("a:notip",)}, 'invalid IP address in add-host: "notip"'),
    ({"dns": ("notip",)}, "IP address is not correctly formatted: notip"),
    ({"dns_search": ("1.2",)}, "1.2 is not a valid domain"),
    ({"dns_search": ("a..b",)}, "a..b is not a valid domain"),
    ({"sysctl": ("kernel.foo=1",)}, "sysctl 'kernel.foo=1' is not allowed"),
    ({"sysctl": ("net.x",)}, "sysctl 'net.x' is not allowed"),
    ({"link": ("a:b:c",)}, "bad format for links: a:b:c"),
    ({"link": ("",)}, "empty string specified for links"),
    ({"log_driver": "none", "log_opt": ("a=b",)}, "invalid logging opts for driver none"),
    ({"storage_opt": ("size",)}, "invalid storage option"),
    ({"memory_swappiness": 101}, "invalid value: 101. Valid memory swappiness range is 0-100"),
    ({"blkio_weight_device": ("sda:300",)}, "bad format for device path: sda:300"),
    ({"blkio_weight_device": ("/dev/sda:5",)}, "invalid weight for device: /dev/sda:5"),
    ({"device_read_bps": ("/dev/sda:x",)}, "invalid rate for device: /dev/sda:x. The correct format is"),
    ({"device_write_iops": ("/dev/sda:1k",)}, "invalid rate for device: /dev/sda:1k."),
    ({"gpus": ("x",)}, 'invalid count (x): value must be either "all" or an integer'),
    ({"gpus": ("count=1,count=2",)}, "gpu request key 'count' can be specified only once"),
    ({"gpus": ("foo=1",)}, "unexpected key 'foo' in 'foo=1'"),
    ({"device": ("rel",)}, "rel is not an absolute path"),
    ({"device": ("/dev/null:rwx",)}, "rwx is not an absolute path"),
    ({"device": ("/a:/b:/c:d",)}, "bad format for path: /a:/b:/c:d"),
    ({"device": ("/a:/b:x",)}, "bad mode specified: x"),
    ({"device": ("/dev/nu*:/x",)}, "device with * suffix can't have dst"),
    ({"device_cgroup_rule": ("c 1:3",)}, "invalid device cgroup format 'c 1:3'"),
    ({"cgroupns": "bad"}, "--cgroupns: invalid CGROUP mode"),
    ({"pid": "container:"}, "--pid: invalid PID mode"),
    ({"uts": "private"}, "--uts: invalid UTS mode"),
    ({"userns": "private"}, "--userns: invalid USER mode"),
    ({"mac_address": "zz"}, "zz is not a valid mac address"),
    ({"attach": ("foo",)}, 'invalid argument "foo" for "-a, --attach" flag: valid streams are STDIN, STDOUT and STDERR'),
    ({"shm_size": "lots"}, "invalid size"),
    ({"label_file": ("/nonexistent/labels",)}, "open /nonexistent/labels: no such file or directory"),
]


@pytest.mark.parametrize("opts,message", BAD)
def test_bad_values_are_usage_errors(opts, message):
    with pytest.raises(click.UsageError) as info:
        body(**opts)
    assert message in info.value.format_message()


#: ``docker run --help`` (CLI 28.2.2) long flags this CLI leaves out, and why: Windows-only
#: (the docker CLI refuses them against a Linux daemon), client-side features with nothing to
#: do here (content trust, the API-socket bind of docker's own socket), a limit Docker ignores.
NOT_OFFERED = {"--cpu-count", "--cpu-percent", "--io-maxbandwidth", "--io-maxiops", "--disable-content-trust",
               "--use-api-socket", "--kernel-memory"}

DOCKER_RUN_FLAGS = """--add-host --annotation -a --attach --blkio-weight --blkio-weight-device --cap-add --cap-drop
--cgroup-parent --cgroupns --cidfile --cpu-count --cpu-percent --cpu-period --cpu-quota --cpu-rt-period
--cpu-rt-runtime -c --cpu-shares --cpus --cpuset-cpus --cpuset-mems -d --detach --detach-keys --device
--device-cgroup-rule --device-read-bps --device-read-iops --device-write-bps --device-write-iops
--disable-content-trust --dns --dns-option --dns-search --domainname --entrypoint -e --env --env-file --expose
--gpus --group-add --health-cmd --health-interval --health-retries --health-start-interval --health-start-period
--health-timeout --help -h --hostname --init -i --interactive --io-maxbandwidth --io-maxiops --ip --ip6 --ipc
--isolation --kernel-memory -l --label --label-file --link --link-local-ip --log-driver --log-opt --mac-address
-m --memory --memory-reservation --memory-swap --memory-swappiness --mount --name --network --network-alias
--no-healthcheck --oom-kill-disable --oom-score-adj --pid --pids-limit --platform --privileged -p --publish
-P --publish-all --pull -q --quiet --read-only --restart --rm --runtime --security-opt --shm-size --sig-proxy
--stop-signal --stop-timeout --storage-opt --sysctl --tmpfs -t --tty --ulimit --use-api-socket -u --user
--userns --uts -v --volume --volume-driver --volumes-from -w --workdir --dns-opt --net --net-alias""".split()


def test_every_docker_run_flag_is_offered():
    offered = {name for p in run.params for name in (*p.opts, *p.secondary_opts)} | {"--help"}
    assert set(DOCKER_RUN_FLAGS) - NOT_OFFERED - offered == set()
    create_offered = {name for p in create.params for name in p.opts}
    assert offered - create_offered == {"-d", "--detach", "--sig-proxy", "--detach-keys", "--help"}


def test_pull_option_is_checked_before_anything_is_sent():
    r = CliRunner().invoke(create, ["--pull", "sometimes", "busybox"], obj=object())
    assert r.exit_code == 125 and 'invalid pull option: \'sometimes\'' in r.output
