"""``docker build`` (classic builder, ``DOCKER_BUILDKIT=0``) and docker-py ``images.build()``
against dockyardd, FROM the busybox image the fixtures load."""

from __future__ import annotations

import io
import json
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.privileged

MULTISTAGE = """\
# a comment
ARG BASE=busybox
FROM ${BASE} AS builder
WORKDIR /src
COPY greeting.txt data/ ./
RUN echo "built by $(id -u)" > /src/made.txt \\
    && cat greeting.txt >> /src/made.txt

FROM busybox
ENV GREETING=hello APP_DIR=/app
WORKDIR $APP_DIR
COPY --from=builder /src/made.txt /src/one.txt ./
LABEL stage=final
EXPOSE 8080
CMD ["sh", "-c", "cat made.txt one.txt; echo $GREETING from $(pwd)"]
"""


def docker_build(d, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["docker", "-H", d.url, "build", *args], capture_output=True, timeout=timeout,
                          env={**os.environ, "DOCKER_BUILDKIT": "0", "DOCKER_CONFIG": str(d.base / "docker-config")})


def write_context(path: Path, dockerfile: str, files: dict[str, str] | None = None) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "Dockerfile").write_text(dockerfile)
    for name, text in (files or {}).items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(text)
    return path


def image_tags(d) -> set[str]:
    return set(d.docker("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.decode().split())


def all_containers(d) -> set[str]:
    return set(d.docker("ps", "-aq", "--no-trunc").stdout.decode().split())


def test_multistage_build_runs_and_is_cached(d, tmp_path):
    ctx = write_context(tmp_path / "ctx", MULTISTAGE, {"greeting.txt": "hi there\n", "data/one.txt": "one\n"})
    before = all_containers(d)
    r = docker_build(d, "-t", "dy-build-test:1", str(ctx))
    out = r.stdout.decode()
    assert r.returncode == 0, r.stderr.decode() + out
    assert "Step 1/12 : ARG BASE=busybox" in out and "Step 2/12 : FROM ${BASE} AS builder" in out
    assert "Successfully tagged dy-build-test:1" in out
    assert "Removing intermediate container" in out
    assert all_containers(d) == before  # intermediate containers are gone

    run = d.docker("run", "--rm", "dy-build-test:1")
    assert run.returncode == 0, run.stderr
    assert run.stdout.decode().splitlines() == ["built by 0", "hi there", "one", "hello from /app"]
    info = json.loads(d.docker("image", "inspect", "dy-build-test:1").stdout)[0]["Config"]
    assert info["Labels"] == {"stage": "final"}
    assert "8080/tcp" in info["ExposedPorts"]
    assert "GREETING=hello" in info["Env"] and info["WorkingDir"] == "/app"
    image_id = info and json.loads(d.docker("image", "inspect", "dy-build-test:1").stdout)[0]["Id"]

    again = docker_build(d, "-t", "dy-build-test:1", str(ctx))
    assert again.returncode == 0, again.stderr
    text = again.stdout.decode()
    assert text.count("Using cache") == 9  # every step but ARG and the two FROMs
    assert f"Successfully built {image_id[7:19]}" in text

    (ctx / "data" / "one.txt").write_text("changed\n")  # busts the first COPY and all after it
    third = docker_build(d, "-t", "dy-build-test:1", str(ctx))
    assert third.returncode == 0, third.stderr
    assert f"Successfully built {image_id[7:19]}" not in third.stdout.decode()
    run = d.docker("run", "--rm", "dy-build-test:1")
    assert "changed" in run.stdout.decode().splitlines()
    d.docker("rmi", "dy-build-test:1")


def test_docker_py_build_returns_image(d, client, tmp_path):
    ctx = write_context(tmp_path / "ctx", "FROM busybox\nARG WHO=nobody\nSHELL [\"/bin/sh\", \"-ec\"]\n"
                        "RUN echo $WHO > /who\nCOPY --chown=1000:1001 *.txt /globbed/\nSTOPSIGNAL SIGINT\n"
                        "VOLUME /data\nUSER 1000\nEXPOSE 53/udp 80\n"
                        "HEALTHCHECK --interval=5s --retries=2 CMD true\nENTRYPOINT [\"cat\"]\nCMD [\"/who\"]\n",
                        {"one.txt": "1", "two.txt": "2", "three.md": "3"})
    image, logs = client.images.build(path=str(ctx), tag="dy-build-py:latest", buildargs={"WHO": "docker-py", "UNUSED": "x"})
    lines = "".join(chunk.get("stream", "") for chunk in logs)
    assert "[Warning] One or more build-args [UNUSED] were not consumed" in lines
    assert image.tags == ["dy-build-py:latest"]
    assert image.attrs["Config"]["Healthcheck"] == {"Test": ["CMD-SHELL", "true"], "Interval": 5_000_000_000, "Retries": 2}
    config = image.attrs["Config"]
    assert config["Shell"] == ["/bin/sh", "-ec"] and config["StopSignal"] == "SIGINT" and config["User"] == "1000"
    assert config["Volumes"] == {"/data": {}} and set(config["ExposedPorts"]) == {"53/udp", "80/tcp"}
    assert config["Entrypoint"] == ["cat"] and config["Cmd"] == ["/who"]
    assert d.docker("run", "--rm", image.id).stdout == b"docker-py\n"
    listing = d.docker("run", "--rm", "--entrypoint", "stat", image.id, "-c", "%n %u:%g", "/globbed/one.txt",
                       "/globbed/two.txt").stdout.decode().splitlines()
    assert listing == ["/globbed/one.txt 1000:1001", "/globbed/two.txt 1000:1001"]
    assert d.docker("run", "--rm", "--entrypoint", "ls", image.id, "/globbed").stdout.split() == [b"one.txt", b"two.txt"]
    client.images.remove("dy-build-py:latest")


SUBSTITUTIONS = """\
ARG REPO=${UNSET:-busybox}
ARG SUFFIX
FROM ${REPO}${SUFFIX:+:$SUFFIX}
ARG PORT
ARG SUB=sub
ENV HOME_DIR=${UNSET:-/home/${SUB}} \\
    EMPTY= \\
    LITERAL=\\${HOME_DIR}
ENV NAME=${EMPTY:-fallback} PLUS=${HOME_DIR:+x-${SUB}-y} NONE=${EMPTY:+never}
WORKDIR ${WORKDIR:-$HOME_DIR}/w
COPY ${SRC:-a.txt} ${EMPTY:-./}
ADD ["${SRC:-a.txt}", "${DEST:-/added/}"]
EXPOSE ${PORT:-80} ${PORT:+9}${PORT:-1}/udp
VOLUME ${VOL:-/data} "${VOL:-/quoted}"
USER ${USERNAME:-1000}:${GROUP:-1001}
LABEL "escaped"="\\$PORT" who="${NAME:+name is $NAME}"
STOPSIGNAL ${SIG:-SIGUSR1}
"""


def test_variable_substitution_in_every_instruction(d, client, tmp_path):
    ctx = write_context(tmp_path / "ctx", SUBSTITUTIONS, {"a.txt": "a"})
    image, _ = client.images.build(path=str(ctx), tag="dy-subst:1", buildargs={"SUFFIX": "latest"},
                                   labels={"from-api": '$PORT "q" \\'})  # --label values are not substituted
    config = image.attrs["Config"]
    env = dict(e.split("=", 1) for e in config["Env"])
    assert env["HOME_DIR"] == "/home/sub" and env["EMPTY"] == "" and env["LITERAL"] == "${HOME_DIR}"
    assert (env["NAME"], env["PLUS"], env["NONE"]) == ("fallback", "x-sub-y", "")
    assert config["WorkingDir"] == "/home/sub/w"
    assert set(config["ExposedPorts"]) == {"80/tcp", "1/udp"}
    assert config["Volumes"] == {"/data": {}, "/quoted": {}}
    assert config["User"] == "1000:1001" and config["StopSignal"] == "SIGUSR1"
    assert config["Labels"] == {"escaped": "$PORT", "who": "name is fallback", "from-api": '$PORT "q" \\'}
    files = d.docker("run", "--rm", "--user", "0", image.id, "cat", "/home/sub/w/a.txt", "/added/a.txt").stdout
    assert files == b"aa"
    # a build arg turns the :+ alternatives on
    image2, _ = client.images.build(path=str(ctx), buildargs={"PORT": "5"})
    assert set(image2.attrs["Config"]["ExposedPorts"]) == {"5/tcp", "95/udp"}
    client.images.remove("dy-subst:1")


def test_syntax_error_names_the_line(d, tmp_path):
    ctx = write_context(tmp_path / "ctx", "FROM busybox\n# fine\nRUN true \\\n  && true\nBOGUS thing\n")
    r = docker_build(d, str(ctx))
    assert r.returncode != 0
    assert "Dockerfile parse error line 5: unknown instruction: BOGUS" in r.stderr.decode()


def test_copy_outside_the_context_is_refused(d, tmp_path):
    ctx = write_context(tmp_path / "ctx", "FROM busybox\nCOPY ../secret /x\n")
    (tmp_path / "secret").write_text("no")
    before = all_containers(d)
    r = docker_build(d, "-t", "dy-outside:1", str(ctx))
    assert r.returncode != 0
    assert "forbidden path outside the build context: ../secret" in (r.stdout + r.stderr).decode()
    assert "dy-outside:1" not in image_tags(d)
    assert all_containers(d) == before


@pytest.mark.parametrize("dockerfile, message", [
    ("FROM busybox\nADD http://example.invalid/x /x\n", "ADD from a URL is not supported: dockyard builds offline"),
    ("FROM busybox\nCOPY --chmod=644 a /a\n", "the --chmod option requires BuildKit"),
    ("FROM busybox\nRUN true\nCOPY missing.txt /m\n", "file not found in build context or excluded by .dockerignore"),
    ("FROM busybox\nCOPY a b /notadir\n", "the destination must be a directory and end with a /"),
    ("FROM busybox\nENV A=\"${NOPE:?must be given}\"\n", "NOPE: must be given"),
    ("FROM busybox\nWORKDIR ${NOPE:-/x\n", "missing '}'"),
])
def test_bad_steps_fail_clearly_and_leave_nothing(d, tmp_path, dockerfile, message):
    ctx = write_context(tmp_path / "ctx", dockerfile, {"a": "a", "b": "b"})
    before = all_containers(d)
    r = docker_build(d, "-t", "dy-bad:1", str(ctx))
    assert r.returncode != 0
    assert message in r.stderr.decode()
    assert all_containers(d) == before
    assert "dy-bad:1" not in image_tags(d)


def test_missing_base_images_are_pulled(d, tmp_path, local_registry):
    """FROM (and COPY --from) of an image not present locally pulls it, its progress in the
    build output, as Docker's classic builder does; a missing one fails and leaves nothing."""
    base = f"{local_registry.host}/base/busybox:1"
    assert d.docker("tag", "busybox:latest", base).returncode == 0
    r = d.docker("push", base)
    assert r.returncode == 0, r.stderr
    assert d.docker("rmi", base).returncode == 0  # busybox:latest keeps the image itself
    ctx = write_context(tmp_path / "ctx", f"FROM {base}\nCOPY --from={local_registry.host}/base/busybox:1 "
                                          "/bin/busybox /copied/\nRUN /copied/busybox true\n")
    r = docker_build(d, "-t", "dy-pulled:1", str(ctx))
    assert r.returncode == 0, r.stderr
    out = r.stdout.decode()
    assert f"Step 1/3 : FROM {base}" in out
    assert "1: Pulling from " in out and "base/busybox" in out
    assert f"Status: Downloaded newer image for {base}" in out
    assert out.index("Pulling from") < out.index("Step 2/3")
    assert "Successfully tagged dy-pulled:1" in out
    assert base in image_tags(d)
    before = all_containers(d)
    for dockerfile in (f"FROM {local_registry.host}/nothing/here:nope\n",
                       f"FROM busybox\nCOPY --from={local_registry.host}/nothing/here:nope /x /x\n"):
        (ctx / "Dockerfile").write_text(dockerfile)
        r = docker_build(d, "-t", "dy-bad:1", str(ctx))
        assert r.returncode != 0
        assert f"manifest for {local_registry.host}/nothing/here:nope not found" in r.stderr.decode()
        assert "dy-bad:1" not in image_tags(d)
        assert all_containers(d) == before
    d.docker("rmi", "dy-pulled:1", base)


def test_failing_run_leaves_no_container_and_no_tag(d, tmp_path):
    ctx = write_context(tmp_path / "ctx", "FROM busybox\nRUN echo partial > /f\nRUN echo oops && exit 3\n")
    before = all_containers(d)
    r = docker_build(d, "-t", "dy-fail:1", str(ctx))
    assert r.returncode != 0
    assert "The command '/bin/sh -c echo oops && exit 3' returned a non-zero code: 3" in r.stderr.decode()
    assert "oops" in r.stdout.decode()
    assert all_containers(d) == before
    assert "dy-fail:1" not in image_tags(d)


def test_dockerignore_add_tar_and_scratch(d, client, tmp_path):
    ctx = write_context(tmp_path / "ctx", "FROM scratch\nCOPY . /ctx/\nADD bundle.tar /unpacked/\n",
                        {".dockerignore": "*.log\nsecret/\n!keep.log\n", "a.log": "x", "keep.log": "kept",
                         "secret/key": "k", "ok.txt": "ok"})
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        info = tarfile.TarInfo("inner/file.txt")
        info.size = 5
        tf.addfile(info, io.BytesIO(b"inner"))
    (ctx / "bundle.tar").write_bytes(buf.getvalue())
    image, _ = client.images.build(path=str(ctx), tag="dy-scratch:1")
    export = d.docker("create", "dy-scratch:1", "x")
    cid = export.stdout.decode().strip()
    listing = d.docker("export", cid).stdout
    names = set(tarfile.open(fileobj=io.BytesIO(listing)).getnames())
    d.docker("rm", cid)
    assert "ctx/ok.txt" in names and "ctx/keep.log" in names and "unpacked/inner/file.txt" in names
    assert "ctx/a.log" not in names and "ctx/secret/key" not in names
    client.images.remove("dy-scratch:1")


def test_dockerfile_outside_the_context_and_target(d, tmp_path):
    """The docker CLI sends an outside -f under a random name (and ends that tar unpadded)."""
    ctx = write_context(tmp_path / "ctx", "unused", {"f.txt": "from the context\n"})
    other = tmp_path / "elsewhere.Dockerfile"
    other.write_text("FROM busybox AS first\nCOPY f.txt /\nFROM first AS second\nRUN exit 1\n")
    r = docker_build(d, "-f", str(other), "--target", "first", "-t", "dy-outside-df:1", str(ctx))
    assert r.returncode == 0, r.stderr
    assert "Step 2/2 : COPY f.txt /" in r.stdout.decode()
    assert d.docker("run", "--rm", "dy-outside-df:1", "cat", "/f.txt").stdout == b"from the context\n"
    d.docker("rmi", "dy-outside-df:1")


def test_dockyard_cli_build(d, tmp_path):
    """``dockyard build`` tars the context itself, leaving out what .dockerignore excludes."""
    ctx = write_context(tmp_path / "ctx", "FROM busybox\nARG N\nCOPY . /c/\nRUN ls -A /c > /list && echo $N >> /list\n",
                        {".dockerignore": "big/\n*.tmp\n", "big/blob": "x" * 1000, "a.tmp": "t", "keep": "k"})
    r = d.cli("build", "-t", "dy-cli-build:1", "--build-arg", "N=7", "--label", "via=cli", str(ctx))
    out = r.stdout.decode()
    assert r.returncode == 0, r.stderr.decode() + out
    assert "Step 4/5 : RUN ls -A /c" in out and "Successfully tagged dy-cli-build:1" in out
    listing = d.docker("run", "--rm", "dy-cli-build:1", "cat", "/list").stdout.decode().split()
    assert listing == [".dockerignore", "Dockerfile", "keep", "7"]
    q = d.cli("build", "-q", str(ctx))
    assert q.returncode == 0 and q.stdout.decode().startswith("sha256:")
    bad = d.cli("build", "--target", "nope", str(ctx))
    assert bad.returncode != 0 and "failed to reach build target nope" in bad.stderr.decode()
    d.docker("rmi", "dy-cli-build:1")


def test_buildkit_attempt_is_refused_clearly(d, client):
    r = client.api._post(client.api._url("/session"))
    assert r.status_code >= 400 and "DOCKER_BUILDKIT=0" in r.json()["message"]
    r = client.api._post(client.api._url("/build"), params={"version": "2"}, data=b"")
    assert r.status_code >= 400 and "DOCKER_BUILDKIT=0" in r.json()["message"]


def test_hostile_context_is_refused_whole(d, client):
    import docker

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in (("Dockerfile", b"FROM busybox\n"), ("../escape", b"x")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    buf.seek(0)
    with pytest.raises(docker.errors.APIError, match="contains '..'"):
        list(client.api.build(fileobj=buf, custom_context=True))
    assert not list((d.data_root / "image" / "tmp").glob("build-*"))  # the unpacked context is gone


# -- issue 15: ONBUILD, target, cachefrom, extrahosts, networkmode, errors as Docker sends them --


def test_onbuild_triggers_run_first_in_the_child_build(d, client, tmp_path):
    """ONBUILD is recorded in the image's OnBuild; a build FROM that image runs the triggers
    in order (a COPY from the child's context too) before its own instructions, and the
    child does not inherit them."""
    parent = write_context(tmp_path / "parent", "FROM busybox\nONBUILD RUN echo first > /t1\n"
                           "ONBUILD COPY f.txt /from-child-context\nONBUILD ENV TRIGGERED=yes\nRUN echo own > /own\n")
    r = docker_build(d, "-t", "dy-onbuild-parent:1", str(parent))
    assert r.returncode == 0, r.stderr.decode() + r.stdout.decode()
    config = json.loads(d.docker("image", "inspect", "dy-onbuild-parent:1").stdout)[0]["Config"]
    assert config["OnBuild"] == ["RUN echo first > /t1", "COPY f.txt /from-child-context", "ENV TRIGGERED=yes"]
    assert d.docker("run", "--rm", "--network", "none", "dy-onbuild-parent:1", "ls", "/t1").returncode != 0  # not run in the parent

    child = write_context(tmp_path / "child", "FROM dy-onbuild-parent:1\nRUN cat /t1 /from-child-context > /both "
                          "&& echo $TRIGGERED >> /both\n", {"f.txt": "child file\n"})
    r = docker_build(d, "-t", "dy-onbuild-child:1", str(child))
    out = r.stdout.decode()
    assert r.returncode == 0, r.stderr.decode() + out
    assert "# Executing 3 build triggers" in out
    assert out.index("Step 1/2") < out.index("# Executing 3 build triggers") < out.index("Step 2/2")
    assert d.docker("run", "--rm", "--network", "none", "dy-onbuild-child:1", "cat", "/both").stdout == b"first\nchild file\nyes\n"
    info = client.images.get("dy-onbuild-child:1").attrs["Config"]
    assert not info.get("OnBuild")
    # a grandchild runs nothing: the triggers fired once
    grand = write_context(tmp_path / "grand", "FROM dy-onbuild-child:1\nRUN true\n")
    r = docker_build(d, "-t", "dy-onbuild-grand:1", str(grand))
    assert r.returncode == 0 and "build trigger" not in r.stdout.decode()
    d.docker("rmi", "dy-onbuild-grand:1", "dy-onbuild-child:1", "dy-onbuild-parent:1")


@pytest.mark.parametrize("line, message", [
    ("ONBUILD ONBUILD RUN true", "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"),
    ("ONBUILD FROM busybox", "FROM isn't allowed as an ONBUILD trigger"),
    ("ONBUILD MAINTAINER me", "MAINTAINER isn't allowed as an ONBUILD trigger"),
])
def test_onbuild_forbidden_triggers(d, tmp_path, line, message):
    ctx = write_context(tmp_path / "ctx", f"FROM busybox\n{line}\n")
    r = docker_build(d, "-t", "dy-bad:1", str(ctx))
    assert r.returncode != 0
    assert message in r.stderr.decode()
    assert "dy-bad:1" not in image_tags(d)


def test_target_stops_at_the_stage(d, client, tmp_path):
    """docker-py's test: later stages (an ONBUILD, a base that is not here) are never reached;
    an unknown target is Docker's error."""
    ctx = write_context(tmp_path / "ctx", "FROM busybox as first\nRUN mkdir -p /tmp/test\nFROM alpine:latest\n"
                        "ONBUILD RUN echo never\n")
    image, _ = client.images.build(path=str(ctx), target="first", tag="dy-target:1")
    assert not image.attrs["Config"].get("OnBuild")
    assert d.docker("run", "--rm", "--network", "none", "dy-target:1", "ls", "-d", "/tmp/test").returncode == 0
    r = docker_build(d, "--target", "nope", str(ctx))
    assert r.returncode == 1
    assert "failed to reach build target nope in Dockerfile" in r.stderr.decode()
    client.images.remove("dy-target:1")


def test_cache_from_uses_only_the_named_images_chains(d, client, tmp_path):
    """docker-py's test_build_with_cache_from: with cachefrom only steps in a named image's
    parent chain are reused; a missing name gives no cache at all."""
    script = "FROM busybox\nENV FOO=bar\nRUN touch baz\nRUN touch bax\n"
    ctx = write_context(tmp_path / "ctx", script)

    def build(**kwargs) -> int:
        _, logs = client.images.build(path=str(ctx), **kwargs)
        return sum("Using cache" in chunk.get("stream", "") for chunk in logs)

    build(tag="dy-cache1:1")
    assert build(tag="dy-cache2:1", cache_from=["dy-cache1:1"]) == 3
    client.images.remove("dy-cache2:1")
    assert build(tag="dy-cache2:1", cache_from=["dy-nosuchtag:1"]) == 0
    # an unrelated image is no source for these steps either
    assert build(tag="dy-cache3:1", cache_from=["busybox:latest"]) == 0
    # the docker CLI's --cache-from
    r = docker_build(d, "--cache-from", "dy-cache1:1", "-t", "dy-cache4:1", str(ctx))
    assert r.returncode == 0, r.stderr
    assert r.stdout.decode().count("Using cache") == 3
    for tag in ("dy-cache1:1", "dy-cache2:1", "dy-cache3:1", "dy-cache4:1"):
        client.images.remove(tag)


def test_extra_hosts_reach_run_steps(d, client, tmp_path):
    ctx = write_context(tmp_path / "ctx", "FROM busybox\nRUN ping -c1 -W2 extrahost.local.test\n"
                        "RUN cp /etc/hosts /hosts-file\n")
    r = docker_build(d, "--add-host", "extrahost.local.test:127.0.0.1", "--add-host", "hello.world.test=127.0.0.2",
                     "-t", "dy-extrahosts:1", str(ctx))
    assert r.returncode == 0, r.stderr.decode() + r.stdout.decode()
    hosts = d.docker("run", "--rm", "--network", "none", "dy-extrahosts:1", "cat", "/hosts-file").stdout.decode()
    assert "127.0.0.1\textrahost.local.test" in hosts and "127.0.0.2\thello.world.test" in hosts
    _, logs = client.images.build(path=str(ctx), tag="dy-extrahosts:2", nocache=True,
                                  extra_hosts={"extrahost.local.test": "127.0.0.1"})
    assert "127.0.0.1\textrahost.local.test" in d.docker("run", "--rm", "--network", "none", "dy-extrahosts:2", "cat",
                                                         "/hosts-file").stdout.decode()
    d.docker("rmi", "dy-extrahosts:1", "dy-extrahosts:2")


def test_network_mode_of_run_steps(d, client, tmp_path):
    """docker-py's test_build_with_network_mode: RUN on a user network resolves a container's
    alias there; with none it has only loopback and the failure is Docker's errorDetail."""
    import docker

    ipam = docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet="10.233.1.0/24")])
    net = client.networks.create("dy-buildnet", ipam=ipam)
    target = client.containers.run("busybox", "sleep 300", detach=True)
    net.connect(target, aliases=["pingtarget.docker"])
    ctx = write_context(tmp_path / "ctx", "FROM busybox\nRUN ping -c1 -W2 pingtarget.docker\n")
    r = docker_build(d, "--network", "dy-buildnet", "-t", "dy-netbuild:1", str(ctx))
    assert r.returncode == 0, r.stderr.decode() + r.stdout.decode()
    logs = list(client.api.build(path=str(ctx), network_mode="none", nocache=True, decode=True))
    assert logs[-1]["errorDetail"]["code"] == 1, logs
    none = write_context(tmp_path / "none", "FROM busybox\nRUN ls /sys/class/net > /nets\n")
    r = docker_build(d, "--network", "none", "-t", "dy-netbuild:2", str(none))
    assert r.returncode == 0, r.stderr.decode()
    nets = d.docker("run", "--rm", "--network", "none", "dy-netbuild:2", "cat", "/nets")
    assert nets.stdout == b"lo\n", nets.stderr.decode() + r.stdout.decode()
    # host: the host's links; container:X: X's namespace (its eth0 address)
    ctx_ifs = write_context(tmp_path / "ifs", "FROM busybox\nRUN cat /sys/class/net/*/address | sort > /macs\n")
    r = docker_build(d, "--network", "host", "-t", "dy-netbuild:3", str(ctx_ifs))
    assert r.returncode == 0, r.stderr.decode()
    uplink = Path("/sys/class/net") / next(line.split()[0] for line in Path("/proc/net/route").read_text().splitlines()[1:]
                                           if line.split()[1] == "00000000")  # the default route's device
    built = d.docker("run", "--rm", "--network", "none", "dy-netbuild:3", "cat", "/macs").stdout.decode().splitlines()
    assert (uplink / "address").read_text().strip() in built
    mac = target.attrs["NetworkSettings"]["MacAddress"] or d.docker(
        "exec", target.id, "cat", "/sys/class/net/eth0/address").stdout.decode().strip()
    r = docker_build(d, "--network", f"container:{target.id}", "--no-cache", "-t", "dy-netbuild:4", str(ctx_ifs))
    assert r.returncode == 0, r.stderr.decode()
    assert mac in d.docker("run", "--rm", "--network", "none", "dy-netbuild:4", "cat", "/macs").stdout.decode().split()
    target.remove(force=True)
    net.remove()
    d.docker("rmi", "dy-netbuild:1", "dy-netbuild:2", "dy-netbuild:3", "dy-netbuild:4")


def test_errors_on_the_stream_as_docker_sends_them(d, client, tmp_path):
    """A failed RUN ends the stream with errorDetail.code = its exit status (the docker CLI
    prints the message on stderr and exits with that code); a RUN's stderr comes in red, as
    Docker's stderr writer sends it."""
    ctx = write_context(tmp_path / "ctx", "FROM busybox\nRUN echo to-stderr >&2\nRUN false\n")
    logs = list(client.api.build(path=str(ctx), nocache=True, decode=True))
    message = "The command '/bin/sh -c false' returned a non-zero code: 1"
    assert logs[-1] == {"errorDetail": {"code": 1, "message": message}, "error": message}
    assert "\x1b[91mto-stderr\n\x1b[0m" in [chunk.get("stream") for chunk in logs]
    r = docker_build(d, str(ctx))
    assert r.returncode == 1 and message in r.stderr.decode()
    (ctx / "Dockerfile").write_text("FROM busybox\nRUN exit 3\n")
    r = docker_build(d, str(ctx))
    assert r.returncode == 3 and "The command '/bin/sh -c exit 3' returned a non-zero code: 3" in r.stderr.decode()
    # another failure: only a message, and the CLI exits 1
    (ctx / "Dockerfile").write_text("FROM busybox\nCOPY missing /x\n")
    logs = list(client.api.build(path=str(ctx), decode=True))
    assert "code" not in logs[-1]["errorDetail"] and logs[-1]["error"] == logs[-1]["errorDetail"]["message"]
    r = docker_build(d, str(ctx))
    assert r.returncode == 1 and "missing" in r.stderr.decode()


def test_cache_from_a_loaded_image_matches_by_history(d, tmp_path):
    """The CI case: an image saved elsewhere and loaded here has no parent chain; with
    --cache-from its history serves the cache (moby's ImageCache): every step is reused and the
    build ends on the loaded image itself; a changed file busts its COPY and what follows."""
    ctx = write_context(tmp_path / "ctx", "FROM busybox\nENV FOO=bar\nRUN echo one > /one\nCOPY f.txt /f.txt\n"
                        "RUN cat /one /f.txt > /both\n", {"f.txt": "file\n"})
    r = docker_build(d, "-t", "dy-cachesrc:1", str(ctx))
    assert r.returncode == 0, r.stderr.decode()
    source_id = json.loads(d.docker("image", "inspect", "dy-cachesrc:1").stdout)[0]["Id"]
    saved = d.docker("save", "dy-cachesrc:1").stdout
    assert d.docker("rmi", "dy-cachesrc:1").returncode == 0  # and its untagged parents
    assert d.docker("load", input=saved).returncode == 0
    r = docker_build(d, "--cache-from", "dy-cachesrc:1", "-t", "dy-cachehit:1", str(ctx))
    out = r.stdout.decode()
    assert r.returncode == 0, r.stderr.decode() + out
    assert out.count("Using cache") == 4, out
    assert f"Successfully built {source_id[7:19]}" in out
    assert d.docker("run", "--rm", "--network", "none", "dy-cachehit:1", "cat", "/both").stdout == b"one\nfile\n"
    (ctx / "f.txt").write_text("changed\n")
    r = docker_build(d, "--cache-from", "dy-cachesrc:1", "-t", "dy-cachehit:2", str(ctx))
    out = r.stdout.decode()
    assert r.returncode == 0, r.stderr.decode() + out
    assert out.count("Using cache") == 2, out  # ENV and the first RUN
    assert d.docker("run", "--rm", "--network", "none", "dy-cachehit:2", "cat", "/both").stdout == b"one\nchanged\n"
    d.docker("rmi", "dy-cachehit:1", "dy-cachehit:2", "dy-cachesrc:1")


def test_run_steps_get_the_build_limits(d, tmp_path):
    """--shm-size, --memory and --ulimit of `docker build` apply to the RUN containers, as in
    Docker's classic builder (they used to be accepted and ignored)."""
    ctx = write_context(tmp_path / "ctx", "FROM busybox\nRUN df -k /dev/shm | tail -n 1 | awk '{print $2}' > /shm "
                        "&& ulimit -n > /nofile && (cat /sys/fs/cgroup/memory/memory.limit_in_bytes "
                        "|| cat /sys/fs/cgroup/memory.max) > /mem\n")
    r = docker_build(d, "--shm-size", "128m", "--memory", "96m", "--ulimit", "nofile=1000:2000", "-t", "dy-limits:1",
                     str(ctx))
    assert r.returncode == 0, r.stderr.decode() + r.stdout.decode()
    out = d.docker("run", "--rm", "--network", "none", "dy-limits:1", "cat", "/shm", "/nofile", "/mem").stdout.split()
    assert out == [b"131072", b"1000", str(96 << 20).encode()]
    d.docker("rmi", "dy-limits:1")
