"""``GET /containers/json`` keeps each row's encoded bytes (issue 18: list CPU per request) and
makes them again when anything the row shows changed. Each field a row shows is changed here
through the API, and the next list must show it: the name, the state and status, the image
(retagged away), the networks (connected, disconnected, an endpoint's address), the published
ports, and ``size``. Every listing is also checked against the uncached rendering of the same
rows (``size=1`` renders each row anew) and against inspect."""

from __future__ import annotations

import secrets

import pytest

pytestmark = pytest.mark.privileged


def _row(client, cid: str, **params) -> dict:
    rows = [r for r in client.api.containers(all=True, **params) if r["Id"] == cid]
    assert len(rows) == 1, rows
    return rows[0]


def _fresh(client, cid: str) -> dict:
    """The cached row, checked against a row made anew and against inspect."""
    row = _row(client, cid)
    anew = dict(_row(client, cid, size=True))
    assert anew.pop("SizeRootFs") == 0 and isinstance(anew.pop("SizeRw"), int)
    for r in (row, anew):  # the clock moves between the two listings
        r.pop("Status")
    assert row == anew
    row = _row(client, cid)
    info = client.api.inspect_container(cid)
    assert row["Names"] == [info["Name"]]
    assert row["State"] == info["State"]["Status"]
    assert row["NetworkSettings"]["Networks"] == info["NetworkSettings"]["Networks"]
    assert row["ImageID"] == info["Image"]
    return row


def test_each_change_through_the_api_is_in_the_next_list(d, client):
    tag = f"listrows-{secrets.token_hex(3)}:1"
    client.api.tag("busybox", *tag.split(":"))
    net = client.networks.create(f"listrows-{secrets.token_hex(3)}")
    name = f"listrows-{secrets.token_hex(3)}"
    cid = client.api.create_container(
        tag, ["sleep", "600"], name=name, labels={"a": "1"}, ports=[80],
        host_config=client.api.create_host_config(port_bindings={80: None}, network_mode=net.name))["Id"]
    try:
        row = _fresh(client, cid)
        assert row["State"] == "created" and row["Status"] == "Created"
        assert row["Image"] == tag and row["Labels"] == {"a": "1"} and row["Command"] == "sleep 600"
        assert row["Ports"] == [] and list(row["NetworkSettings"]["Networks"]) == [net.name]

        client.api.rename(cid, name + "-b")
        assert _fresh(client, cid)["Names"] == [f"/{name}-b"]

        client.api.disconnect_container_from_network(cid, net.id)
        assert _fresh(client, cid)["NetworkSettings"]["Networks"] == {}
        client.api.connect_container_to_network(cid, net.id, aliases=["x1"])
        row = _fresh(client, cid)
        assert list(row["NetworkSettings"]["Networks"]) == [net.name]

        client.api.start(cid)
        row = _fresh(client, cid)
        assert row["State"] == "running" and row["Status"].startswith("Up ")
        endpoint = row["NetworkSettings"]["Networks"][net.name]
        assert endpoint["IPAddress"]  # set in place on the endpoint at start
        assert [(p["PrivatePort"], p["Type"]) for p in row["Ports"]] == [(80, "tcp")] * len(row["Ports"])
        assert row["Ports"] and all(p["PublicPort"] for p in row["Ports"])

        client.api.pause(cid)
        row = _fresh(client, cid)
        assert row["State"] == "paused" and row["Status"].endswith("(Paused)")
        client.api.unpause(cid)
        assert _fresh(client, cid)["State"] == "running"

        client.api.disconnect_container_from_network(cid, net.id)
        assert _fresh(client, cid)["NetworkSettings"]["Networks"] == {}
        client.api.connect_container_to_network(cid, net.id)
        assert _fresh(client, cid)["NetworkSettings"]["Networks"][net.name]["IPAddress"]

        client.api.kill(cid)
        client.api.wait(cid)
        row = _fresh(client, cid)
        assert row["State"] == "exited" and row["Status"].startswith("Exited (137) ")
        assert row["Ports"] == []

        client.api.commit(cid, *tag.split(":"))  # the name now names another image: the id is shown
        assert _fresh(client, cid)["Image"] == row["ImageID"]
        client.api.tag("busybox", *tag.split(":"))  # and the name again once it names the image
        assert _fresh(client, cid)["Image"] == tag

        client.api.remove_image(tag)  # the name no longer names the image: its id is shown
        row = _fresh(client, cid)
        assert row["Image"] == row["ImageID"]

        client.api.tag("busybox", *tag.split(":"))  # and again once it does
        assert _fresh(client, cid)["Image"] == tag
    finally:
        client.api.remove_container(cid, force=True)
        net.remove()
        client.api.remove_image(tag) if any(tag in (i.get("RepoTags") or []) for i in client.api.images()) else None
