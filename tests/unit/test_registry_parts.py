"""The registry client's pure parts: X-Registry-Auth, challenges, insecure rules, endpoints,
platforms, pull references, the daemon config keys, and the CLI's credential store."""

import base64
import json
import os
import stat

import pytest

from dockyard import config as cfg
from dockyard.errors import ConfigError, InvalidArgument
from dockyard.registry import registry_domain
from dockyard.registry.auth import Credentials, decode_registry_auth, parse_challenge
from dockyard.registry.client import Settings, endpoints, is_insecure
from dockyard.registry.pull import Platform, parse_platform, platform_matches, pull_reference


def test_x_registry_auth_is_base64url_json_with_or_without_padding():
    raw = json.dumps({"username": "alice", "password": "p>?w", "serveraddress": "r:5000"}).encode()
    for header in (base64.urlsafe_b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode().rstrip("=")):
        creds = decode_registry_auth(header)
        assert (creds.username, creds.password) == ("alice", "p>?w") and not creds.anonymous
    assert decode_registry_auth(None).anonymous
    assert decode_registry_auth("e30=").anonymous  # {}
    with pytest.raises(InvalidArgument, match="X-Registry-Auth"):
        decode_registry_auth("!!not base64 nor json")
    assert Credentials("a", "b").basic() == "Basic " + base64.b64encode(b"a:b").decode()


def test_www_authenticate_challenges():
    scheme, params = parse_challenge('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
                                     'scope="repository:library/busybox:pull,push"')
    assert scheme == "bearer"
    assert params == {"realm": "https://auth.docker.io/token", "service": "registry.docker.io",
                      "scope": "repository:library/busybox:pull,push"}
    assert parse_challenge('Basic realm="Registry Realm"') == ("basic", {"realm": "Registry Realm"})


def test_insecure_registries_like_dockerd():
    assert is_insecure("localhost:5000", ())
    assert is_insecure("127.0.0.1:5000", ()) and is_insecure("127.8.9.1", ()) and is_insecure("[::1]:5000", ())
    assert not is_insecure("registry.example.com", ())
    assert is_insecure("registry.example.com:5000", ("registry.example.com:5000",))
    assert is_insecure("10.1.2.3:5000", ("10.0.0.0/8",)) and not is_insecure("11.1.2.3:5000", ("10.0.0.0/8",))


def test_endpoints_mirrors_only_for_hub_pulls():
    s = Settings(mirrors=("https://mirror.example", "http://10.0.0.5:5000"), insecure=("10.0.0.0/8",))
    eps = endpoints("docker.io", s)
    assert [(e.host, e.scheme, e.mirror) for e in eps] == [
        ("mirror.example", "https", True), ("10.0.0.5:5000", "http", True), ("registry-1.docker.io", None, False)]
    assert [e.host for e in endpoints("docker.io", s, push=True)] == ["registry-1.docker.io"]
    [ep] = endpoints("localhost:5000", s)
    assert ep.insecure and not ep.mirror


def test_platforms():
    assert parse_platform("linux/arm64") == Platform("linux", "arm64", "v8")
    assert parse_platform("linux/arm/v7") == Platform("linux", "arm", "v7")
    assert parse_platform("x86_64") == Platform("linux", "amd64")
    assert parse_platform(None) is None
    with pytest.raises(InvalidArgument):
        parse_platform("linux//")
    assert platform_matches(Platform("linux", "amd64"), "linux", "amd64", None)
    assert platform_matches(Platform("linux", "arm64", "v8"), "linux", "arm64", None)
    assert not platform_matches(Platform("linux", "arm", "v7"), "linux", "arm", "v6")
    assert not platform_matches(Platform("linux", "amd64"), "windows", "amd64", None)


def test_pull_references():
    assert str(pull_reference("busybox", None)) == "docker.io/library/busybox:latest"
    assert str(pull_reference("localhost:5000/x", "v1")) == "localhost:5000/x:v1"
    d = "sha256:" + "a" * 64
    assert str(pull_reference("localhost:5000/x", d)) == f"localhost:5000/x@{d}"
    assert str(pull_reference(f"localhost:5000/x@{d}", None)) == f"localhost:5000/x@{d}"
    with pytest.raises(InvalidArgument):
        pull_reference("localhost:5000/x", "sha256:short")
    assert registry_domain("https://index.docker.io/v1/") == "docker.io"
    assert registry_domain("http://localhost:5000/") == "localhost:5000"
    assert registry_domain("127.0.0.1:5000") == "127.0.0.1:5000"


def test_daemon_config_registry_keys(tmp_path):
    f = tmp_path / "d.toml"
    f.write_text('registry-mirrors = ["https://m.example"]\ninsecure-registries = ["10.0.0.0/8"]\n'
                 "max-concurrent-downloads = 6\nmax-download-attempts = 2\nregistry-read-timeout = 1.5\n")
    c = cfg.build({}, f)
    s = Settings.from_config(c)
    assert s.mirrors == ("https://m.example",) and s.insecure == ("10.0.0.0/8",)
    assert (s.max_concurrent_downloads, s.max_download_attempts, s.read_timeout) == (6, 2, 1.5)
    f.write_text('insecure-registries = "10.0.0.0/8"\n')
    with pytest.raises(ConfigError, match="insecure-registries"):
        cfg.build({}, f)
    f.write_text("max-download-attempts = 0\n")
    with pytest.raises(ConfigError, match="max-download-attempts"):
        cfg.build({}, f)


def test_cli_credentials_like_docker(tmp_path, monkeypatch):
    from dockyard_cli import registry as cli
    from dockyard_cli.contexts import write_config

    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "conf"))
    assert cli.registry_key(None) == cli.HUB_ADDRESS and cli.registry_key("localhost:5000") == "localhost:5000"
    assert cli.registry_of_image("localhost:5000/x") == "localhost:5000"
    assert cli.registry_of_image("user/repo") == cli.HUB_ADDRESS
    write_config({"auths": {"localhost:5000": {"auth": base64.b64encode(b"bob:pw:with:colons").decode()}}})
    assert stat.S_IMODE(os.stat(tmp_path / "conf").st_mode) == 0o700
    assert stat.S_IMODE(os.stat(tmp_path / "conf" / "config.json").st_mode) == 0o600
    header = cli.registry_auth_header("localhost:5000")
    creds = decode_registry_auth(header)
    assert (creds.username, creds.password) == ("bob", "pw:with:colons")
    assert decode_registry_auth(cli.registry_auth_header("other:1")).anonymous
    assert cli._split("localhost:5000/x") == ("localhost:5000/x", "latest")
    assert cli._split("localhost:5000/x:v2") == ("localhost:5000/x", "v2")


def test_blob_pipe_streams_to_a_thread_with_backpressure():
    """The pull's download -> unpack pipe: bytes arrive in order; a full pipe makes the
    download wait; a failed download fails the reader; a reader that quit fails the feed."""
    import asyncio

    from dockyard.registry.blobpipe import BlobPipe, PipeAborted

    async def main():
        loop = asyncio.get_running_loop()
        pipe = BlobPipe(loop, limit=10)
        data = [bytes([i]) * 7 for i in range(20)]
        reader = asyncio.ensure_future(asyncio.to_thread(lambda: __import__("io").BufferedReader(pipe, 3).read()))
        for chunk in data:
            await pipe.feed(chunk)
            assert pipe.queued <= 10 + 7  # never more than the limit plus one chunk
        pipe.finish()
        assert await reader == b"".join(data)

        pipe = BlobPipe(loop, limit=10)
        await pipe.feed(b"x" * 10)
        blocked = asyncio.ensure_future(pipe.feed(b"y"))
        await asyncio.sleep(0.05)
        assert not blocked.done()  # full: waits for the reader
        assert await asyncio.to_thread(pipe.read, 4) == b"xxxx"
        await asyncio.wait_for(blocked, 5)
        pipe.fail(RuntimeError("connection reset"))
        with pytest.raises(PipeAborted, match="connection reset"):
            await asyncio.to_thread(pipe.read, 100)

        pipe = BlobPipe(loop, limit=10)
        await pipe.feed(b"x" * 10)
        blocked = asyncio.ensure_future(pipe.feed(b"y"))
        await asyncio.sleep(0.05)
        await asyncio.to_thread(pipe.close)  # the unpacking gave up (a bad tar)
        with pytest.raises(PipeAborted):
            await asyncio.wait_for(blocked, 5)

    asyncio.run(main())
