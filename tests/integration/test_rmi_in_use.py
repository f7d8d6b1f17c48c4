"""``docker rmi`` of an image that containers use (issue 14 finding by the spec fuzz): as dockerd,
a stopped container's layers are never removed under it. Without force: a 409 naming the
container; by ID a running container is a 409 "(cannot be forced)"; ``rmi -f`` with only
stopped containers untags and deletes the image (200, Untagged + Deleted, as moby's
image_delete.go) while the containers keep its layers: they start, inspect, export and commit,
``docker ps`` shows the image id, and the last container's removal releases the layers.
(Before: first the layers were deleted under the containers, a 500 on start; then ``rmi -f``
was a 409 where dockerd deletes.)

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

    # rmi -f TAG with only stopped containers: untagged AND deleted, as dockerd answers (200,
    # Untagged + Deleted); the containers keep the layers
    out = _ok(d, "rmi", "-f", tag)
    assert out == f"Untagged: {tag}\nDeleted: {image}", out
    _fails(d, "image", "inspect", image)
    assert image not in _ok(d, "images", "-aq", "--no-trunc").split()

    # the container still works: ps shows the image id, start, inspect, export, commit
    assert _ok(d, "ps", "-a", "--filter", f"id={user}", "--format", "{{.Image}}") == image[7:19]
    assert _ok(d, "inspect", "-f", "{{.Image}}", user) == image
    assert _ok(d, "start", "-a", user) == "from-the-layer"
    r = d.docker("export", user)
    assert r.returncode == 0, r.stderr.decode()
    with tarfile.open(fileobj=io.BytesIO(r.stdout)) as tar:
        assert tar.extractfile("marker").read() == b"from-the-layer\n"
    second = _ok(d, "create", "--network", "none", "busybox", "true")  # another image's container
    committed = _ok(d, "commit", user, tag + "-kept")
    assert _ok(d, "run", "--rm", "--network", "none", tag + "-kept", "cat", "/marker") == "from-the-layer"
    _ok(d, "rmi", tag + "-kept")

    # a prune never brings it back nor breaks the container; the last container's rm releases
    # the layers (the data root holds no record of the image any more)
    _ok(d, "image", "prune", "-f")
    assert _ok(d, "start", "-a", user) == "from-the-layer"
    records = d.data_root / "image" / "images" / (image[7:] + ".json")
    assert records.exists()  # held for the container
    _ok(d, "rm", user)
    assert not records.exists()
    assert not (d.data_root / "image" / "blobs" / "sha256" / image[7:]).exists()
    _fails(d, "image", "inspect", committed)
    _ok(d, "rm", second)
    assert _ok(d, "image", "inspect", "-f", "{{.Id}}", "busybox") != image  # the suite's image is there

