"""The port publisher on its own: the userland proxy (TCP and UDP) against local echo servers
on loopback, the all-or-nothing reservation, restore after a restart, and the nft table."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import uuid

import pytest

from dockyard.drivers.network import PortBinding
from dockyard.errors import Conflict
from dockyard_net_bridge.ports import PortPublisher


class FakeNft:
    def __init__(self) -> None:
        self.scripts: list[str] = []

    def run(self, text: str) -> str:
        self.scripts.append(text)
        return ""


async def _echo_servers() -> tuple[asyncio.AbstractServer, asyncio.DatagramTransport, int, int]:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(await reader.read())  # until the client's half-close
        await writer.drain()
        writer.close()

    class UDPEcho(asyncio.DatagramProtocol):
        def connection_made(self, transport):  # noqa: ANN001
            self.transport = transport

        def datagram_received(self, data, addr):  # noqa: ANN001
            self.transport.sendto(b"echo:" + data, addr)

    loop = asyncio.get_running_loop()
    tcp = await asyncio.start_server(echo, "127.0.0.1", 0)
    udp, _ = await loop.create_datagram_endpoint(UDPEcho, local_addr=("127.0.0.1", 0))
    return tcp, udp, tcp.sockets[0].getsockname()[1], udp.get_extra_info("sockname")[1]


async def _tcp_roundtrip(port: int, payload: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(payload)
    writer.write_eof()
    data = await reader.read()
    writer.close()
    return data


async def _udp_roundtrip(port: int, payload: bytes) -> bytes:
    loop = asyncio.get_running_loop()
    got: asyncio.Future[bytes] = loop.create_future()

    class Client(asyncio.DatagramProtocol):
        def datagram_received(self, data, addr):  # noqa: ANN001
            if not got.done():
                got.set_result(data)

    transport, _ = await loop.create_datagram_endpoint(Client, remote_addr=("127.0.0.1", port))
    transport.sendto(payload)
    try:
        return await asyncio.wait_for(got, 10)
    finally:
        transport.close()


def _free(port: int, proto: str = "tcp") -> bool:
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    with socket.socket(socket.AF_INET, kind) as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def test_proxy_tcp_udp_and_unpublish(tmp_path):
    async def main() -> None:
        tcp, udp, tport, uport = await _echo_servers()
        nft = FakeNft()
        pub = PortPublisher(tmp_path / "ports.json", "t_ports", ["dy*"], nft=nft)
        try:
            # called from a worker thread, as the networks service calls drivers
            got = await asyncio.to_thread(pub.publish, "c1", "127.0.0.1", [
                PortBinding(tport, "tcp", "127.0.0.1", 0), PortBinding(uport, "udp", "127.0.0.1", 0)])
            assert [(b.container_port, b.protocol, b.host_ip) for b in got] == [
                (tport, "tcp", "127.0.0.1"), (uport, "udp", "127.0.0.1")]
            assert all(b.host_port > 0 for b in got)
            big = os.urandom(1 << 20)
            assert await _tcp_roundtrip(got[0].host_port, big) == big
            assert await _udp_roundtrip(got[1].host_port, b"ping") == b"echo:ping"
            assert f"tcp dport {got[0].host_port} dnat to 127.0.0.1:{tport}" in nft.scripts[-1]
            assert pub.ports_of("c1") == got
            await asyncio.to_thread(pub.unpublish, "c1")
            assert _free(got[0].host_port) and _free(got[1].host_port, "udp")
            assert nft.scripts[-1] == ("add table ip t_ports\ndelete table ip t_ports\n"
                                      "add table ip6 t_ports\ndelete table ip6 t_ports\n")
        finally:
            tcp.close()
            udp.close()

    asyncio.run(main())


def test_port_in_use_leaves_nothing(tmp_path):
    async def main() -> None:
        nft = FakeNft()
        pub = PortPublisher(tmp_path / "ports.json", "t_ports", nft=nft)
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            busy = taken.getsockname()[1]
            with socket.socket() as probe:  # a free port for the first binding
                probe.bind(("127.0.0.1", 0))
                first = probe.getsockname()[1]
            with pytest.raises(Conflict, match=f"Bind for 127.0.0.1:{busy} failed: port is already allocated"):
                pub.publish("c1", "10.0.0.2", [PortBinding(80, "tcp", "127.0.0.1", first),
                                                PortBinding(81, "tcp", "127.0.0.1", busy)])
            # all ports are busy too: 0.0.0.0 conflicts with a listener on 127.0.0.1
            with pytest.raises(Conflict, match=f"Bind for 0.0.0.0:{busy} failed"):
                pub.publish("c1", "10.0.0.2", [PortBinding(81, "tcp", "", busy)])
        assert _free(first)
        assert pub.published == {} and pub.listeners == {}
        assert all("dnat" not in s for s in nft.scripts)

    asyncio.run(main())


def test_host_port_range_picks_a_free_one(tmp_path):
    async def main() -> None:
        pub = PortPublisher(tmp_path / "ports.json", "t_ports", nft=FakeNft())
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            busy = taken.getsockname()[1]
            if not _free(busy + 1):
                pytest.skip("the next port is taken by someone else")
            got = pub.publish("c1", "10.0.0.2", [PortBinding(80, "tcp", "127.0.0.1", busy, busy + 1)])
        assert got[0].host_port == busy + 1
        pub.unpublish("c1")

    asyncio.run(main())


def test_restore_reopens_for_running_containers(tmp_path):
    async def main() -> None:
        tcp, udp, tport, _ = await _echo_servers()
        state = tmp_path / "ports.json"
        try:
            first = PortPublisher(state, "t_ports", nft=FakeNft())
            got = first.publish("c1", "127.0.0.1", [PortBinding(tport, "tcp", "127.0.0.1", 0)])
            first.publish("c2", "127.0.0.1", [PortBinding(tport, "tcp", "127.0.0.1", 0)])
            first.close()  # the daemon goes away; the rules stay
            nft = FakeNft()
            second = PortPublisher(state, "t_ports", nft=nft)
            await asyncio.to_thread(second.restore, {"c1": {"127.0.0.1"}})  # c2 stopped meanwhile
            assert list(second.published) == ["c1"]
            assert await _tcp_roundtrip(got[0].host_port, b"again") == b"again"
            second.remove_all()
            assert nft.scripts[-1] == ("add table ip t_ports\ndelete table ip t_ports\n"
                                      "add table ip6 t_ports\ndelete table ip6 t_ports\n")
        finally:
            tcp.close()
            udp.close()

    asyncio.run(main())


@pytest.mark.privileged
def test_rules_in_a_table_of_their_own(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root")
    table = f"dytest_{uuid.uuid4().hex[:8]}_ports"

    def listed() -> str:
        return subprocess.run(["nft", "list", "table", "ip", table], capture_output=True, text=True).stdout

    async def main() -> None:
        pub = PortPublisher(tmp_path / "ports.json", table, ["dy*"])
        try:
            got = pub.publish("c1", "10.99.0.2", [PortBinding(80, "tcp", "127.0.0.1", 0),
                                                   PortBinding(53, "udp", "", 0)])
            text = listed()
            assert f"ip daddr 127.0.0.1 tcp dport {got[0].host_port} dnat to 10.99.0.2:80" in text
            assert f"udp dport {got[1].host_port} dnat to 10.99.0.2:53" in text
            pub.unpublish("c1")
            assert listed() == ""
        finally:
            pub.remove_all()

    asyncio.run(main())


def test_unpublish_ends_proxied_connections(tmp_path):
    async def main() -> None:
        held: list[asyncio.StreamWriter] = []

        async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            held.append(writer)  # never answers

        server = await asyncio.start_server(hold, "127.0.0.1", 0)
        pub = PortPublisher(tmp_path / "ports.json", "t_ports", nft=FakeNft())
        try:
            got = pub.publish("c1", "127.0.0.1", [PortBinding(server.sockets[0].getsockname()[1], "tcp",
                                                              "127.0.0.1", 0)])
            reader, writer = await asyncio.open_connection("127.0.0.1", got[0].host_port)
            writer.write(b"x")
            await asyncio.wait_for(_until(lambda: held), 10)
            pub.unpublish("c1")
            assert await asyncio.wait_for(reader.read(), 10) == b""  # EOF, not a hang
            writer.close()
        finally:
            for w in held:
                w.close()
            server.close()

    asyncio.run(main())


async def _until(pred) -> None:  # noqa: ANN001
    while not pred():
        await asyncio.sleep(0.01)
