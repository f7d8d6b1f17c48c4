"""Offline image builders for tests, benchmarks and the README's quick start.

* :func:`busybox_rootfs`: a busybox root filesystem from Debian's static ``/bin/busybox``.
* :func:`busybox_image_tar`: that rootfs as a one-layer ``docker save`` tar (``busybox:latest``).
* :func:`multilayer_image_tar`: three layers with whiteouts (a deleted file, an opaque dir).
* :func:`image_tar`: the general writer (configs, layers and tags in, docker-save tar out).

Everything is deterministic (fixed mtimes, sorted members), so the same inputs give the
same image ID on every run.

Command line::

    python -m dockyard.testing.images busybox.tar            # write the tar
    python -m dockyard.testing.images --load [-H unix:///run/dockyard.sock]   # build and load it
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any, Iterable

BUSYBOX = "/bin/busybox"
EPOCH = 1700000000  # fixed mtime: reproducible layers, reproducible image IDs
CREATED = "2023-11-14T22:13:20Z"
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def busybox_applets() -> list[str]:
    out = subprocess.run([BUSYBOX, "--list"], capture_output=True, text=True, check=True).stdout
    return sorted({a.strip() for a in out.split() if a.strip() and "/" not in a and a != "busybox"})


def busybox_rootfs(dest: Path | str) -> Path:
    """Create ``dest`` with ``/bin/busybox``, a symlink per applet, ``/etc/passwd`` and
    ``/etc/group`` (root, nobody), empty ``/tmp /proc /sys /dev`` and the files the runtime
    bind-mounts over (``/etc/hostname``, ``/etc/hosts``, ``/etc/resolv.conf``)."""
    if not os.path.exists(BUSYBOX):
        raise RuntimeError(f"{BUSYBOX} not found: install Debian's busybox-static")
    dest = Path(dest)
    for d in ("bin", "sbin", "usr/bin", "usr/sbin", "etc", "root", "home", "var", "tmp", "proc",
              "sys", "dev"):
        (dest / d).mkdir(parents=True, exist_ok=True)
    os.chmod(dest / "tmp", 0o1777)
    os.chmod(dest / "root", 0o700)
    shutil.copy2(BUSYBOX, dest / "bin" / "busybox")
    os.chmod(dest / "bin" / "busybox", 0o755)
    for applet in busybox_applets():
        link = dest / "bin" / applet
        if not link.exists() and not link.is_symlink():
            link.symlink_to("busybox")
    (dest / "etc" / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
        "user:x:1000:1000:user:/tmp:/bin/sh\n")
    (dest / "etc" / "group").write_text("root:x:0:\ntty:x:5:\nuser:x:1000:\nnobody:x:65534:\n")
    for name in ("hostname", "hosts", "resolv.conf"):
        (dest / "etc" / name).write_text("")
    return dest


# -- layer tars ------------------------------------------------------------------------------

Entry = tuple[str, str, Any]  # (path, kind, payload): kind file|dir|symlink|whiteout|opaque


def _info(name: str, kind: bytes, mode: int, size: int = 0) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.size, info.mtime = kind, mode, size, EPOCH
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def tar_from_dir(src: Path) -> bytes:
    """A layer tar of a directory tree (sorted, root-owned, fixed mtimes)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for root, dirs, files in os.walk(src):
            dirs.sort()
            rel_root = os.path.relpath(root, src)
            for name in sorted(dirs) + sorted(files):
                full = os.path.join(root, name)
                rel = os.path.normpath(os.path.join(rel_root, name))
                st = os.lstat(full)
                mode = st.st_mode & 0o7777
                if os.path.islink(full):
                    info = _info(rel, tarfile.SYMTYPE, 0o777)
                    info.linkname = os.readlink(full)
                    tar.addfile(info)
                elif os.path.isdir(full):
                    tar.addfile(_info(rel, tarfile.DIRTYPE, mode))
                else:
                    with open(full, "rb") as f:
                        tar.addfile(_info(rel, tarfile.REGTYPE, mode, st.st_size), f)
    return buf.getvalue()


def tar_from_entries(entries: Iterable[Entry]) -> bytes:
    """A layer tar from ``(path, kind, payload)`` entries; whiteouts as Docker writes them."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path, kind, payload in entries:
            if kind == "dir":
                tar.addfile(_info(path, tarfile.DIRTYPE, payload or 0o755))
            elif kind == "file":
                data = payload.encode() if isinstance(payload, str) else payload
                tar.addfile(_info(path, tarfile.REGTYPE, 0o644, len(data)), io.BytesIO(data))
            elif kind == "symlink":
                info = _info(path, tarfile.SYMTYPE, 0o777)
                info.linkname = payload
                tar.addfile(info)
            elif kind == "whiteout":
                d, base = os.path.split(path)
                tar.addfile(_info(os.path.join(d, ".wh." + base), tarfile.REGTYPE, 0o644))
            elif kind == "opaque":
                tar.addfile(_info(os.path.join(path, ".wh..wh..opq"), tarfile.REGTYPE, 0o644))
            else:
                raise ValueError(kind)
    return buf.getvalue()


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def sha256_file(path: Path | str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def image_config(layers: list[bytes], *, cmd: list[str] | None = None, env: list[str] | None = None,
                 labels: dict[str, str] | None = None, history: list[str] | None = None,
                 created: str = CREATED) -> dict[str, Any]:
    diff_ids = [sha256(layer) for layer in layers]
    history = history or [f"ADD layer {i} in /" for i in range(len(layers))]
    hist: list[dict[str, Any]] = [{"created": created, "created_by": h} for h in history]
    if cmd is not None:
        hist.append({"created": created, "created_by": f'CMD {json.dumps(cmd)}', "empty_layer": True})
    return {
        "architecture": "amd64",
        "os": "linux",
        "created": created,
        "config": {"Env": env if env is not None else [PATH_ENV], "Cmd": cmd, "Labels": labels or None,
                   "WorkingDir": "", "Entrypoint": None},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": hist,
    }


def image_tar(path: Path | str, images: list[tuple[dict[str, Any], list[bytes], list[str]]]) -> Path:
    """Write a classic docker-save tar: ``<hex>.json`` configs, ``<hex>/layer.tar`` layers,
    ``manifest.json`` and ``repositories``. ``images`` is ``[(config, layer tars, tags)]``."""
    path = Path(path)
    manifest: list[Any] = []
    repositories: dict[str, Any] = {}
    written: set[Any] = set()
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        def add(name: str, data: bytes) -> None:
            tar.addfile(_info(name, tarfile.REGTYPE, 0o644, len(data)), io.BytesIO(data))

        for config, layers, tags in images:
            config_bytes = json.dumps(config, separators=(",", ":")).encode()
            config_hex = sha256(config_bytes)[7:]
            layer_names = []
            for layer in layers:
                lhex = sha256(layer)[7:]
                if lhex not in written:
                    written.add(lhex)
                    tar.addfile(_info(lhex, tarfile.DIRTYPE, 0o755))
                    add(f"{lhex}/VERSION", b"1.0")
                    add(f"{lhex}/layer.tar", layer)
                layer_names.append(f"{lhex}/layer.tar")
            add(f"{config_hex}.json", config_bytes)
            manifest.append({"Config": f"{config_hex}.json", "RepoTags": tags or None, "Layers": layer_names})
            for t in tags:
                repo, _, tag = t.rpartition(":") if ":" in t.rsplit("/", 1)[-1] else (t, "", "latest")
                repositories.setdefault(repo, {})[tag] = layer_names[-1].split("/")[0] if layer_names else ""
        add("manifest.json", json.dumps(manifest).encode())
        add("repositories", json.dumps(repositories).encode())
    return path


def busybox_layer() -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        return tar_from_dir(busybox_rootfs(Path(tmp) / "rootfs"))


def busybox_image_tar(path: Path | str, tag: str = "busybox:latest") -> Path:
    """A one-layer busybox image as a docker-save tar; ``CMD ["sh"]``."""
    layer = busybox_layer()
    config = image_config([layer], cmd=["sh"], history=["ADD busybox rootfs in /"])
    return image_tar(path, [(config, [layer], [tag] if tag else [])])


MULTILAYER_TAG = "multilayer:latest"


def multilayer_layers() -> list[bytes]:
    """busybox, then files, then deletions: ``/data/gone`` whited out, ``/data/opaque`` opaque."""
    base = busybox_layer()
    add = tar_from_entries([
        ("data", "dir", 0o755),
        ("data/keep", "file", "kept\n"),
        ("data/gone", "file", "deleted in layer 3\n"),
        ("data/opaque", "dir", 0o755),
        ("data/opaque/old1", "file", "hidden by the opaque whiteout\n"),
        ("data/opaque/old2", "file", "hidden by the opaque whiteout\n"),
        ("data/link", "symlink", "keep"),
    ])
    delete = tar_from_entries([
        ("data", "dir", 0o755),
        ("data/gone", "whiteout", None),
        ("data/opaque", "dir", 0o755),
        ("data/opaque", "opaque", None),
        ("data/opaque/new", "file", "the only file left here\n"),
        ("data/added", "file", "added in layer 3\n"),
    ])
    return [base, add, delete]


def multilayer_image_tar(path: Path | str, tag: str = MULTILAYER_TAG) -> Path:
    layers = multilayer_layers()
    config = image_config(layers, cmd=["sh"], labels={"dockyard.test": "multilayer"},
                          history=["ADD busybox rootfs in /", "ADD data in /data", "RUN rm /data/gone"])
    return image_tar(path, [(config, layers, [tag] if tag else [])])


def _layer_with_member(info: tarfile.TarInfo, data: bytes = b"") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info.size = len(data) if info.isreg() else 0
        tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return buf.getvalue()


def hostile_image_tars(dest: Path | str) -> dict[str, Path]:
    """Archives ``docker load`` must refuse whole, leaving the data root as it was.

    Several create good layers first (a unique one next to busybox's), so that refusing
    them exercises the rollback, and most try to retag ``busybox:latest``.
    """
    import gzip

    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    base = busybox_layer()
    extra = tar_from_entries([("hostile", "dir", 0o755), ("hostile/ok", "file", "a good layer first\n")])
    good_cfg = image_config([base, extra], cmd=["sh"])
    out: dict[str, Path] = {}

    def write(name: str, members: dict[str, bytes], manifest: Any | None = None) -> None:
        path = dest / f"{name}.tar"
        with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
            for mname, data in members.items():
                tar.addfile(_info(mname, tarfile.REGTYPE, 0o644, len(data)), io.BytesIO(data))
            if manifest is not None:
                data = json.dumps(manifest).encode()
                tar.addfile(_info("manifest.json", tarfile.REGTYPE, 0o644, len(data)), io.BytesIO(data))
        out[name] = path

    def blobs(*layers: bytes) -> dict[str, bytes]:
        return {f"blobs/sha256/{sha256(l)[7:]}": l for l in layers}

    def cfg_blob(cfg: dict[str, Any]) -> tuple[str, bytes]:
        data = json.dumps(cfg, separators=(",", ":")).encode()
        return f"blobs/sha256/{sha256(data)[7:]}", data

    def entry(cfg_name: str, layers: list[bytes], tags: list[str] | None = None) -> dict[str, Any]:
        return {"Config": cfg_name, "RepoTags": tags if tags is not None else ["busybox:latest"],
                "Layers": [f"blobs/sha256/{sha256(l)[7:]}" for l in layers]}

    # 1. the manifest names a layer the archive does not have
    cname, cdata = cfg_blob(good_cfg)
    write("missing-blob", {cname: cdata, **blobs(base)}, [entry(cname, [base, extra])])
    # 2. the config's content does not match the digest naming it
    wrong = "blobs/sha256/" + "0" * 64
    write("config-digest-mismatch", {wrong: cdata, **blobs(base, extra)}, [entry(wrong, [base, extra])])
    # 3. a layer's content does not match the config's diff id (caught after unpacking it)
    tampered = tar_from_entries([("hostile", "dir", 0o755), ("hostile/ok", "file", "tampered!!\n")])
    mism = {cname: cdata, **blobs(base), "tampered/layer.tar": tampered}
    bad_entry = entry(cname, [base, extra])
    bad_entry["Layers"][1] = "tampered/layer.tar"  # a name that does not claim a digest
    write("layer-digest-mismatch", mism, [bad_entry])
    # 4. a truncated gzip of a good archive
    good = dest / "_good.tar"
    image_tar(good, [(good_cfg, [base, extra], ["busybox:latest"])])
    gz = gzip.compress(good.read_bytes(), compresslevel=1)
    (dest / "truncated-gzip.tar.gz").write_bytes(gz[: len(gz) * 2 // 3])
    out["truncated-gzip"] = dest / "truncated-gzip.tar.gz"
    good.unlink()
    # 5-8. layer tars the storage driver must refuse (their digests are right)
    evil: dict[str, bytes] = {}
    evil["dotdot-member"] = _layer_with_member(_info("../evil", tarfile.REGTYPE, 0o644), b"evil")
    evil["absolute-member"] = _layer_with_member(_info("/tmp/evil", tarfile.REGTYPE, 0o644), b"evil")
    link = _info("esc", tarfile.SYMTYPE, 0o777)
    link.linkname = "../../../../../../tmp"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(link)
        tar.addfile(_info("esc/evil", tarfile.REGTYPE, 0o644, 4), io.BytesIO(b"evil"))
    evil["symlink-escape"] = buf.getvalue()
    hard = _info("hl", tarfile.LNKTYPE, 0o644)
    hard.linkname = "../../../../etc/passwd"
    evil["hardlink-escape"] = _layer_with_member(hard)
    for name, layer in evil.items():
        cfg = image_config([base, extra, layer])
        cn, cd = cfg_blob(cfg)
        write(name, {cn: cd, **blobs(base, extra, layer)}, [entry(cn, [base, extra, layer])])
    # 9. two images: the first is fine, the second is not: nothing of either may stay
    other = tar_from_entries([("second", "file", "second image\n")])
    cfg2 = image_config([base, other])
    cn2, cd2 = cfg_blob(cfg2)
    members = {cname: cdata, cn2: cd2, **blobs(base, extra)}
    members["tampered/layer.tar"] = tampered
    second = entry(cn2, [base, other])
    second["Layers"][1] = "tampered/layer.tar"
    write("second-image-bad", members, [entry(cname, [base, extra], ["good:1"]), second])
    # 10. OCI layout whose layer blob does not match its descriptor
    oci_manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                               "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                          "digest": sha256(cdata), "size": len(cdata)},
                               "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                                           "digest": sha256(l), "size": len(l)} for l in (base, extra)]}).encode()
    index = json.dumps({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": sha256(oci_manifest),
        "size": len(oci_manifest), "annotations": {"io.containerd.image.name": "docker.io/library/busybox:latest"}}],
    }).encode()
    members = {cname: cdata, f"blobs/sha256/{sha256(oci_manifest)[7:]}": oci_manifest, **blobs(base),
               f"blobs/sha256/{sha256(extra)[7:]}": tampered, "index.json": index,
               "oci-layout": b'{"imageLayoutVersion":"1.0.0"}'}
    write("oci-blob-mismatch", members)
    # 11. not an archive at all
    (dest / "garbage.tar").write_bytes(b"this is not a tar archive\n" * 100)
    out["garbage"] = dest / "garbage.tar"
    return out


def image_id_of(tar_path: Path | str) -> str:
    """The image ID (config digest) of the first image in a docker-save tar."""
    with tarfile.open(tar_path) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
        config = tar.extractfile(manifest[0]["Config"]).read()  # type: ignore[union-attr]
    return sha256(config)


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m dockyard.testing.images",
                                     description="Build the offline busybox test image.")
    parser.add_argument("output", nargs="?", help="write the docker-save tar here")
    parser.add_argument("--tag", default="busybox:latest")
    parser.add_argument("--multilayer", action="store_true", help="build the multi-layer test image instead")
    parser.add_argument("--load", action="store_true", help="load it into a running dockyardd")
    parser.add_argument("-H", "--host", help="daemon address (default: $DOCKYARD_HOST, $DOCKER_HOST, "
                                             "unix:///run/dockyard.sock)")
    args = parser.parse_args(argv)
    if not args.output and not args.load:
        parser.error("give an output file, --load, or both")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.output) if args.output else Path(tmp) / "image.tar"
        if args.multilayer:
            multilayer_image_tar(out, args.tag if args.tag != "busybox:latest" else MULTILAYER_TAG)
        else:
            busybox_image_tar(out, args.tag)
        if args.output:
            print(f"wrote {out} ({image_id_of(out)})", file=sys.stderr)
        if args.load:
            from dockyard_cli.client import Client

            client = Client(args.host)
            with open(out, "rb") as f:
                response = client.request("POST", "/images/load", params={"quiet": "1"}, data=f.read(),
                                          headers={"Content-Type": "application/x-tar"}, stream=True)
            failed = False
            for msg in response.iter_json():
                if "error" in msg:
                    print(msg["error"], file=sys.stderr)
                    failed = True
                elif "stream" in msg:
                    print(msg["stream"], end="")
            response.close()
            return 1 if failed else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
