"""contrib/dockyardd.toml: the commented sample lists every key the daemon accepts, and with
every setting uncommented it is a valid config for the real loader, each default shown being
the daemon's default."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from dockyard import config as cfg
from dockyard.errors import ConfigError

SAMPLE = Path(__file__).resolve().parents[2] / "contrib" / "dockyardd.toml"
SETTING = re.compile(r"^# ((?:[A-Za-z][A-Za-z0-9-]*\s*=.*)|(?:\[[a-z0-9.-]+\]))$")


def _uncommented(text: str) -> tuple[str, set[str]]:
    """The sample with every "# key = value" / "# [table]" line uncommented, and the keys
    whose explanation marks them as an example (unset by default)."""
    out, examples, example_next, in_table = [], set(), False, False
    for line in text.splitlines():
        m = SETTING.match(line)
        if m:
            setting = m.group(1)
            in_table = in_table or setting.startswith("[")
            if setting.startswith("[") or not in_table:  # a top-level key or a table's own key
                key = setting.split("=")[0].strip().strip("[]").split(".")[0]
                if example_next:
                    examples.add(key)
            out.append(setting)
        else:
            assert line == "" or line.startswith("##"), f"neither a setting nor an explanation: {line!r}"
            if line.startswith("##"):
                example_next = "(example)" in line
            out.append(line)
    return "\n".join(out) + "\n", examples


def test_sample_loads_with_the_real_loader_and_shows_the_defaults(tmp_path: Path) -> None:
    text = SAMPLE.read_text()
    cfg.build({}, SAMPLE)  # as shipped (all commented out): valid, and the defaults
    assert cfg.build({}, SAMPLE) == cfg.DaemonConfig(config_file=SAMPLE)
    uncommented, examples = _uncommented(text)
    path = tmp_path / "all.toml"
    path.write_text(uncommented)
    values = cfg.read_file(path)
    missing = sorted(set(cfg.FILE_KEYS) - {cfg.FIELD_TO_KEY[f] for f in values})
    assert not missing, f"keys the daemon accepts but the sample does not list: {missing}"
    config = cfg.build({}, path)
    defaults = cfg.DaemonConfig()
    for field in dataclasses.fields(cfg.DaemonConfig):
        key = cfg.FIELD_TO_KEY.get(field.name)
        if key is None or key in examples:
            continue
        assert getattr(config, field.name) == getattr(defaults, field.name), f"{key}: the sample's value is not the default"


def test_sample_examples_are_marked_only_where_the_default_is_unset_or_empty(tmp_path: Path) -> None:
    _, examples = _uncommented(SAMPLE.read_text())
    defaults = cfg.DaemonConfig()
    for key in examples:
        value = getattr(defaults, cfg.FILE_KEYS[key])
        assert value in (None, (), {}, False), f"{key} is marked as an example but has a default {value!r}"


def test_unknown_keys_stay_fatal(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(SAMPLE.read_text() + 'no-such-key = 1\n')
    with pytest.raises(ConfigError, match="unknown option"):
        cfg.build({}, path)
