"""Registries with the real docker CLI, docker-py and skopeo against ``dockyardd``: a real
``docker-registry`` on 127.0.0.1 (plain, and with htpasswd basic auth), and a small
fault-injecting registry (aiohttp, in a thread) for what a real one does not do on purpose."""

import base64
import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile

import pytest
from docker.errors import NotFound as DockerNotFound

from dockyard.testing.daemon import DaemonProcess
from dockyard.testing.images import image_id_of


pytestmark = [pytest.mark.privileged,
              pytest.mark.skipif(shutil.which("docker") is None, reason="needs the docker CLI"),
              pytest.mark.skipif(shutil.which("docker-registry") is None, reason="needs docker-registry")]


def storage_args():
    want = os.environ.get("DOCKYARD_TEST_STORAGE")
    return ("-s", want) if want else ()


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    base = tmp_path_factory.mktemp("registry-d")
    conf = base / "daemon.toml"
    conf.write_text("max-download-attempts = 2\nregistry-read-timeout = 2\n")
    d = DaemonProcess(base, *storage_args(), "--config-file", str(conf))
    d.start()
    yield d
    d.stop()


@pytest.fixture
def docker(daemon, tmp_path):
    config_dir = tmp_path / "docker-config"
    config_dir.mkdir()

    def run(*args, input=b"", ok=True):  # stdin at EOF: a CLI prompt fails instead of waiting
        r = subprocess.run(["docker", "-H", daemon.url, *args], input=input, capture_output=True, timeout=180,
                           env={**os.environ, "DOCKER_CONFIG": str(config_dir)})
        if ok:
            assert r.returncode == 0, f"docker {' '.join(args)}: {r.stderr.decode()}"
        return r

    run.config_dir = config_dir
    yield run
    ids = run("images", "-aq", ok=False).stdout.decode().split()
    if ids:
        run("rmi", "-f", *set(ids), ok=False)


def data_root_leftovers(daemon):
    """Files under the image store's tmp/ and blobs/ that no image accounts for."""
    tmp = daemon.data_root / "image" / "tmp"
    blobs = daemon.data_root / "image" / "blobs" / "sha256"
    return sorted(os.listdir(tmp)), sorted(p for p in os.listdir(blobs) if p.startswith("."))


def image_id(docker, name):
    return docker("image", "inspect", "-f", "{{.Id}}", name).stdout.decode().strip()


def test_push_and_pull_keep_the_image_id(docker, daemon, multilayer_tar, local_registry):
    docker("load", "-i", str(multilayer_tar))
    want = image_id_of(multilayer_tar)
    name = f"{local_registry.host}/team/multi:v1"
    docker("tag", "multilayer:latest", name)
    out = docker("push", name).stdout.decode()
    assert f"The push refers to repository [{local_registry.host}/team/multi]" in out
    assert "v1: digest: sha256:" in out
    digest = out.split("v1: digest: ")[1].split()[0]
    repo_digests = json.loads(docker("image", "inspect", "-f", "{{json .RepoDigests}}", name).stdout)
    assert repo_digests == [f"{local_registry.host}/team/multi@{digest}"]
    # a second push finds every layer there already
    assert docker("push", name).stdout.decode().count("Layer already exists") == 3
    docker("rmi", "multilayer:latest", name)  # the last tag of the repository takes its digest along
    assert docker("images", "-q").stdout.strip() == b""
    out = docker("pull", name).stdout.decode()
    assert f"Digest: {digest}" in out and f"Status: Downloaded newer image for {name}" in out
    assert image_id(docker, name) == want
    table = docker("images", "--digests", "--format", "{{.Repository}} {{.Tag}} {{.Digest}}").stdout.decode()
    assert f"{local_registry.host}/team/multi v1 {digest}" in table
    # pulled again: up to date; by digest: the same image
    assert "Image is up to date" in docker("pull", name).stdout.decode()
    docker("pull", f"{local_registry.host}/team/multi@{digest}")
    assert image_id(docker, f"{local_registry.host}/team/multi@{digest}") == want
    assert data_root_leftovers(daemon) == ([], [])


def test_pull_skips_layers_already_present(docker, local_registry, multilayer_tar, busybox_tar):
    docker("load", "-i", str(multilayer_tar))
    name = f"{local_registry.host}/multi:latest"
    docker("tag", "multilayer:latest", name)
    docker("push", name)
    docker("rmi", name)
    out = docker("pull", name).stdout.decode()  # multilayer:latest still holds every layer
    assert out.count("Already exists") == 3 and "Downloaded newer image" in out


def test_cross_repository_mount(docker, local_registry, multilayer_tar):
    docker("load", "-i", str(multilayer_tar))
    docker("tag", "multilayer:latest", f"{local_registry.host}/one/multi:latest")
    docker("tag", "multilayer:latest", f"{local_registry.host}/two/multi:latest")
    docker("push", f"{local_registry.host}/one/multi:latest")
    out = docker("push", f"{local_registry.host}/two/multi:latest").stdout.decode()
    assert out.count("Mounted from one/multi") == 3, out


# -- a registry that misbehaves on purpose --------------------------------------------------------


class FaultRegistry:
    """An aiohttp Distribution API server in a thread, serving one image (``repo:tag``) built
    from a docker-save tar, with a fault: ``close`` or ``stall`` mid-blob (``times`` attempts,
    then it behaves; Range requests are honoured), ``close-norange`` (as ``close``, but Range is
    ignored: a retry gets the whole blob again), ``mismatch`` (a blob that is not its digest),
    ``bad-diff-id`` (the config names a wrong diff id for the last layer; every blob is its
    digest), ``hostile-layer`` (an extra last layer with a member ``../escape``),
    ``huge-manifest``; and optionally a bearer-token challenge (user alice, password pw)."""

    def __init__(self, image_tar, fault=None, times=1000, bearer=False, repo="fault/image", tag="v1"):
        import threading

        self.fault, self.times, self.bearer, self.repo, self.tag = fault, times, bearer, repo, tag
        self.blobs, self.manifest, self.config_digest = self._image(image_tar)
        self.faulty = json.loads(self.manifest)["layers"][0]["digest"]
        self.attempts = 0
        self.token_requests = []
        self.ranges = []  # the start of every Range request
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def _image(self, path):
        with tarfile.open(path) as tar:
            [entry] = json.load(tar.extractfile("manifest.json"))
            config = tar.extractfile(entry["Config"]).read()
            blobs, layers = {}, []
            raw_layers = [tar.extractfile(name).read() for name in entry["Layers"]]
        if self.fault in ("bad-diff-id", "hostile-layer"):
            cfg = json.loads(config)
            if self.fault == "hostile-layer":
                buf = io.BytesIO()
                with tarfile.open(fileobj=buf, mode="w") as t:
                    t.addfile(tarfile.TarInfo("../escape"), io.BytesIO(b""))
                raw_layers.append(buf.getvalue())
                cfg["rootfs"]["diff_ids"].append("sha256:" + hashlib.sha256(buf.getvalue()).hexdigest())
            else:
                cfg["rootfs"]["diff_ids"][-1] = "sha256:" + "0" * 64
            config = json.dumps(cfg).encode()
        for data in raw_layers:
            data = gzip.compress(data, mtime=0)
            digest = "sha256:" + hashlib.sha256(data).hexdigest()
            blobs[digest] = data
            layers.append({"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                           "size": len(data), "digest": digest})
        config_digest = "sha256:" + hashlib.sha256(config).hexdigest()
        blobs[config_digest] = config
        manifest = {"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                    "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                               "size": len(config), "digest": config_digest}, "layers": layers}
        if self.fault == "huge-manifest":
            manifest["annotations"] = {"padding": "x" * (5 << 20)}
        return blobs, json.dumps(manifest).encode(), config_digest

    def _serve(self):
        import asyncio

        from aiohttp import web

        async def authorized(request):
            if not self.bearer:
                return True
            return request.headers.get("Authorization") == "Bearer good-token"

        def challenge():
            return web.Response(status=401, headers={"WWW-Authenticate": (
                f'Bearer realm="http://{self.host}/token",service="fault-registry",'
                f'scope="repository:{self.repo}:pull"')},
                content_type="application/json",
                text='{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}')

        async def ping(request):
            if not await authorized(request):
                return challenge()
            return web.json_response({})

        async def token(request):
            self.token_requests.append(dict(request.query))
            good = "Basic " + base64.b64encode(b"alice:pw").decode()
            if request.headers.get("Authorization") != good:
                return web.json_response({"details": "bad credentials"}, status=401)
            return web.json_response({"token": "good-token"})

        async def manifest(request):
            if not await authorized(request):
                return challenge()
            ref = request.match_info["ref"]
            if ref not in (self.tag, "sha256:" + hashlib.sha256(self.manifest).hexdigest()):
                return web.json_response({"errors": [{"code": "MANIFEST_UNKNOWN", "message": "manifest unknown"}]},
                                         status=404)
            return web.Response(body=self.manifest, content_type="application/vnd.docker.distribution.manifest.v2+json")

        async def blob(request):
            if not await authorized(request):
                return challenge()
            digest = request.match_info["digest"]
            data = self.blobs.get(digest)
            if data is None:
                return web.json_response({"errors": [{"code": "BLOB_UNKNOWN", "message": "blob unknown"}]}, status=404)
            start = 0
            if request.headers.get("Range", "").startswith("bytes=") and self.fault != "close-norange":
                start = int(request.headers["Range"][6:].split("-")[0])
                self.ranges.append(start)
            faulty = digest == self.faulty and self.fault in ("close", "close-norange", "stall", "mismatch")
            if faulty and self.fault == "mismatch":
                data = data[:-1] + bytes([data[-1] ^ 1])
            resp = web.StreamResponse(status=206 if start else 200,
                                      headers={"Content-Length": str(len(data) - start),
                                               "Content-Type": "application/octet-stream"})
            await resp.prepare(request)
            body = data[start:]
            if faulty and self.fault in ("close", "close-norange", "stall") and self.attempts < self.times:
                self.attempts += 1
                await resp.write(body[: len(body) // 2])
                if self.fault == "stall":
                    await asyncio.sleep(30)
                request.transport.close()
                return resp
            await resp.write(body)
            await resp.write_eof()
            return resp

        async def main():
            app = web.Application()
            app.router.add_get("/v2/", ping)
            app.router.add_get("/token", token)
            app.router.add_route("GET", "/v2/{name:.+}/manifests/{ref}", manifest)
            app.router.add_route("GET", "/v2/{name:.+}/blobs/{digest}", blob)
            runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=0.5)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            self.host = "127.0.0.1:%d" % site._server.sockets[0].getsockname()[1]
            self.stop_event = asyncio.Event()
            self.loop = asyncio.get_running_loop()
            self.ready.set()
            await self.stop_event.wait()
            await runner.cleanup()

        asyncio.run(main())

    def __enter__(self):
        self.thread.start()
        assert self.ready.wait(60), "the fault registry did not start"
        return self

    def __exit__(self, *exc):
        self.loop.call_soon_threadsafe(self.stop_event.set)
        self.thread.join(10)

    @property
    def ref(self):
        return f"{self.host}/{self.repo}:{self.tag}"


def self_fault_huge(registry):
    return registry.fault == "huge-manifest"


def assert_nothing_left(docker, daemon):
    assert docker("images", "-aq").stdout.strip() == b""
    assert data_root_leftovers(daemon) == ([], [])
    layers = daemon.data_root / "image" / "layers"
    assert sorted(os.listdir(layers)) == []
    # nothing staged by the storage driver either (overlay unpacks into .tmp-* dirs)
    assert list(daemon.data_root.glob("storage/*/.tmp-*")) == []


@pytest.mark.parametrize("fault,message", [
    ("close", "failed to download blob"),
    ("stall", "no data for 2s"),
    ("mismatch", "filesystem layer verification failed for digest"),
    ("bad-diff-id", "layer digest mismatch"),
    ("hostile-layer", "contains '..'"),
    ("huge-manifest", "too large"),
])
def test_registry_faults_are_clear_errors_and_leave_nothing(docker, daemon, multilayer_tar, fault, message):
    with FaultRegistry(multilayer_tar, fault) as reg:
        r = docker("pull", reg.ref, ok=False)
    assert r.returncode != 0 and message in r.stderr.decode(), r.stderr.decode()
    assert_nothing_left(docker, daemon)


def test_a_blob_broken_off_once_is_resumed(docker, daemon, multilayer_tar):
    with FaultRegistry(multilayer_tar, "close", times=1) as reg:
        docker("pull", reg.ref)
        assert reg.attempts == 1
        assert len(reg.ranges) == 1 and reg.ranges[0] > 0  # resumed where it broke off, not restarted
    assert image_id(docker, reg.ref) == image_id_of(multilayer_tar)


def test_a_blob_broken_off_is_resumed_without_ranges(docker, daemon, multilayer_tar):
    """A registry that ignores ``Range`` sends the whole blob again: the part already
    unpacked is skipped, not unpacked twice, and the image is intact."""
    docker("rmi", "-f", image_id_of(multilayer_tar), ok=False)  # every layer downloaded
    with FaultRegistry(multilayer_tar, "close-norange", times=1) as reg:
        out = docker("pull", reg.ref).stdout.decode()
        assert reg.attempts == 1 and reg.ranges == []
    assert "Already exists" not in out
    assert image_id(docker, reg.ref) == image_id_of(multilayer_tar)
    docker("rmi", reg.ref)


def test_missing_tag_says_manifest_unknown(docker, daemon, local_registry):
    r = docker("pull", f"{local_registry.host}/nothing/here:nope", ok=False)
    assert r.returncode != 0
    assert (f"manifest for {local_registry.host}/nothing/here:nope not found: manifest unknown: manifest unknown"
            in r.stderr.decode()), r.stderr.decode()
    r = docker("push", f"{local_registry.host}/nothing/here:v1", ok=False)
    assert r.returncode != 0
    assert "An image does not exist locally with the tag: " + f"{local_registry.host}/nothing/here" in r.stderr.decode()
    assert_nothing_left(docker, daemon)


def test_bearer_token_challenge(docker, daemon, multilayer_tar, tmp_path):
    with FaultRegistry(multilayer_tar, bearer=True) as reg:
        r = docker("pull", reg.ref, ok=False)  # anonymous: the token server says no
        assert r.returncode != 0 and "pull access denied for" in r.stderr.decode(), r.stderr.decode()
        r = docker("login", "-u", "alice", "--password-stdin", reg.host, input=b"wrong\n", ok=False)
        assert r.returncode != 0
        docker("login", "-u", "alice", "--password-stdin", reg.host, input=b"pw\n")
        docker("pull", reg.ref)
        assert {"service": "fault-registry", "scope": "repository:fault/image:pull", "account": "alice"} in reg.token_requests
    assert image_id(docker, reg.ref) == image_id_of(multilayer_tar)


def test_login_push_pull_with_basic_auth(docker, daemon, auth_registry, multilayer_tar):
    docker("load", "-i", str(multilayer_tar))
    name = f"{auth_registry.host}/private/multi:v1"
    docker("tag", "multilayer:latest", name)
    r = docker("push", name, ok=False)
    assert r.returncode != 0, r.stdout.decode()
    assert "unauthorized: authentication required" in r.stderr.decode() + r.stdout.decode(), r.stderr.decode()
    r = docker("login", "-u", "alice", "--password-stdin", auth_registry.host, input=b"wrong\n", ok=False)
    assert r.returncode != 0 and "401" in r.stderr.decode(), r.stderr.decode()
    out = docker("login", "-u", "alice", "--password-stdin", auth_registry.host, input=b"s3cret-pass\n").stdout
    assert b"Login Succeeded" in out
    saved = json.loads((docker.config_dir / "config.json").read_text())
    assert base64.b64decode(saved["auths"][auth_registry.host]["auth"]) == b"alice:s3cret-pass"
    docker("push", name)
    docker("rmi", "multilayer:latest", name)
    docker("pull", name)
    assert image_id(docker, name) == image_id_of(multilayer_tar)
    docker("logout", auth_registry.host)
    docker("rmi", name)
    r = docker("pull", name, ok=False)
    assert r.returncode != 0 and "may require 'docker login'" in r.stderr.decode(), r.stderr.decode()


def _arm64_image_tar(path, tag):
    """A one-layer image whose config says linux/arm64/v8 (never run, only pulled)."""
    from dockyard.testing.images import image_config, image_tar, tar_from_entries

    layer = tar_from_entries([("etc", "dir", 0o755), ("etc/which", "file", "arm64 pretend\n")])
    config = {**image_config([layer]), "architecture": "arm64", "variant": "v8"}
    return image_tar(path, [(config, [layer], [tag])])


def _put_manifest(host, repo, ref, body, media_type):
    import http.client

    conn = http.client.HTTPConnection(host, timeout=30)
    conn.request("PUT", f"/v2/{repo}/manifests/{ref}", body=body, headers={"Content-Type": media_type})
    resp = conn.getresponse()
    assert resp.status == 201, resp.read()
    digest = resp.getheader("Docker-Content-Digest")
    conn.close()
    return digest


@pytest.mark.parametrize("index_type", ["application/vnd.oci.image.index.v1+json",
                                        "application/vnd.docker.distribution.manifest.list.v2+json"])
def test_manifest_list_picks_the_platform(docker, local_registry, multilayer_tar, tmp_path, index_type):
    repo = f"{local_registry.host}/multi/arch"
    docker("load", "-i", str(multilayer_tar))
    docker("tag", "multilayer:latest", f"{repo}:amd64")
    docker("load", "-i", str(_arm64_image_tar(tmp_path / "arm64.tar", f"{repo}:arm64")))
    arm_id = image_id(docker, f"{repo}:arm64")
    entries = []
    for tag, arch in (("arm64", "arm64"), ("amd64", "amd64")):
        out = docker("push", f"{repo}:{tag}").stdout.decode()
        digest = out.split(f"{tag}: digest: ")[1].split()[0]
        size = int(out.split(f"{tag}: digest: ")[1].split()[2])
        platform = {"architecture": arch, "os": "linux", **({"variant": "v8"} if arch == "arm64" else {})}
        entries.append({"mediaType": "application/vnd.docker.distribution.manifest.v2+json", "size": size,
                        "digest": digest, "platform": platform})
    index = json.dumps({"schemaVersion": 2, "mediaType": index_type, "manifests": entries}).encode()
    list_digest = _put_manifest(local_registry.host, "multi/arch", "both", index, index_type)
    docker("rmi", "multilayer:latest", f"{repo}:amd64", f"{repo}:arm64")
    out = docker("pull", f"{repo}:both").stdout.decode()
    assert f"Digest: {list_digest}" in out
    assert image_id(docker, f"{repo}:both") == image_id_of(multilayer_tar)  # the host's platform
    assert json.loads(docker("image", "inspect", "-f", "{{json .RepoDigests}}", f"{repo}:both").stdout) == [
        f"{repo}@{list_digest}"]
    docker("rmi", f"{repo}:both")
    docker("pull", "--platform", "linux/arm64", f"{repo}:both")
    assert image_id(docker, f"{repo}:both") == arm_id
    r = docker("pull", "--platform", "linux/s390x", f"{repo}:both", ok=False)
    assert r.returncode != 0 and "no matching manifest for linux/s390x" in r.stderr.decode(), r.stderr.decode()


def test_skopeo_agrees(docker, daemon, local_registry, multilayer_tar, tmp_path):
    """skopeo copies dockyardd's `docker save` archive to the registry and dockyardd pulls it back
    with the same id; what dockyardd pushed, skopeo copies into an archive with the same config."""
    docker("load", "-i", str(multilayer_tar))
    want = image_id_of(multilayer_tar)
    saved = tmp_path / "saved.tar"
    docker("save", "-o", str(saved), "multilayer:latest")
    subprocess.run(["skopeo", "copy", "--dest-tls-verify=false", f"docker-archive:{saved}",
                    f"docker://{local_registry.host}/by/skopeo:v1"], check=True, capture_output=True)
    docker("rmi", "multilayer:latest")
    docker("pull", f"{local_registry.host}/by/skopeo:v1")
    assert image_id(docker, f"{local_registry.host}/by/skopeo:v1") == want
    docker("tag", f"{local_registry.host}/by/skopeo:v1", f"{local_registry.host}/by/dockyard:v1")
    docker("push", f"{local_registry.host}/by/dockyard:v1")
    out = tmp_path / "from-registry.tar"
    subprocess.run(["skopeo", "copy", "--src-tls-verify=false", f"docker://{local_registry.host}/by/dockyard:v1",
                    f"docker-archive:{out}:copied:v1"], check=True, capture_output=True)
    info = json.loads(subprocess.run(["skopeo", "inspect", "--config", f"docker-archive:{out}"], check=True,
                                     capture_output=True).stdout)
    assert info["rootfs"]["diff_ids"] == json.loads(docker("image", "inspect", "-f", "{{json .RootFS.Layers}}",
                                                           f"{local_registry.host}/by/dockyard:v1").stdout)
    with tarfile.open(out) as tar:
        [entry] = json.load(tar.extractfile("manifest.json"))
    assert entry["Config"].replace(".json", "").split("/")[-1] == want[7:]


def test_dockyard_cli_login_push_pull(daemon, auth_registry, multilayer_tar, tmp_path):
    env = {**os.environ, "DOCKER_CONFIG": str(tmp_path / "dockyard-conf")}

    def cli(*args, input=b"", ok=True):
        r = subprocess.run([daemon.command()[0], "-m", "dockyard_cli", "-H", daemon.url, *args], input=input,
                           capture_output=True, timeout=180, env=env)
        if ok:
            assert r.returncode == 0, f"dockyard {' '.join(args)}: {r.stderr.decode()}"
        return r

    name = f"{auth_registry.host}/cli/multi:v1"
    cli("load", "-i", str(multilayer_tar))
    cli("tag", "multilayer:latest", name)
    try:
        r = cli("login", "-u", "alice", "--password-stdin", auth_registry.host, input=b"nope\n", ok=False)
        assert r.returncode != 0 and "401" in r.stderr.decode()
        assert b"Login Succeeded" in cli("login", "-u", "alice", "--password-stdin", auth_registry.host,
                                        input=b"s3cret-pass\n").stdout
        conf = tmp_path / "dockyard-conf"
        assert oct(conf.stat().st_mode & 0o777) == "0o700"
        assert oct((conf / "config.json").stat().st_mode & 0o777) == "0o600"
        out = cli("push", name).stdout.decode()
        assert "Pushed" in out and "v1: digest: sha256:" in out
        cli("rmi", "multilayer:latest", name)
        out = cli("pull", name).stdout.decode()
        assert "Pull complete" in out and "Status: Downloaded newer image" in out
        assert cli("inspect", "-f", "{{.Id}}", name).stdout.decode().strip() == image_id_of(multilayer_tar)
        digest = out.split("Digest: ")[1].split()[0]
        assert digest in cli("images", "--digests").stdout.decode()
        assert b"Removing login credentials" in cli("logout", auth_registry.host).stdout
        cli("rmi", name)
        r = cli("pull", name, ok=False)
        assert r.returncode != 0 and "docker login" in r.stderr.decode()
    finally:
        ids = cli("images", "-q", ok=False).stdout.decode().split()
        if ids:
            cli("rmi", "-f", *set(ids), ok=False)


def test_client_chunked_upload_and_verified_download(local_registry, tmp_path):
    """The client on its own: a blob larger than the monolithic limit goes up in PATCH chunks,
    comes back verified, and a wrong digest is refused by the registry."""
    import asyncio

    from dockyard.errors import InvalidArgument
    from dockyard.registry.client import Endpoint, RegistryClient, Settings

    data = os.urandom(3 * 1024 * 1024 + 17)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    blob = tmp_path / "blob"
    blob.write_bytes(data)
    settings = Settings(monolithic_max=1 << 20, chunk_size=1 << 20)
    seen = []

    async def run():
        ep = Endpoint(local_registry.host, None, insecure=True)
        async with RegistryClient(ep, "chunked/blob", actions=("pull", "push"), settings=settings) as client:
            assert await client.blob_size(digest) is None
            location, _ = await client.start_upload()
            await client.upload_file(location, blob, digest, len(data), seen.append)
            assert await client.blob_size(digest) == len(data)
            await client.download_blob(digest, len(data), tmp_path / "back", lambda n: None)
            location, _ = await client.start_upload()
            with pytest.raises(InvalidArgument):
                await client.upload_file(location, blob, "sha256:" + "0" * 64, len(data), lambda n: None)

    asyncio.run(run())
    assert seen == [1 << 20, 2 << 20, 3 << 20, len(data)]  # four PATCHes
    assert (tmp_path / "back").read_bytes() == data


def test_registry_mirror_serves_hub_pulls(make_daemon, local_registry, multilayer_tar, tmp_path):
    """docker.io pulls go to ``registry-mirrors`` first; the mirror has the image, so nothing
    leaves the machine."""
    subprocess.run(["skopeo", "copy", "--dest-tls-verify=false", f"docker-archive:{multilayer_tar}",
                    f"docker://{local_registry.host}/library/mirrored:v1"], check=True, capture_output=True)
    conf = tmp_path / "mirror.toml"
    conf.write_text(f'registry-mirrors = ["http://{local_registry.host}"]\n')
    d = make_daemon(*storage_args(), "--config-file", str(conf))
    r = d.docker("pull", "mirrored:v1")
    assert r.returncode == 0, r.stderr.decode()
    assert b"Status: Downloaded newer image for mirrored:v1" in r.stdout
    r = d.docker("image", "inspect", "-f", "{{.Id}} {{json .RepoDigests}}", "mirrored:v1")
    image, digests = r.stdout.decode().split(" ", 1)
    assert image == image_id_of(multilayer_tar) and json.loads(digests)[0].startswith("mirrored@sha256:")
    d.docker("rmi", "mirrored:v1")


def test_docker_py_push_and_pull(docker, daemon, auth_registry, multilayer_tar):
    client = daemon.docker_client()
    try:
        [image] = client.images.load(multilayer_tar.read_bytes())
        repo = f"{auth_registry.host}/py/multi"
        image.tag(repo, "v2")
        auth = {"username": "alice", "password": "s3cret-pass"}
        lines = list(client.images.push(repo, tag="v2", auth_config=auth, stream=True, decode=True))
        aux = [l["aux"] for l in lines if "aux" in l]
        assert aux and aux[0]["Tag"] == "v2" and aux[0]["Digest"].startswith("sha256:"), lines
        assert client.login("alice", "s3cret-pass", registry=auth_registry.host)["Status"] == "Login Succeeded"
        client.images.remove(image.id, force=True)
        pulled = client.images.pull(repo, tag="v2", auth_config=auth)
        assert pulled.id == image_id_of(multilayer_tar)
        assert pulled.attrs["RepoDigests"] == [f"{repo}@{aux[0]['Digest']}"]
    finally:
        client.close()


def test_distribution_inspect(docker, daemon, local_registry, multilayer_tar):
    """``GET /distribution/{name}/json`` (docker-py ``get_registry_data``): the manifest's
    descriptor and platform, from the registry, without pulling."""
    repo = f"{local_registry.host}/dist/inspect"
    docker("load", "-i", str(multilayer_tar))
    docker("tag", "multilayer:latest", f"{repo}:v1")
    out = docker("push", f"{repo}:v1").stdout.decode()
    digest, _, size = out.split("v1: digest: ")[1].split()[:3]
    docker("rmi", f"{repo}:v1")
    client = daemon.docker_client()
    try:
        before = client.images.list(all=True)
        data = client.images.get_registry_data(f"{repo}:v1")
        assert data.id == digest
        assert data.attrs["Descriptor"] == {"mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                                            "digest": digest, "size": int(size)}
        assert data.attrs["Platforms"] == [{"architecture": "amd64", "os": "linux"}]
        assert data.has_platform("linux/amd64") and not data.has_platform("linux/arm64")
        assert client.images.list(all=True) == before  # nothing was pulled
        with pytest.raises(DockerNotFound, match="manifest for .* not found"):
            client.images.get_registry_data(f"{repo}:nosuchtag")
    finally:
        client.close()
