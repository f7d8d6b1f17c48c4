"""``GET /distribution/{name}/json``: what a registry holds for a reference, without pulling
(docker-py ``images.get_registry_data``, compose's platform checks).

As moby's ``distributionInspect``: the descriptor of the manifest the reference names (a
manifest list or index stays one), and the platforms it serves: every entry's platform for a
list, or the platform in the image config for a single manifest.
"""

from __future__ import annotations

from typing import Any

from ..errors import Forbidden, NotFound, Unauthorized
from ..images import reference as R
from .auth import Credentials
from .client import (LIST_TYPES, MANIFEST_TYPES, MAX_CONFIG, BadManifest, RegistryClient, RegistryUnavailable, Settings,
                     endpoints)
from .pull import _digest_of, _json_object


def _platform(p: dict[str, Any]) -> dict[str, Any]:
    out = {"architecture": p.get("architecture") or "", "os": p.get("os") or ""}
    for key in ("variant", "os.version", "os.features"):
        if p.get(key):
            out[key] = p[key]
    return out


async def inspect(ref: R.Reference, creds: Credentials, settings: Settings) -> dict[str, Any]:
    last: Exception | None = None
    for ep in endpoints(ref.domain, settings):
        try:
            async with RegistryClient(ep, ref.path, creds if not ep.mirror else Credentials(),
                                      settings=settings) as client:
                return await _inspect(client, ref)
        except (Unauthorized, Forbidden, RegistryUnavailable, NotFound) as exc:
            if not ep.mirror:
                raise
            last = exc
    raise last or RegistryUnavailable("no registry endpoint")


async def _inspect(client: RegistryClient, ref: R.Reference) -> dict[str, Any]:
    what = ref.familiar
    body, media, digest = await client.get_manifest(ref.digest or ref.tag or "latest", what)
    manifest = _json_object(body, what)
    if media in LIST_TYPES:
        platforms = [_platform(m.get("platform") or {}) for m in manifest.get("manifests") or []
                     if isinstance(m, dict)]
    elif media in MANIFEST_TYPES:
        config = manifest.get("config")
        if not isinstance(config, dict):
            raise BadManifest(f"invalid manifest for {what}: no config")
        blob = await client.get_small_blob(_digest_of(config), MAX_CONFIG, "image config")
        platforms = [_platform(_json_object(blob, f"the image config of {what}"))]
    else:
        raise BadManifest(f"unsupported manifest media type {media!r} for {what}")
    return {"Descriptor": {"mediaType": media, "digest": digest, "size": len(body)}, "Platforms": platforms}
