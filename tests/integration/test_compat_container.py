"""Container-side compatibility with dockerd, as docker-py's own integration suite and the docker
CLI see it (issue 15): TTY line discipline, kill, commit with pause, env, HOME, entrypoint.

Each test drives a real daemon with docker-py or the docker CLI; no timing assertions."""

import io
import time

import pytest

CMD = 'sh -c "echo hello out; echo hello err >&2"'


def build(client, tag, dockerfile):
    client.images.build(fileobj=io.BytesIO(dockerfile), tag=tag, rm=True)
    return tag


# -- TTY output goes through the terminal's line discipline -------------------------------

def test_exec_tty_created_started_without_tty_keeps_pty(client):
    """docker-py creates the exec with tty=True and starts it with Tty: false (its default):
    the process still has a pty (ONLCR: "\\r\\n"), start's Tty only picks the framing."""
    c = client.containers.run("busybox", "sleep 300", detach=True)
    res = client.api.exec_create(c.id, CMD, tty=True)
    assert client.api.exec_start(res) == b"hello out\r\nhello err\r\n"
    res = client.api.exec_create(c.id, CMD, tty=True)
    assert client.api.exec_start(res, demux=True) == (b"hello out\r\nhello err\r\n", None)
    res = client.api.exec_create(c.id, "tty", tty=True)
    assert client.api.exec_start(res).startswith(b"/dev/pts/")
    assert client.api.exec_inspect(res)["ProcessConfig"]["tty"] is True


def test_exec_tty_with_tty_start_and_cli(client, d):
    c = client.containers.run("busybox", "sleep 300", detach=True)
    res = client.api.exec_create(c.id, CMD, tty=True)
    assert client.api.exec_start(res, tty=True) == b"hello out\r\nhello err\r\n"
    out = d.docker("exec", "-t", c.id, "sh", "-c", "echo hello out; echo hello err >&2")
    assert out.stdout == b"hello out\r\nhello err\r\n"
    # without a TTY: plain "\n", stdout and stderr apart
    res = client.api.exec_create(c.id, CMD)
    assert client.api.exec_start(res, demux=True) == (b"hello out\n", b"hello err\n")


def test_run_tty_onlcr(d):
    out = d.docker("run", "--rm", "-t", "busybox", "sh", "-c", "echo hello out; echo hello err >&2")
    assert out.stdout == b"hello out\r\nhello err\r\n"


# -- kill ---------------------------------------------------------------------------------

def test_kill_records_exit_before_answering(client):
    """As moby's Kill: SIGKILL waits for the exit, so the next request sees it (137)."""
    for _ in range(3):
        c = client.api.create_container("busybox", ["sleep", "9999"])
        client.api.start(c)
        client.api.kill(c)
        state = client.api.inspect_container(c)["State"]
        assert state["Running"] is False and state["Status"] == "exited"
        assert state["ExitCode"] == 137


def test_kill_by_name_cli_then_rm(d):
    cid = d.docker("run", "-d", "busybox", "sleep", "9999").stdout.decode().strip()
    assert d.docker("kill", cid).returncode == 0
    out = d.docker("inspect", "-f", "{{.State.Running}} {{.State.ExitCode}}", cid).stdout.decode().split()
    assert out == ["false", "137"]
    assert d.docker("rm", cid).returncode == 0  # no -f needed: it is exited


# -- commit with pause (docker-py's default) -------------------------------------------------

def test_commit_with_pause_of_a_container_that_is_exiting(client):
    """docker-py commits right after starting `touch /test`: whether the container still runs
    (paused, committed, unpaused) or exited meanwhile, the commit succeeds."""
    for _ in range(6):
        c = client.api.create_container("busybox", ["touch", "/test"])
        client.api.start(c)
        img = client.api.commit(c["Id"], changes=["EXPOSE 8000", 'CMD ["bash"]'])
        info = client.api.inspect_image(img["Id"])
        assert "8000/tcp" in info["Config"]["ExposedPorts"]
        client.api.remove_container(c, force=True)
        client.api.remove_image(img["Id"])


def test_commit_with_pause_running_container_unpauses(client):
    c = client.containers.run("busybox", "sh -c 'echo hi > /f; sleep 300'", detach=True)
    for _ in range(200):  # the shell may not have written /f yet when run returns
        if c.exec_run("cat /f").output == b"hi\n":
            break
        time.sleep(0.05)
    img = c.commit()  # pause=True
    c.reload()
    assert c.status == "running"
    assert client.containers.run(img.id, "cat /f", remove=True) == b"hi\n"


# -- environment ----------------------------------------------------------------------------

def test_env_without_value_kept_in_config(client):
    c = client.api.create_container("busybox", "env", environment={"Foo": None, "Other": "one", "Blank": ""})
    env = client.api.inspect_container(c)["Config"]["Env"]
    assert "Foo" in env and "Other=one" in env and "Blank=" in env
    client.api.start(c)
    client.api.wait(c)
    out = client.api.logs(c).decode().splitlines()
    assert "Other=one" in out and "Blank=" in out
    assert not any(line == "Foo" or line.startswith("Foo=") for line in out)  # unset, as Docker


def test_process_env_has_hostname_and_home(client):
    out = client.containers.run("busybox", "env", hostname="boat", remove=True).decode().splitlines()
    assert "HOSTNAME=boat" in out and "HOME=/root" in out
    out = client.containers.run("busybox", "env", tty=True, remove=True).decode().splitlines()
    assert "TERM=xterm\r" in out or "TERM=xterm" in out


@pytest.mark.parametrize("user,home", [("", "/root"), ("nobody", "/nonexistent"), ("4242", "/"),
                                       ("www-data", "/var/www")])
def test_home_from_passwd(d, client, user, home):
    """HOME from the image's /etc/passwd for the user (runc's rule), "/" without an entry."""
    args = ["-u", user] if user else []
    if user == "www-data":  # busybox has no www-data: an image that has one
        image = build(client, "compat-www",
                      b"FROM busybox\nRUN echo 'www-data:x:33:33:www-data:/var/www:/bin/false' >> /etc/passwd\n")
    else:
        image = "busybox"
    out = d.docker("run", "--rm", *args, image, "sh", "-c", "echo $HOME")
    assert out.stdout.decode().strip() == home, out.stderr
    cid = d.docker("run", "-d", image, "sleep", "300").stdout.decode().strip()
    out = d.docker("exec", *args, cid, "sh", "-c", "echo $HOME")
    assert out.stdout.decode().strip() == home, out.stderr


def test_home_from_env_wins(d):
    out = d.docker("run", "--rm", "-u", "nobody", "-e", "HOME=/x", "busybox", "sh", "-c", "echo $HOME")
    assert out.stdout == b"/x\n"
    cid = d.docker("run", "-d", "busybox", "sleep", "300").stdout.decode().strip()
    assert d.docker("exec", "-e", "HOME=/y", cid, "sh", "-c", "echo $HOME").stdout == b"/y\n"


# -- entrypoint ------------------------------------------------------------------------------

def test_empty_entrypoint_means_none(d, client):
    out = d.docker("run", "--rm", "--entrypoint", "", "busybox", "echo", "x")
    assert out.returncode == 0 and out.stdout == b"x\n", out.stderr
    # an image with an entrypoint: [""] resets it
    build(client, "compat-ep", b'FROM busybox\nENTRYPOINT ["false"]\n')
    out = d.docker("run", "--rm", "--entrypoint", "", "compat-ep", "echo", "y")
    assert out.returncode == 0 and out.stdout == b"y\n", out.stderr
    c = client.api.create_container("compat-ep", ["echo", "z"], entrypoint=[""])
    assert not client.api.inspect_container(c)["Config"]["Entrypoint"]


# -- HostConfig.Runtime, links, logs, volumes, load ------------------------------------------

def test_runtime_in_inspect(client):
    info = client.info()
    for name in info["Runtimes"]:
        c = client.api.create_container("busybox", ["true"], host_config=client.api.create_host_config(runtime=name))
        assert client.api.inspect_container(c)["HostConfig"]["Runtime"] == name
    c = client.api.create_container("busybox", ["true"])  # dockerd fills in its default runtime
    assert client.api.inspect_container(c)["HostConfig"]["Runtime"] == info["DefaultRuntime"]


def test_remove_link(client, d):
    target = client.containers.run("busybox", "sleep 300", detach=True)
    parent = client.containers.run("busybox", "sleep 300", detach=True, links={target.name: "mylink"})
    assert client.api.inspect_container(parent.id)["HostConfig"]["Links"]
    client.api.remove_container(f"{parent.name}/mylink", link=True)  # DELETE /containers/p/mylink?link=True
    assert not client.api.inspect_container(parent.id)["HostConfig"]["Links"]
    ids = {c.id for c in client.containers.list()}
    assert target.id in ids and parent.id in ids  # both stay
    import docker

    with pytest.raises(docker.errors.NotFound):
        client.api.remove_container(f"{parent.name}/mylink", link=True)
    with pytest.raises(docker.errors.APIError) as info:
        client.api.remove_container(parent.name, link=True)  # its own name is no link
    assert info.value.status_code == 409


def test_streamed_logs_one_frame_per_line(client):
    """docker-py's containers.run(stream=True) yields frames: one per line, as json-file."""
    out = list(client.containers.run("busybox", 'sh -c "echo hello && echo world"', stream=True))
    assert out == [b"hello\n", b"world\n"]
    c = client.containers.run("busybox", 'sh -c "echo a; echo b; echo c"', detach=True)
    c.wait()
    assert list(c.logs(stream=True)) == [b"a\n", b"b\n", b"c\n"]


def test_volume_created_without_name_is_anonymous_and_pruned(client):
    v = client.api.create_volume()
    named = client.api.create_volume("compat-named-vol")
    result = client.api.prune_volumes()
    assert v["Name"] in result["VolumesDeleted"]
    assert named["Name"] not in result["VolumesDeleted"]


def test_truncated_load_is_dockers_error(client):
    import docker

    with pytest.raises(docker.errors.ImageLoadError) as info:
        client.images.load(b"abc")
    assert str(info.value) == "unexpected EOF"


# -- MemorySwappiness ------------------------------------------------------------------------



def test_memory_swappiness_applied_or_warned(client):
    """cgroup v1 memory controller: memory.swappiness is written; v2: dropped with dockerd's
    warning. Nomad sends MemorySwappiness: 0 on every task: never a 400."""
    info = client.info()
    for value in (40, 0):
        hc = client.api.create_host_config(mem_swappiness=value)
        c = client.api.create_container("busybox", ["sleep", "300"], host_config=hc)
        client.api.start(c)
        inspect = client.api.inspect_container(c)
        if info.get("CgroupVersion") == "1":
            assert c["Warnings"] in ([], None)
            assert inspect["HostConfig"]["MemorySwappiness"] == value
            res = client.api.exec_create(c, "cat /sys/fs/cgroup/memory/memory.swappiness")
            assert client.api.exec_start(res).strip() == str(value).encode()
        else:
            assert any("swappiness" in w for w in c["Warnings"])
            assert inspect["HostConfig"]["MemorySwappiness"] is None
        client.api.remove_container(c, force=True)


def test_memory_swappiness_out_of_range_is_400(client):
    import docker

    with pytest.raises(docker.errors.APIError) as info:
        client.api.create_container("busybox", ["true"], host_config={"MemorySwappiness": 101})
    assert info.value.status_code == 400 and "valid memory swappiness range is 0-100" in str(info.value)


# -- default-address-pools -------------------------------------------------------------------

def test_default_address_pools(make_daemon, busybox_tar, tmp_path):
    """dockerd's default-address-pools: networks without a subnet (the default bridge too) come
    from the configured pool, even where every default pool is a route already."""
    import ipaddress

    conf = tmp_path / "d.toml"
    conf.write_text('default-address-pools = [{base = "10.213.0.0/16", size = 24}]\n')
    d = make_daemon("--config-file", str(conf))
    d.load(busybox_tar)
    client = d.docker_client()
    try:
        pool = ipaddress.ip_network("10.213.0.0/16")
        net = client.networks.create("compat-pool-net")
        subnet = ipaddress.ip_network(net.attrs["IPAM"]["Config"][0]["Subnet"])
        assert subnet.subnet_of(pool) and subnet.prefixlen == 24
        bridge = client.networks.get("bridge").attrs["IPAM"]["Config"][0]["Subnet"]
        assert ipaddress.ip_network(bridge).subnet_of(pool)
        out = client.containers.run("busybox", "ip -4 addr show eth0", network="compat-pool-net", remove=True)
        assert str(subnet.network_address)[:-1] in out.decode()
        net.remove()
    finally:
        client.close()


# -- attach over a websocket -----------------------------------------------------------------

def test_attach_websocket(make_daemon, busybox_tar):
    """GET /containers/{id}/attach/ws: raw output in binary messages (docker-py's
    attach_socket(ws=True), which needs a TCP daemon)."""
    pytest.importorskip("websocket")
    from dockyard.testing.daemon import free_port

    port = free_port()
    d = make_daemon("-H", f"tcp://127.0.0.1:{port}")
    d.load(busybox_tar)
    import docker

    client = docker.APIClient(base_url=f"tcp://127.0.0.1:{port}", version="auto")
    try:
        line = "hi there and stuff"
        c = client.create_container("busybox", f"printf '{line}'", detach=True)
        sock = client.attach_socket(c, {"stdout": 1, "stream": 1, "logs": 1}, ws=True)
        try:
            client.start(c)
            assert sock.recv() == line.encode()
        finally:
            sock.close()
        client.remove_container(c, force=True)
    finally:
        client.close()


def test_attach_websocket_aiohttp_client(make_daemon, busybox_tar):
    """The same route through a client that needs no extra package (aiohttp's ws_connect, on
    the Unix socket): the daemon's own WebSocket server sends the output as binary messages
    and ends with a close handshake (code 1000)."""
    import asyncio

    import aiohttp

    d = make_daemon()
    d.load(busybox_tar)
    client = d.docker_client()
    try:
        c = client.containers.create("busybox", "sh -c 'echo one; echo two >&2; echo three'")

        async def attach() -> tuple[bytes, int | None]:
            got = []
            connector = aiohttp.UnixConnector(path=str(d.socket))
            async with aiohttp.ClientSession(connector=connector) as s:
                async with s.ws_connect(f"http://x/v1.44/containers/{c.id}/attach/ws"
                                        "?stdout=1&stderr=1&stream=1&logs=1") as ws:
                    await asyncio.to_thread(c.start)
                    async for msg in ws:
                        assert msg.type == aiohttp.WSMsgType.BINARY, msg
                        got.append(msg.data)
                    return b"".join(got), ws.close_code

        out, code = asyncio.run(asyncio.wait_for(attach(), 60))
        assert sorted(out.decode().split()) == ["one", "three", "two"]  # raw: no 8-byte frame headers
        assert code == 1000
        c.remove(force=True)
    finally:
        client.close()


def test_hijacked_output_over_loopback_tcp_is_not_lost(make_daemon, busybox_tar):
    """docker-py parses the 101 headers with a buffered reader, then reads the raw socket:
    output sent before it read the headers was lost over TCP (10 of 15 attaches here). The
    daemon waits until a loopback TCP client has read them, as it does on a Unix socket."""
    import docker
    from dockyard.testing.daemon import free_port

    port = free_port()
    d = make_daemon("-H", f"tcp://127.0.0.1:{port}")
    d.load(busybox_tar)
    client = docker.APIClient(base_url=f"tcp://127.0.0.1:{port}", version="auto")
    try:
        for _ in range(10):
            c = client.create_container("busybox", "echo hello")
            client.start(c)
            client.wait(c, condition="not-running")
            assert client.attach(c, stream=False, logs=True) == b"hello\n"
            client.remove_container(c)
        c = client.create_container("busybox", "sleep 300")
        client.start(c)
        for _ in range(5):
            res = client.exec_create(c, "echo hi")
            assert client.exec_start(res) == b"hi\n"
        client.remove_container(c, force=True)
    finally:
        client.close()
