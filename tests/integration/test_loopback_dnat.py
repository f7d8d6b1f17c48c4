"""Our bridges have ``route_localnet`` (published ports DNAT 127.0.0.1 in the kernel), so the
firewall must drop 127/8 arriving from them: a container must not reach the host's loopback
services. The test sends hand-made UDP frames out of a container's eth0 (from this process,
in the container's namespace): one to the host's bridge address (the control: it arrives),
one to 127.0.0.1 (must not arrive). Traffic only goes to the test's own listeners."""

from __future__ import annotations

import json
import socket
import struct
from pathlib import Path

import pytest

from dockyard.networks import netns

pytestmark = pytest.mark.privileged


def run(d, *args):
    r = d.docker(*args)
    assert r.returncode == 0, f"docker {' '.join(args)} failed: {r.stderr.decode()}"
    return r.stdout.decode().strip()


def _checksum(data: bytes) -> int:
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    return ~(total + (total >> 16)) & 0xFFFF


def frame(src_mac: str, dst_mac: str, src: str, dst: str, port: int, payload: bytes) -> bytes:
    udp = struct.pack("!HHHH", 40000, port, 8 + len(payload), 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0x4000, 64, socket.IPPROTO_UDP, 0,
                     socket.inet_aton(src), socket.inet_aton(dst))
    ip = ip[:10] + struct.pack("!H", _checksum(ip)) + ip[12:]
    mac = lambda m: bytes(int(b, 16) for b in m.split(":"))  # noqa: E731
    return mac(dst_mac) + mac(src_mac) + b"\x08\x00" + ip + udp


def arrives(sock: socket.socket) -> bool:
    try:
        return sock.recv(100) != b""
    except socket.timeout:
        return False


def test_containers_cannot_reach_host_loopback_through_route_localnet(d):
    cid = run(d, "run", "-d", "busybox", "sleep", "300")
    info = json.loads(run(d, "inspect", cid))[0]
    ns = info["NetworkSettings"]
    bridge, gateway, ip, mac = ns["Bridge"], ns["Gateway"], ns["IPAddress"], ns["MacAddress"]
    assert Path(f"/proc/sys/net/ipv4/conf/{bridge}/route_localnet").read_text().strip() == "1"
    bridge_mac = Path(f"/sys/class/net/{bridge}/address").read_text().strip()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as loop, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as control:
        loop.bind(("127.0.0.1", 0))
        control.bind((gateway, 0))
        control.settimeout(30)  # a bound for a loaded machine: it arrives, or the test fails
        loop.settimeout(1.0)  # sent right after the control one: had it passed, it would be here by now

        def send() -> None:  # in a thread inside the container's namespace
            with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as raw:
                raw.bind(("eth0", 0))
                raw.send(frame(mac, bridge_mac, ip, gateway, control.getsockname()[1], b"control"))
                raw.send(frame(mac, bridge_mac, ip, "127.0.0.1", loop.getsockname()[1], b"loopback"))

        netns.run_in(f"/proc/{info['State']['Pid']}/ns/net", send)
        assert arrives(control)  # the frames are right: one to the bridge address gets through
        assert not arrives(loop)  # 127/8 from the bridge is dropped
    run(d, "rm", "-f", cid)
