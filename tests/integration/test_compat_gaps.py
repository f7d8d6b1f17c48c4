"""Docker-compatibility gaps left by issue 15, checked with the real docker CLI / docker-py
against dockerd 20.10's answers:

* ``docker ps --filter name=...``: moby's ``filters.Args.Match`` over ``"/" + name`` (an
  exact match or a regular expression found in it), so ``^/web$`` is one name; a value that
  is no valid expression matches nothing (dockerd answers 200 with ``[]``, not 400).
* ``docker inspect``: the whole HostConfig, every field of the v1.44 spec (but the ``omitempty``
  ones dockerd leaves out when unset), with dockerd's defaults for what the create request left
  out (``"CpuShares": 0``, ``"PidsLimit": null``).
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import yaml

SPEC = Path("/work/shared/reference/docker-engine-api-v1.44.yaml")
if not SPEC.exists():
    SPEC = Path(__file__).resolve().parents[1] / "fuzz" / "docker-engine-api-v1.44.yaml"



def _ok(d, *args: str) -> str:
    r = d.docker(*args)
    assert r.returncode == 0, (args, r.stderr.decode())
    return r.stdout.decode().strip()


def test_ps_name_filter_is_a_regex_over_slash_name(d, client):
    base = f"gaps-{secrets.token_hex(3)}"
    exact = _ok(d, "create", "--network", "none", "--name", base, "busybox", "true")
    longer = _ok(d, "create", "--network", "none", "--name", base + "-2", "busybox", "true")

    def names(value: str) -> list[str]:
        out = _ok(d, "ps", "-a", "--no-trunc", "--format", "{{.ID}}", "--filter", f"name={value}")
        return sorted(out.split())

    assert names(f"^/{base}$") == [exact]
    assert names(f"{base}$") == [exact]
    assert names(f"/{base}") == sorted([exact, longer])
    assert names(base) == sorted([exact, longer])
    assert names(f"^{base}$") == []  # the name is matched with its leading "/"
    assert names(f"^/{base}-[0-9]$") == [longer]
    # an invalid expression matches nothing, and is no error (dockerd: 200 [])
    r = client.api._get(client.api._url("/containers/json"),
                        params={"all": 1, "filters": json.dumps({"name": ["(", f"^/{base}$"]})})
    assert r.status_code == 200, r.text
    assert [c["Id"] for c in r.json()] == [exact]


def _spec_host_config_keys() -> set[str]:
    defs = yaml.safe_load(SPEC.read_text())["definitions"]
    keys: set[str] = set()
    for part in defs["HostConfig"]["allOf"]:
        keys |= set((defs[part["$ref"].rsplit("/", 1)[1]] if "$ref" in part else part)["properties"])
    return keys


def test_inspect_shows_every_host_config_field_with_dockers_defaults(d, client):
    from dockyard.containers.hostconfig import OMITEMPTY

    keys = _spec_host_config_keys() - set(OMITEMPTY)  # dockerd leaves these out when unset
    assert len(keys) > 60
    r = client.api._post_json(client.api._url("/containers/create"),
                              data={"Image": "busybox", "Cmd": ["true"], "HostConfig": {}})
    assert r.status_code == 201, r.text
    cid = r.json()["Id"]
    hc = client.api.inspect_container(cid)["HostConfig"]
    assert keys - set(hc) == set()
    assert hc["CpuShares"] == 0 and hc["Memory"] == 0 and hc["NanoCpus"] == 0 and hc["CpuQuota"] == 0
    assert hc["PidsLimit"] is None and hc["Ulimits"] in (None, []) and hc["MemorySwappiness"] is None
    assert hc["OomKillDisable"] is False and hc["CgroupParent"] == "" and hc["ConsoleSize"] == [0, 0]
    assert hc["Devices"] == [] and hc["BlkioDeviceReadBps"] == [] and hc["VolumeDriver"] == ""  # 24-25 shape
    # what the request set is kept; the CLI's container too has every field
    cli = _ok(d, "create", "--network", "none", "--cpu-shares", "512", "--pids-limit", "50", "busybox", "true")
    hc = client.api.inspect_container(cli)["HostConfig"]
    assert keys - set(hc) == set() and hc["CpuShares"] == 512 and hc["PidsLimit"] == 50
    # the Go template the CLI users write works on fields nobody sent
    assert _ok(d, "inspect", "-f", "{{.HostConfig.CpuShares}} {{.HostConfig.Memory}} {{.HostConfig.KernelMemoryTCP}}",
               cid) == "0 0 0"
