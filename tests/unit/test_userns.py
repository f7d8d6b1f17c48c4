"""--userns-remap USER[:GROUP]: the ranges of /etc/subuid and /etc/subgid (by name or id, several
mapped one after another), what is refused, and id translation. No root needed."""

import pytest

from dockyard import userns
from dockyard.errors import ConfigError, InvalidArgument


def files(tmp_path, subuid, subgid):
    u, g = tmp_path / "subuid", tmp_path / "subgid"
    u.write_text(subuid)
    g.write_text(subgid)
    return {"subuid": u, "subgid": g}


def test_ranges_by_name_and_id_mapped_one_after_another(tmp_path):
    f = files(tmp_path, "other:100000:65536\ndaemon:300000:1000\n1:200000:500\n", "daemon:400000:65536\n")
    m = userns.resolve("daemon", **f)  # no group: the user's name (Debian's daemon group)
    assert (m.user, m.group) == ("daemon", "daemon")
    assert m.uid_map() == [(0, 200000, 500), (500, 300000, 1000)]  # sorted by host start
    assert m.gid_map() == [(0, 400000, 65536)]
    assert (m.root_uid, m.root_gid, m.dirname) == (200000, 400000, "200000.400000")
    assert m.uid_to_host(499) == 200499 and m.uid_to_host(500) == 300000
    assert m.uid_to_container(300001) == 501
    with pytest.raises(InvalidArgument, match="Container ID 1500 cannot be mapped"):
        m.uid_to_host(1500)


def test_user_and_group_by_number(tmp_path):
    f = files(tmp_path, "1:100000:65536\n", "1:100000:65536\n")
    m = userns.resolve("1:1", **f)
    assert (m.user, m.root_uid, m.root_gid) == ("daemon", 100000, 100000)


@pytest.mark.parametrize("value, subuid, subgid, message", [
    ("no-such-user-xyz", "", "", "no such user"),
    ("daemon:no-such-group-xyz", "daemon:1:2\n", "", "no such group"),
    ("daemon", "", "daemon:100000:65536\n", "no subuid ranges"),
    ("daemon", "daemon:100000:65536\n", "", "no subgid ranges"),
    ("root", "root:100000:65536\n", "root:100000:65536\n", "cannot remap to root"),
])
def test_refused(tmp_path, value, subuid, subgid, message):
    with pytest.raises(ConfigError, match=message):
        userns.resolve(value, **files(tmp_path, subuid, subgid))


def test_free_range_per_file(tmp_path):
    f = files(tmp_path, "a:100000:65536\nb:170000:1000\n", "")
    assert userns._free_start((f["subuid"],), 65536) == 171000
    assert userns._free_start((f["subgid"],), 65536) == 100000


def test_refusals_only_for_remapped_containers():
    m = userns.IdMapping("u", "g", (userns.IdRange(0, 100000, 65536),), (userns.IdRange(0, 100000, 65536),))
    with pytest.raises(InvalidArgument, match="privileged mode is incompatible"):
        userns.check_container(m, {"Privileged": True})
    userns.check_container(m, {"Privileged": True, "UsernsMode": "host"})
    userns.check_container(None, {"Privileged": True, "NetworkMode": "host", "PidMode": "host"})


def test_config_key_and_flag(tmp_path):
    from dockyard import config as cfg

    path = tmp_path / "d.toml"
    path.write_text('userns-remap = "dockremap:dockremap"\n')
    assert cfg.build({}, path).userns_remap == "dockremap:dockremap"
    assert cfg.build({"userns_remap": "default"}).userns_remap == "default"
    with pytest.raises(ConfigError, match="userns-remap"):
        cfg.build({"userns_remap": "default"}, path)
    assert cfg.DaemonConfig().userns_remap is None
