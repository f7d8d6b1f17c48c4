"""``docker rmi`` of an image that containers use (issue 14 finding by the spec fuzz): as dockerd,
a stopped container's image is never removed under it. Without force: a 409 naming the
container; ``rmi -f TAG``: the tag goes, the image stays as a dangling ``<none>`` until the
last container using it is gone (then ``image prune`` removes it); by ID a running container
is a 409 "(cannot be forced)". Before the fix ``rmi -f`` deleted the layers, and the
container's start/export were a 500 ("mount overlay: No such file or directory").

The image is a commit of the test's own (a layer of its own): never the suite's busybox."""

from __future__ import annotations

import io
import secrets
import tarfile


def _ok(d, *args: str) -> str:
    r = d.docker(*args)
    assert r.returncode == 0, (args, r.stderr.decode())
    return r.stdout.decode().strip()


def _fails(d, *args: str) -> str:
    r = d.docker(*args)
    assert r.returncode != 0, (args, r.stdout.decode())
    return r.stderr.decode()


def test_rmi_of_an_image_a_container_uses_keeps_it_until_the_container_is_gone(d):
    tag = f"fixa-rmi-{secrets.token_hex(4)}:v1"
    maker = _ok(d, "create", "--network", "none", "busybox", "sh", "-c", "echo from-the-layer > /marker")
    _ok(d, "start", "-a", maker)
    image = _ok(d, "commit", maker, tag)  # an image with a layer no other image has
    _ok(d, "rm", maker)
    user = _ok(d, "create", "--network", "none", tag, "cat", "/marker")

    # without force: refused, naming the container (Docker's messages, by tag and by id)
    err = _fails(d, "rmi", tag)
    assert f'unable to remove repository reference "{tag}" (must force) - container {user[:12]}' in err
    err = _fails(d, "rmi", image)
    assert f"unable to delete {image[7:19]} (must be forced) - image is being used by stopped container " \
           f"{user[:12]}" in err

    # a running container: by id even force is refused
    runner = _ok(d, "run", "-d", "--network", "none", tag, "sleep", "300")
    err = _fails(d, "rmi", "-f", image)
    assert f"unable to delete {image[7:19]} (cannot be forced) - image is being used by running container " \
           f"{runner[:12]}" in err
    _ok(d, "rm", "-f", runner)

    # rmi -f TAG: untagged, not deleted; the image stays as <none>
    out = _ok(d, "rmi", "-f", tag)
    assert out == f"Untagged: {tag}", out
    assert image in _ok(d, "images", "-q", "--no-trunc", "--filter", "dangling=true").split()
    assert _ok(d, "image", "inspect", "-f", "{{.RepoTags}}", image) == "[]"
    # nor does a forced delete by id remove it while the container is there
    _fails(d, "rmi", "-f", image)
    assert _ok(d, "image", "inspect", "-f", "{{.Id}}", image) == image

    # the container still works: start, export, cp
    assert _ok(d, "start", "-a", user) == "from-the-layer"
    r = d.docker("export", user)
    assert r.returncode == 0, r.stderr.decode()
    with tarfile.open(fileobj=io.BytesIO(r.stdout)) as tar:
        assert tar.extractfile("marker").read() == b"from-the-layer\n"
    assert _ok(d, "inspect", "-f", "{{.Image}}", user) == image

    # a prune keeps it while the container exists, removes it once the container is gone
    _ok(d, "image", "prune", "-f")
    assert _ok(d, "image", "inspect", "-f", "{{.Id}}", image) == image
    _ok(d, "rm", user)
    out = _ok(d, "image", "prune", "-f")
    assert f"deleted: {image}" in out, out
    _fails(d, "image", "inspect", image)
    assert _ok(d, "image", "inspect", "-f", "{{.Id}}", "busybox") != image  # the suite's image is there
