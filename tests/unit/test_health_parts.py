"""Healthcheck pieces without a daemon: the create-time merge with the image's HEALTHCHECK
(Docker's daemon/commit.go merge) and the state kept across restarts."""

from __future__ import annotations

from dockyard.containers import configure
from dockyard.containers.health import MAX_LOG, STARTING, Health, merge

IMAGE = {"Test": ["CMD-SHELL", "curl -f localhost"], "Interval": 5, "Timeout": 6, "StartPeriod": 7, "Retries": 2}


def test_no_healthcheck_given_takes_the_images():
    assert merge(None, IMAGE) == IMAGE
    assert merge({}, IMAGE) == IMAGE
    assert merge(None, None) is None


def test_partial_options_are_completed_from_the_image():
    assert merge({"Test": None, "Retries": 9}, IMAGE) == {**IMAGE, "Retries": 9}
    assert merge({"Test": [], "Interval": 1, "Timeout": 0}, IMAGE) == {**IMAGE, "Interval": 1}
    own = {"Test": ["CMD", "true"], "StartInterval": 3}
    assert merge(own, IMAGE) == {**IMAGE, "Test": ["CMD", "true"], "StartInterval": 3}
    assert merge({"Retries": 4}, None) == {"Retries": 4}  # nothing to complete from


def test_no_healthcheck_keeps_none_as_the_test():
    assert merge({"Test": ["NONE"]}, IMAGE)["Test"] == ["NONE"]


def test_merge_config_shows_the_merged_healthcheck():
    cfg = configure.merge_config({"Cmd": ["x"], "Healthcheck": {"Test": [], "Timeout": 1}}, {"Healthcheck": IMAGE})
    assert cfg["Healthcheck"] == {**IMAGE, "Timeout": 1}
    assert "Healthcheck" not in configure.merge_config({"Cmd": ["x"], "Healthcheck": None}, {})
    assert configure.merge_config({"Cmd": ["x"], "Healthcheck": None}, {"Healthcheck": IMAGE})["Healthcheck"] == IMAGE


def test_a_restart_starts_over_but_keeps_the_log():
    saved = {"Status": "unhealthy", "FailingStreak": 4,
             "Log": [{"Start": str(i), "End": str(i), "ExitCode": 1, "Output": ""} for i in range(7)]}
    h = Health.restarted(saved)
    assert (h.status, h.failing_streak) == (STARTING, 0)
    assert [r["Start"] for r in h.log] == [str(i) for i in range(7 - MAX_LOG, 7)]
    assert Health.restarted(None).to_json() == {"Status": "starting", "FailingStreak": 0, "Log": []}
