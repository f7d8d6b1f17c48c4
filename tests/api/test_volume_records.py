"""A volume whose driver is no longer installed (a third-party plugin removed) stays visible."""

import json


def test_volume_of_a_missing_driver_is_listed_and_inspected(make_daemon):
    d = make_daemon(start=False)
    meta = d.data_root / "volumes" / "_meta"
    meta.mkdir(parents=True)
    (meta / "orphan.json").write_text(json.dumps({
        "Name": "orphan", "Driver": "no-such-volume-driver", "Options": {}, "Labels": {},
        "CreatedAt": "2026-01-01T00:00:00Z", "CreatedNs": 1_767_225_600_000_000_000}))
    d.start()
    client = d.docker_client()
    try:
        listed = {v["Name"]: v for v in client.api.volumes()["Volumes"] or []}
        assert listed["orphan"]["Driver"] == "no-such-volume-driver"
        assert listed["orphan"]["Scope"] == "local"
        assert client.api.inspect_volume("orphan")["Mountpoint"] == ""
        client.api.prune_volumes()  # its driver is gone: skipped, not a 500
        assert "orphan" in {v["Name"] for v in client.api.volumes()["Volumes"] or []}
    finally:
        client.close()
