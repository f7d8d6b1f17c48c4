"""docker-compose (Debian's 1.29, python, docker-py) against dockyardd: two services on a user
network sharing a named volume; up, ps, logs, exec, down -v, and nothing left behind."""

import json
import os
import secrets
import shutil
import subprocess

import pytest

from dockyard.testing.daemon import wait_for

pytestmark = [
    pytest.mark.privileged,
    pytest.mark.skipif(shutil.which("docker-compose") is None, reason="docker-compose is not installed"),
]

COMPOSE = """\
version: "3.8"
services:
  web:
    image: busybox
    command: sh -c "echo web-started; echo hello > /data/greeting; while true; do sleep 1; done"
    volumes:
      - shared:/data
    networks: [backend]
  reader:
    image: busybox
    command: sh -c "while true; do sleep 1; done"
    volumes:
      - shared:/data:ro
    networks: [backend]
    depends_on: [web]
volumes:
  shared:
networks:
  backend:
"""


def test_compose_up_ps_logs_exec_down(d, tmp_path):
    project = f"dy{secrets.token_hex(3)}"
    (tmp_path / "docker-compose.yml").write_text(COMPOSE)
    env = {**os.environ, "DOCKER_HOST": d.url, "DOCKER_CONFIG": str(d.base / "docker-config"),
           "COMPOSE_INTERACTIVE_NO_CLI": "1"}

    def compose(*args, timeout=120):
        return subprocess.run(["docker-compose", "-p", project, *args], cwd=tmp_path, env=env,
                              capture_output=True, timeout=timeout)

    ours = set()  # the bridge and veths of the project's network (net_bridge's names)
    try:
        r = compose("up", "-d")
        assert r.returncode == 0, r.stderr.decode()
        ps = compose("ps")
        assert ps.returncode == 0, ps.stderr.decode()
        rows = [line for line in ps.stdout.decode().splitlines() if line.startswith(project)]
        assert len(rows) == 2 and all(" Up " in row for row in rows), ps.stdout.decode()
        wait_for(lambda: b"web-started" in compose("logs", "web").stdout)
        wait_for(lambda: compose("exec", "-T", "reader", "cat", "/data/greeting").stdout == b"hello\n")
        r = compose("exec", "-T", "reader", "sh", "-c", "ping -c1 -W2 web >/dev/null && echo reachable; "
                                                        "touch /data/x 2>&1 || true")
        assert r.stdout.decode().splitlines() == ["reachable", "touch: /data/x: Read-only file system"]
        volume = json.loads(d.docker("volume", "inspect", f"{project}_shared").stdout)[0]
        assert volume["Labels"]["com.docker.compose.project"] == project
        network = json.loads(d.docker("network", "inspect", f"{project}_backend").stdout)[0]
        assert len(network["Containers"]) == 2
        ours = {f"dy-{network['Id'][:12]}"} | {"dyv" + e["EndpointID"][:12] for e in network["Containers"].values()}
        assert ours <= set(os.listdir("/sys/class/net"))
    finally:
        r = compose("down", "-v")
    assert r.returncode == 0, r.stderr.decode()
    label = f"label=com.docker.compose.project={project}"
    assert d.docker("ps", "-aq", "--filter", label).stdout == b""
    assert d.docker("volume", "ls", "-q", "--filter", label).stdout == b""
    assert d.docker("network", "ls", "-q", "--filter", label).stdout == b""
    # no bridge or veth left (the kernel deletes a veth with its namespace, in the background)
    wait_for(lambda: not ours & set(os.listdir("/sys/class/net")))
