"""The transport conformance suite against the built-in unix, tcp and fd transports and the
auth_tls plugin's tls transport (all on loopback or a socket file under the test's directory)."""

from __future__ import annotations

import http.client
import socket
import ssl

import pytest

from dockyard.builtin.transports import FDTransport, TCPTransport, UnixTransport
from dockyard.config import DaemonConfig
from dockyard.testing.conformance_transport import TransportSuite, UnixHTTPConnection


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.privileged  # the socket is chowned to root and the daemon's group
class TestUnix(TransportSuite):
    socket_file = True
    refused_urls = []

    @pytest.fixture
    def transport_factory(self, tmp_path):
        return lambda: UnixTransport({}, tmp_path / "root", tmp_path / "state")

    @pytest.fixture
    def listen_url(self, tmp_path):
        return f"unix://{tmp_path}/run/api.sock"

    @pytest.fixture
    def daemon_config(self):
        return DaemonConfig(group="0")


class TestTCP(TransportSuite):
    refused_urls = ["tcp://192.0.2.1:2375", "tcp://127.0.0.1:notaport"]  # plain TCP off loopback; bad port

    @pytest.fixture
    def transport_factory(self, tmp_path):
        return lambda: TCPTransport({}, tmp_path / "root", tmp_path / "state")

    @pytest.fixture
    def listen_url(self):
        return f"tcp://127.0.0.1:{free_port()}"

    @pytest.fixture
    def daemon_config(self):
        return DaemonConfig()


class TestFD(TransportSuite):
    """Socket activation: the service manager's socket (here a unix socket the test made) is
    served, and close() never removes its file (the manager owns it)."""

    refused_urls = ["fd://nosuchname", "fd://99"]

    @pytest.fixture
    def sock_path(self, tmp_path):
        return tmp_path / "activated.sock"

    @pytest.fixture
    def transport_factory(self, tmp_path, sock_path):
        def make():
            if sock_path.exists():
                sock_path.unlink()
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.bind(str(sock_path))
            s.listen(16)
            t = FDTransport({}, tmp_path / "root", tmp_path / "state")  # no LISTEN_FDS: nothing passed
            t.fds = [(s.detach(), "api")]  # what listen_fds() gives under systemd
            return t
        return make

    @pytest.fixture
    def listen_url(self):
        return "fd://api"

    @pytest.fixture
    def daemon_config(self):
        return DaemonConfig()

    @pytest.fixture(autouse=True)
    def _path(self, sock_path):
        self.sock_path = sock_path

    def connection(self, url, site):
        return UnixHTTPConnection(str(self.sock_path))

    def test_close_keeps_the_managers_socket_file(self, transport_factory, listen_url, daemon_config):
        self.serve(transport_factory, listen_url, daemon_config, lambda t, s: None)
        assert self.sock_path.exists()


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    certs = pytest.importorskip("dockyard_auth_tls.certs")
    d = tmp_path_factory.mktemp("pki")
    certs.init(d, hostnames=["localhost", "127.0.0.1"])
    return d


class TestTLS(TransportSuite):
    refused_urls = ["tcp://127.0.0.1:notaport"]

    @pytest.fixture
    def transport_factory(self, tmp_path):
        from dockyard_auth_tls.transport import TLSTransport

        return lambda: TLSTransport({}, tmp_path / "root", tmp_path / "state")

    @pytest.fixture
    def listen_url(self):
        return f"tcp://127.0.0.1:{free_port()}"

    @pytest.fixture
    def daemon_config(self, pki):
        self.pki = pki
        return DaemonConfig(tls=True, tlsverify=True, tlscacert=pki / "ca.pem", tlscert=pki / "cert.pem",
                            tlskey=pki / "key.pem")

    def context(self, client: bool = True) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.pki / "ca.pem"))
        if client:
            ctx.load_cert_chain(str(self.pki / "client" / "cert.pem"), str(self.pki / "client" / "key.pem"))
        return ctx

    def connection(self, url, site):
        host, port = self.address(site)
        return http.client.HTTPSConnection(host, port, context=self.context(), timeout=30)

    def test_client_without_certificate_is_refused(self, transport_factory, listen_url, daemon_config):
        def client(transport, site):
            host, port = self.address(site)
            conn = http.client.HTTPSConnection(host, port, context=self.context(client=False), timeout=30)
            try:
                with pytest.raises((ssl.SSLError, OSError)):
                    conn.request("GET", "/ping")
                    conn.getresponse().read()
            finally:
                conn.close()

        self.serve(transport_factory, listen_url, daemon_config, client)

    def test_missing_server_certificate_is_a_config_error(self, transport_factory, listen_url, tmp_path, pki):
        from dockyard.errors import ConfigError

        config = DaemonConfig(tls=True, tlscert=tmp_path / "none.pem", tlskey=tmp_path / "none-key.pem")
        with pytest.raises(ConfigError, match="cannot read server certificate"):
            self.serve(transport_factory, listen_url, config, lambda t, s: None)
