"""NetworkDriverSuite: behavioural tests every network driver (``dockyard.network``) runs.

Subclass it and provide a fixture ``network_driver_factory``: a callable returning a *new*
driver instance over the same directories each time (the suite calls it again to play a
daemon restart). The suite plays the networks service: it makes the records
(:class:`~dockyard.drivers.network.Network`, :class:`~dockyard.drivers.network.Endpoint`),
pins a network namespace per "container" under the test's directory, and checks what the
driver did with ``ip`` run inside them.

Drivers that change the host (links, firewall) must run where that is harmless: the
built-in bridge runs this suite inside ``unshare --net --mount`` with ``lo`` up (see
tests/conformance/test_network.py); nothing it makes outlives that process. Drivers with the
``ports`` capability publish a port on 127.0.0.1 to a server in an endpoint's namespace; the
test makes the driver on an event loop running in a thread, as the daemon does.

Class attributes:

* ``wires``: True when ``join`` gives the namespace an interface with the endpoint's address
  (a bridge); False for drivers with nothing to wire (``host``, ``null``): the namespace
  keeps only ``lo``.
* ``subnet_base``: first two octets of the test networks' subnets (``10.213`` gives
  ``10.213.N.0/24``).
* ``bad_options``: ``Network.options`` that :meth:`create` (and ``validate`` when the driver
  has it) must refuse with ``InvalidArgument``, leaving nothing.
"""

from __future__ import annotations

import asyncio
import secrets
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterator

import pytest

from dockyard.drivers import contracts
from dockyard.drivers.network import Endpoint, Network, PortBinding
from dockyard.errors import InvalidArgument


def sh(*args: str, check: bool = True) -> str:
    r = subprocess.run(args, capture_output=True, text=True, timeout=60)
    if check and r.returncode != 0:
        raise AssertionError(f"{' '.join(args)}: {r.stdout}{r.stderr}")
    return r.stdout


def links(ns: str | None = None) -> set[str]:
    """Link names in namespace ``ns`` (a pinned path), or in the caller's own."""
    cmd = ["nsenter", f"--net={ns}", "ip", "-o", "link"] if ns else ["ip", "-o", "link"]
    return {line.split(":")[1].strip().split("@")[0] for line in sh(*cmd).splitlines()}


def addresses(ns: str, ifname: str) -> str:
    return sh("nsenter", f"--net={ns}", "ip", "-o", "addr", "show", "dev", ifname)


def reaches(ns: str, ip: str, timeout: float = 30.0) -> bool:
    """One echo request at a time until one is answered or ``timeout`` passes (a bound on
    waiting: a fresh link may lose the first ARP request on a loaded machine)."""
    deadline = time.monotonic() + timeout
    while True:
        r = subprocess.run(["nsenter", f"--net={ns}", "busybox", "ping", "-c", "1", "-W", "1", ip],
                           capture_output=True)
        if r.returncode == 0:
            return True
        if time.monotonic() > deadline:
            return False


class NetworkDriverSuite:
    wires: ClassVar[bool] = True
    subnet_base: ClassVar[str] = "10.213"
    bad_options: ClassVar[list[dict[str, str]]] = []

    # -- fixtures and records --------------------------------------------------------------
    @pytest.fixture
    def drv(self, network_driver_factory: Callable[[], Any], tmp_path: Path) -> Iterator[Any]:
        from dockyard.networks import netns

        self._nets: list[Network] = []
        self._eps: list[tuple[Network, Endpoint]] = []
        self._nsdir = tmp_path / "netns"
        self._n = 0
        self._host_links = links()
        driver = network_driver_factory()
        self._driver = driver
        yield driver
        driver = self._driver  # a test may have replaced it (restart)
        for net, ep in self._eps:
            driver.leave(net, ep)
        for net in self._nets:
            driver.delete(net)
        driver.close([], in_use=False)
        if self._nsdir.exists():
            for p in self._nsdir.iterdir():
                netns.remove(p)
        assert self.settled(lambda: links() == self._host_links), \
            f"links left behind: {links() - self._host_links}"

    @staticmethod
    def settled(pred: Callable[[], bool], timeout: float = 10.0) -> bool:
        """The kernel deletes a released namespace's links in the background: wait for it."""
        deadline = time.monotonic() + timeout
        while not pred():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    def network(self, drv: Any, create: bool = True, **kw: Any) -> Network:
        self._n += 1
        n = self._n
        subnet = dict(subnet=f"{self.subnet_base}.{n}.0/24", gateway=f"{self.subnet_base}.{n}.1") if self.wires else {}
        net = Network(id=secrets.token_hex(32), name=f"conf{n}", driver=drv.name, created_ns=time.time_ns(),
                      **subnet, **kw)
        if create:
            drv.create(net)
            self._nets.append(net)
        return net

    def endpoint(self, drv: Any, net: Network, host: int, ns: str | None = None, ifname: str = "eth0",
                 join: bool = True, **kw: Any) -> Endpoint:
        from dockyard.networks import netns

        if ns is None:
            path = self._nsdir / f"c{secrets.token_hex(4)}"
            netns.create(path)
            ns = str(path)
        address = gateway = mac = ""
        if self.wires:
            prefix = net.subnet.rsplit(".", 1)[0]
            address, gateway = f"{prefix}.{host}/24", net.gateway
            octets = [int(x) for x in f"{prefix}.{host}".split(".")]
            mac = "02:42:" + ":".join(f"{o:02x}" for o in octets)
        ep = Endpoint(id=secrets.token_hex(32), network_id=net.id, container_id=secrets.token_hex(32), netns=ns,
                      ifname=ifname, address=address, gateway=gateway, mac=mac, **kw)
        if join:
            drv.join(net, ep)
            self._eps.append((net, ep))
        return ep

    def forget_endpoint(self, ep: Endpoint) -> None:
        self._eps = [(n, e) for n, e in self._eps if e.id != ep.id]

    # -- the contract ----------------------------------------------------------------------------
    def test_contract(self, drv):
        """The base Protocol and every declared capability's methods are there (the daemon's
        load-time check), and the driver names itself."""
        contracts.check("network", drv.name, drv)
        assert drv.name and drv.scope in ("local", "global", "swarm")

    # -- networks ---------------------------------------------------------------------------
    def test_create_and_delete_are_idempotent(self, drv):
        net = self.network(drv, create=False)
        drv.create(net)
        drv.delete(net)
        drv.delete(net)  # missing parts are fine
        assert self.settled(lambda: links() == self._host_links)
        drv.create(net)  # the same record again after a delete
        self._nets.append(net)

    def test_delete_of_a_network_never_created_is_fine(self, drv):
        """A daemon killed between its intent and the driver's create: the service deletes
        a record the driver never saw."""
        drv.delete(self.network(drv, create=False))
        assert links() == self._host_links

    def test_refused_options_leave_nothing(self, drv):
        if not self.bad_options:
            pytest.skip("no options this driver must refuse")
        for options in self.bad_options:
            net = self.network(drv, create=False, options=dict(options))
            if contracts.record("network", drv).has("validate"):
                with pytest.raises(InvalidArgument):
                    drv.validate(net)
            with pytest.raises(InvalidArgument):
                drv.create(net)
            assert links() == self._host_links, f"{options} left {links() - self._host_links}"

    # -- endpoints ---------------------------------------------------------------------------
    def test_join_wires_the_endpoint(self, drv):
        net = self.network(drv)
        ep = self.endpoint(drv, net, 2, mtu=1400)
        inside = links(ep.netns)
        if not self.wires:
            assert inside == {"lo"}
            return
        assert inside == {"lo", "eth0"}
        out = addresses(ep.netns, "eth0")
        assert ep.address in out, out
        link = sh("nsenter", f"--net={ep.netns}", "ip", "-o", "link", "show", "eth0")
        assert f"link/ether {ep.mac}" in link and "mtu 1400" in link and "UP" in link, link
        route = sh("nsenter", f"--net={ep.netns}", "ip", "route")
        assert f"default via {net.gateway}" in route, route
        assert reaches(ep.netns, net.gateway), "the gateway does not answer"

    def test_endpoints_on_one_network_reach_each_other(self, drv):
        if not self.wires:
            pytest.skip("nothing to wire")
        net = self.network(drv)
        a, b = self.endpoint(drv, net, 2), self.endpoint(drv, net, 3)
        assert reaches(a.netns, b.address.split("/")[0])
        assert reaches(b.netns, a.address.split("/")[0])

    def test_second_network_hot_plugged(self, drv):
        """``docker network connect``: a running container's namespace gets eth1, without a
        second default route."""
        n1, n2 = self.network(drv), self.network(drv)
        a = self.endpoint(drv, n1, 2)
        b = self.endpoint(drv, n2, 2, ns=a.netns, ifname="eth1", default_route=False)
        if not self.wires:
            assert links(a.netns) == {"lo"}
            return
        assert links(a.netns) == {"lo", "eth0", "eth1"}
        assert b.address in addresses(a.netns, "eth1")
        routes = sh("nsenter", f"--net={a.netns}", "ip", "route")
        assert routes.count("default") == 1 and f"default via {n1.gateway}" in routes, routes

    def test_leave_is_idempotent(self, drv):
        net = self.network(drv)
        ep = self.endpoint(drv, net, 2)
        drv.leave(net, ep)
        drv.leave(net, ep)  # already gone: fine
        self.forget_endpoint(ep)
        assert self.settled(lambda: links(ep.netns) == {"lo"})
        never = self.endpoint(drv, net, 3, join=False)
        drv.leave(net, never)  # never joined: fine
        again = self.endpoint(drv, net, 4, ns=ep.netns)  # the namespace can join again
        if self.wires:
            assert again.address in addresses(ep.netns, "eth0")

    def test_leave_after_the_namespace_is_gone(self, drv):
        """A container that died: its namespace (and the links in it) went first."""
        from dockyard.networks import netns

        net = self.network(drv)
        ep = self.endpoint(drv, net, 2)
        netns.remove(Path(ep.netns))
        drv.leave(net, ep)
        self.forget_endpoint(ep)

    def test_forget_if_declared(self, drv):
        if not contracts.record("network", drv).has("forget"):
            pytest.skip("the driver has no forget capability")
        from dockyard.networks import netns

        net = self.network(drv)
        ep = self.endpoint(drv, net, 2)
        drv.forget(net, ep)
        netns.remove(Path(ep.netns))
        self.forget_endpoint(ep)
        # the kernel removes the host end of a veth with the namespace
        assert self.settled(lambda: len(links()) <= len(self._host_links) + len(self._nets) * 2)

    # -- daemon shutdown and restart ------------------------------------------------------
    def test_close_without_containers_removes_everything(self, drv):
        n1, n2 = self.network(drv), self.network(drv)
        ep = self.endpoint(drv, n1, 2)
        drv.leave(n1, ep)
        self.forget_endpoint(ep)
        drv.close([n1, n2], in_use=False)
        assert self.settled(lambda: links() == self._host_links), links() - self._host_links
        self._nets.clear()

    def test_restart_keeps_running_containers_and_drops_stale_networks(self, drv, network_driver_factory):
        """close(in_use=True) leaves the wiring; a new instance's reconcile keeps what the
        records name and removes what they do not (a network deleted while it was down)."""
        n1 = self.network(drv)
        ep = self.endpoint(drv, n1, 2)
        with_n1 = links()
        n2 = self.network(drv)
        drv.close([n1, n2], in_use=True)
        if self.wires:
            assert ep.address in addresses(ep.netns, "eth0")
        again = network_driver_factory()
        self._driver = again
        self._nets = [n1]
        again.reconcile([n1], [ep])
        assert links() == with_n1, f"reconcile kept {links() - with_n1}, lost {with_n1 - links()}"
        if self.wires:
            assert ep.address in addresses(ep.netns, "eth0")
            assert reaches(ep.netns, n1.gateway)
        b = self.endpoint(again, n1, 3)  # the new instance serves the old network
        if self.wires:
            assert reaches(b.netns, ep.address.split("/")[0])

    def test_reconcile_re_creates_a_missing_network(self, drv, network_driver_factory):
        n1 = self.network(drv)
        with_n1 = links()
        drv.close([n1], in_use=False)  # a reboot: nothing of the network is left on the host
        again = network_driver_factory()
        self._driver = again
        again.reconcile([n1], [])
        assert links() == with_n1
        ep = self.endpoint(again, n1, 2)
        if self.wires:
            assert reaches(ep.netns, n1.gateway)

    # -- published ports (the ``ports`` capability) -------------------------------------------
    @pytest.fixture
    def daemon_loop(self) -> Iterator[asyncio.AbstractEventLoop]:
        """The daemon's event loop, running in a thread: drivers are made on it and called
        from worker threads (a port publisher hands its proxies to it)."""
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="conformance-loop", daemon=True)
        thread.start()
        yield loop
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()

    @staticmethod
    def on_loop(loop: asyncio.AbstractEventLoop, fn: Callable[[], Any]) -> Any:
        async def call() -> Any:
            return fn()
        return asyncio.run_coroutine_threadsafe(call(), loop).result(60)

    @staticmethod
    def serve_once(ns: str, port: int, reply: bytes) -> subprocess.Popen:
        """A TCP server inside namespace ``ns`` that answers every connection with ``reply``."""
        code = ("import socket,sys\n"
                "s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
                f"s.bind(('0.0.0.0', {port})); s.listen(8); print('ready', flush=True)\n"
                "while True:\n    c,_=s.accept(); c.sendall(" + repr(reply) + "); c.close()\n")
        p = subprocess.Popen(["nsenter", f"--net={ns}", sys.executable, "-c", code], stdout=subprocess.PIPE)
        assert p.stdout is not None and p.stdout.readline() == b"ready\n"
        return p

    @staticmethod
    def fetch(port: int, timeout: float = 30.0) -> bytes | None:
        """What 127.0.0.1:``port`` answers, retried until ``timeout`` (None: never answered)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
                    data = c.recv(100)
                if data:
                    return data
            except OSError:
                pass
            if time.monotonic() > deadline:
                return None
            time.sleep(0.1)

    def test_published_port(self, daemon_loop, drv, network_driver_factory):
        """``-p 127.0.0.1::80``: a free host port is chosen and reaches the container's port
        80; after ``unpublish`` (twice: missing is fine) nothing answers there."""
        if not contracts.record("network", drv).has("ports"):
            pytest.skip("the driver does not declare the 'ports' capability")
        if not self.wires:
            pytest.skip("nothing to wire")
        driver = self.on_loop(daemon_loop, network_driver_factory)
        self._driver = driver
        net = self.network(driver)
        ep = self.endpoint(driver, net, 2)
        server = self.serve_once(ep.netns, 80, b"from the container\n")
        try:
            (bound,) = driver.publish(net, ep, [PortBinding(container_port=80, protocol="tcp", host_ip="127.0.0.1",
                                                            host_port=0)])
            assert bound.container_port == 80 and bound.protocol == "tcp" and bound.host_port > 0, bound
            assert self.fetch(bound.host_port) == b"from the container\n"
            driver.unpublish(net, ep)
            driver.unpublish(net, ep)
            assert self.fetch(bound.host_port, timeout=1) is None
        finally:
            server.kill()
            server.wait()

