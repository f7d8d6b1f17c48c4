"""Published ports with the real docker CLI, docker-py and testcontainers: busybox httpd behind
``-p``/``-P``, UDP, a port already in use, container to container through the host address,
and a daemon killed with SIGKILL while a published container runs.

Traffic goes only to loopback and to the gateway addresses of bridges our daemons made."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import textwrap

import docker
import pytest

from dockyard.networks.service import instance_of
from dockyard.testing.daemon import free_port, wait_for

pytestmark = pytest.mark.privileged

HTTPD = "mkdir -p /www && echo hello-$HOSTNAME > /www/index.html && exec httpd -f -p 80 -h /www"


def ok(d, *args: str) -> str:
    r = d.docker(*args)
    assert r.returncode == 0, f"docker {' '.join(args)}: {r.stderr.decode()}"
    return r.stdout.decode().strip()


def http_get(host: str, port: int) -> str:
    """The body of ``GET /`` (HTTP/1.0), or "" when nothing answers yet."""
    try:
        with socket.create_connection((host, port), timeout=5) as s:
            s.sendall(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
            data = b""
            while chunk := s.recv(65536):
                data += chunk
    except OSError:
        return ""
    head, _, body = data.decode(errors="replace").partition("\r\n\r\n")
    return body.strip() if " 200 " in head.split("\r\n")[0] else ""


def port_is_free(port: int) -> bool:
    """Nothing listens on it (connections in TIME_WAIT are fine, as for any server)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def inspect(d, name: str) -> dict:
    return json.loads(ok(d, "inspect", name))[0]


def gateway_of(d, name: str) -> str:
    nets = inspect(d, name)["NetworkSettings"]["Networks"]
    return next(iter(nets.values()))["Gateway"]


def port_table(d) -> str:
    table = f"dockyard_{instance_of(d.data_root)}_ports" if instance_of(d.data_root) else "dockyard_ports"
    return subprocess.run(["nft", "list", "table", "ip", table], capture_output=True, text=True).stdout


def test_publish_on_loopback_answers_http(d):
    port = free_port()
    cid = ok(d, "run", "-d", "-p", f"127.0.0.1:{port}:80", "busybox", "sh", "-c", HTTPD)
    assert wait_for(lambda: http_get("127.0.0.1", port)) == f"hello-{cid[:12]}"
    ports = inspect(d, cid)["NetworkSettings"]["Ports"]
    assert ports == {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(port)}]}
    assert ok(d, "port", cid) == f"80/tcp -> 127.0.0.1:{port}"
    assert ok(d, "port", cid, "80/tcp") == f"127.0.0.1:{port}"
    assert f"127.0.0.1:{port}->80/tcp" in ok(d, "ps", "--filter", f"id={cid}")
    assert cid in ok(d, "ps", "-q", "--no-trunc", "--filter", "publish=80/tcp", "--filter", "expose=80")
    assert cid not in ok(d, "ps", "-q", "--no-trunc", "--filter", "publish=81")
    assert f"dport {port} dnat to" in port_table(d)
    ok(d, "stop", "-t", "0", cid)
    assert http_get("127.0.0.1", port) == ""
    assert port_is_free(port)
    assert f"dport {port} " not in port_table(d)
    assert inspect(d, cid)["NetworkSettings"]["Ports"] == {}


def test_publish_all_and_docker_port_agree(d):
    cid = ok(d, "run", "-d", "-P", "--expose", "80", "--expose", "81", "busybox", "sh", "-c", HTTPD)
    ports = inspect(d, cid)["NetworkSettings"]["Ports"]
    assert set(ports) == {"80/tcp", "81/tcp"}
    binding = ports["80/tcp"][0]
    assert binding["HostIp"] == "0.0.0.0" and int(binding["HostPort"]) > 0
    assert ok(d, "port", cid, "80") == f"0.0.0.0:{binding['HostPort']}"
    host_port = int(binding["HostPort"])
    # the userland proxy (loopback) and DNAT (the host's own address on our bridge) both reach it
    assert wait_for(lambda: http_get("127.0.0.1", host_port)) == f"hello-{cid[:12]}"
    assert http_get(gateway_of(d, cid), host_port) == f"hello-{cid[:12]}"
    api = d.docker_client().api
    listed = [c for c in api.containers() if c["Id"] == cid][0]
    assert {"PrivatePort": 80, "PublicPort": host_port, "Type": "tcp", "IP": "0.0.0.0"} in listed["Ports"]
    assert {"PrivatePort": 81, "PublicPort": int(ports["81/tcp"][0]["HostPort"]), "Type": "tcp",
            "IP": "0.0.0.0"} in listed["Ports"]


def test_docker_py_port_bindings_and_bad_specs(d, client):
    port = free_port()
    c = client.containers.run("busybox", ["sh", "-c", HTTPD], detach=True,
                              ports={"80/tcp": ("127.0.0.1", port), "81/tcp": None})
    try:
        c.reload()
        assert c.ports["80/tcp"] == [{"HostIp": "127.0.0.1", "HostPort": str(port)}]
        assert int(c.ports["81/tcp"][0]["HostPort"]) > 0  # None: a random port
        assert wait_for(lambda: http_get("127.0.0.1", port))
    finally:
        c.remove(force=True)
    for bad in ({"80/sctp": 8080}, {"0/tcp": 8080}, {"80/tcp": 99999}, {"80/tcp": ("localhost", 8080)}):
        with pytest.raises(docker.errors.APIError) as err:
            client.containers.create("busybox", ["true"], ports=bad)
        assert err.value.status_code == 400, bad


def test_docker_cli_rejects_bad_publish(d):
    r = d.docker("run", "--rm", "-p", "80:80:80:80", "busybox", "true")
    assert r.returncode != 0 and b"invalid" in r.stderr


def test_port_in_use_is_a_clear_error_and_leaves_nothing(d):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        other = free_port()
        r = d.docker("run", "-d", "--name", "busy-port", "-p", f"127.0.0.1:{other}:81",
                     "-p", f"127.0.0.1:{busy}:80", "busybox", "sleep", "300")
        assert r.returncode != 0
        assert f"127.0.0.1:{busy} failed: port is already allocated" in r.stderr.decode()
    state = inspect(d, "busy-port")["State"]
    assert not state["Running"]
    assert inspect(d, "busy-port")["NetworkSettings"]["Ports"] == {}
    assert port_is_free(other)  # the port that was free is free again
    assert "dnat" not in port_table(d) or f"dport {other} " not in port_table(d)
    cid = inspect(d, "busy-port")["Id"]
    assert not list((d.exec_root / "netns").glob(cid + "*"))


def test_container_reaches_published_port_through_host_address(d):
    server = ok(d, "run", "-d", "-p", "80", "busybox", "sh", "-c", HTTPD)
    host_port = int(json.loads(ok(d, "inspect", server))[0]["NetworkSettings"]["Ports"]["80/tcp"][0]["HostPort"])
    gateway = gateway_of(d, server)
    assert wait_for(lambda: http_get("127.0.0.1", host_port))
    out = ok(d, "run", "--rm", "busybox", "sh", "-c",
             f"printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5 {gateway} {host_port}")
    assert f"hello-{server[:12]}" in out


def _udp_echo_binary(tmp_path) -> str:
    """A static UDP echo server for the busybox container (busybox has no UDP server)."""
    if shutil.which("gcc") is None:
        pytest.skip("gcc is needed to build a UDP echo server")
    src = tmp_path / "udpecho.c"
    src.write_text(textwrap.dedent("""
        #include <netinet/in.h>
        #include <stdlib.h>
        #include <sys/socket.h>
        int main(int argc, char **argv) {
            int s = socket(AF_INET, SOCK_DGRAM, 0);
            struct sockaddr_in a = {0}; a.sin_family = AF_INET; a.sin_port = htons(atoi(argv[1]));
            if (bind(s, (struct sockaddr *)&a, sizeof a)) return 1;
            char buf[2048];
            for (;;) {
                struct sockaddr_in from; socklen_t len = sizeof from;
                ssize_t n = recvfrom(s, buf, sizeof buf, 0, (struct sockaddr *)&from, &len);
                if (n > 0) sendto(s, buf, n, 0, (struct sockaddr *)&from, len);
            }
        }
    """))
    out = tmp_path / "udpecho"
    r = subprocess.run(["gcc", "-static", "-O2", "-o", str(out), str(src)], capture_output=True)
    if r.returncode:
        pytest.skip(f"cannot build a static binary: {r.stderr.decode()[-200:]}")
    return str(out)


def udp_ask(host: str, port: int, payload: bytes) -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(1)
        s.sendto(payload, (host, port))
        try:
            return s.recv(2048)
        except OSError:
            return b""


def test_udp_publish(d, tmp_path):
    binary = _udp_echo_binary(tmp_path)
    cid = ok(d, "run", "-d", "-v", f"{binary}:/udpecho:ro", "-p", "127.0.0.1::5353/udp", "-p", "5354/udp",
             "busybox", "/udpecho", "5353")
    ports = inspect(d, cid)["NetworkSettings"]["Ports"]
    loop_port = int(ports["5353/udp"][0]["HostPort"])
    assert ports["5353/udp"][0]["HostIp"] == "127.0.0.1" and ports["5354/udp"][0]["HostIp"] == "0.0.0.0"
    assert wait_for(lambda: udp_ask("127.0.0.1", loop_port, b"ping")) == b"ping"
    ok(d, "rm", "-f", cid)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", loop_port))


def test_testcontainers_exposed_port_and_log_wait(d, monkeypatch):
    tc = pytest.importorskip("testcontainers.core.container")
    from testcontainers.core.wait_strategies import LogMessageWaitStrategy

    monkeypatch.setenv("DOCKER_HOST", d.url)
    monkeypatch.setenv("TESTCONTAINERS_RYUK_DISABLED", "true")
    monkeypatch.delenv("TC_HOST", raising=False)
    container = tc.DockerContainer("busybox").with_exposed_ports(80).with_command(
        ["sh", "-c", "echo serving; " + HTTPD]).waiting_for(LogMessageWaitStrategy("serving"))
    with container:  # starts, then waits for the log line
        host, host_port = container.get_container_host_ip(), int(container.get_exposed_port(80))
        assert wait_for(lambda: http_get(host, host_port)).startswith("hello-")


def test_published_ports_survive_daemon_kill(make_daemon, busybox_tar):
    d = make_daemon()
    d.load(busybox_tar)
    port = free_port()
    try:
        cid = ok(d, "run", "-d", "-p", f"127.0.0.1:{port}:80", "-p", "80", "busybox", "sh", "-c", HTTPD)
        dnat_port = int(inspect(d, cid)["NetworkSettings"]["Ports"]["80/tcp"][1]["HostPort"])
        gateway = gateway_of(d, cid)
        assert wait_for(lambda: http_get("127.0.0.1", port))
        d.kill()  # SIGKILL: the proxies die with the daemon, the rules stay
        assert http_get(gateway, dnat_port) == f"hello-{cid[:12]}"
        # 127.0.0.1 is DNATed in the kernel too (route_localnet on our bridges): no proxy needed
        assert http_get("127.0.0.1", port) == f"hello-{cid[:12]}"
        d.start()
        assert wait_for(lambda: http_get("127.0.0.1", port)) == f"hello-{cid[:12]}"
        assert http_get(gateway, dnat_port) == f"hello-{cid[:12]}"
        ok(d, "rm", "-f", cid)
        assert port_table(d) == ""
    finally:
        if d.ping():
            for c in d.docker("ps", "-aq").stdout.decode().split():
                d.docker("rm", "-f", c)


def test_dockyard_cli_publish_and_port(d):
    port = free_port()
    r = d.cli("run", "-d", "-p", f"127.0.0.1:{port}:80", "-P", "--expose", "81", "busybox", "sh", "-c", HTTPD)
    assert r.returncode == 0, r.stderr.decode()
    cid = r.stdout.decode().strip()
    lines = d.cli("port", cid).stdout.decode().splitlines()
    assert f"80/tcp -> 127.0.0.1:{port}" in lines
    assert any(line.startswith("81/tcp -> 0.0.0.0:") for line in lines)
    assert d.cli("port", cid, "80").stdout.decode().strip() == f"127.0.0.1:{port}"
    assert wait_for(lambda: http_get("127.0.0.1", port)) == f"hello-{cid[:12]}"
    r = d.cli("port", cid, "82")
    assert r.returncode != 0 and b"No public port '82/tcp'" in r.stderr
    assert f"127.0.0.1:{port}->80/tcp" in d.cli("ps").stdout.decode()


def test_restart_keeps_a_fixed_port(d):
    port = free_port()
    cid = ok(d, "run", "-d", "-p", f"127.0.0.1:{port}:80", "-p", "127.0.0.1::81/udp", "busybox", "sh", "-c", HTTPD)
    assert wait_for(lambda: http_get("127.0.0.1", port))
    for _ in range(3):
        ok(d, "restart", "-t", "0", cid)
        assert wait_for(lambda: http_get("127.0.0.1", port)) == f"hello-{cid[:12]}"
    assert inspect(d, cid)["NetworkSettings"]["Ports"]["80/tcp"] == [{"HostIp": "127.0.0.1", "HostPort": str(port)}]


def test_network_default_host_binding(d):
    name = "portsnet-" + str(free_port())
    ok(d, "network", "create", "-o", "com.docker.network.bridge.host_binding_ipv4=127.0.0.1", name)
    try:
        cid = ok(d, "run", "-d", "--network", name, "-p", "80", "busybox", "sh", "-c", HTTPD)
        binding = inspect(d, cid)["NetworkSettings"]["Ports"]["80/tcp"][0]
        assert binding["HostIp"] == "127.0.0.1"
        assert wait_for(lambda: http_get("127.0.0.1", int(binding["HostPort"]))) == f"hello-{cid[:12]}"
        ok(d, "rm", "-f", cid)
    finally:
        d.docker("network", "rm", name)
