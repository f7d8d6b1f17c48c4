"""Healthchecks: ``--health-*`` flags and image HEALTHCHECKs run inside the container,
``State.Health`` in inspect, ``health_status`` events, the ``ps`` status."""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from dockyard.testing.daemon import wait_for

pytestmark = pytest.mark.privileged


def health(d, cid: str) -> dict:
    return json.loads(d.docker("inspect", cid).stdout)[0]["State"].get("Health") or {}


def status(d, cid: str) -> str:
    return d.docker("inspect", "--format", "{{.State.Health.Status}}", cid).stdout.decode().strip()


def config(d, cid: str) -> dict:
    return json.loads(d.docker("inspect", cid).stdout)[0]["Config"]


def run(d, *args: str) -> str:
    r = d.docker("run", "-d", *args)
    assert r.returncode == 0, r.stderr
    return r.stdout.decode().strip()


def test_passing_check_turns_healthy(d, tmp_path):
    since = str(time.time())
    # the check fails until the test creates /gate/ok: "starting" is seen however slow the
    # machine is (a check that passes at once can be healthy before the first inspect)
    cid = run(d, "-v", f"{tmp_path}:/gate", "--health-cmd", "echo ok; test -e /gate/ok", "--health-interval",
              "100ms", "--health-retries", "1000000", "busybox", "sleep", "60")
    assert status(d, cid) == "starting"
    ps = d.docker("ps", "--filter", f"id={cid}", "--format", "{{.Status}}").stdout.decode()
    assert "(health: starting)" in ps
    (tmp_path / "ok").write_text("")
    wait_for(lambda: status(d, cid) == "healthy")
    h = health(d, cid)
    assert h["FailingStreak"] == 0
    assert h["Log"][-1]["ExitCode"] == 0 and h["Log"][-1]["Output"] == "ok\n"
    assert h["Log"][-1]["Start"] <= h["Log"][-1]["End"]
    wait_for(lambda: len(health(d, cid)["Log"]) == 5)
    first = health(d, cid)["Log"][0]["Start"]
    wait_for(lambda: health(d, cid)["Log"][0]["Start"] != first)
    assert len(health(d, cid)["Log"]) == 5  # only the last five results are kept
    ps = d.docker("ps", "--filter", f"id={cid}", "--format", "{{.Status}}").stdout.decode()
    assert ps.strip().endswith("(healthy)")
    assert cid in d.docker("ps", "-q", "--no-trunc", "--filter", "health=healthy").stdout.decode()
    events = d.docker("events", "--since", since, "--until", str(time.time()), "--filter", f"container={cid}",
                      "--format", "{{.Action}}").stdout.decode().splitlines()
    assert "health_status: healthy" in events
    execs = json.loads(d.docker("inspect", cid).stdout)[0]["ExecIDs"]
    assert not execs  # probes are not the container's execs
    d.docker("rm", "-f", cid)
    removed = str(time.time())
    time.sleep(0.5)  # five intervals: a probe task that survived the container would show up
    later = d.docker("events", "--since", removed, "--until", str(time.time()), "--filter", f"container={cid}",
                     "--format", "{{.Action}}").stdout.decode()
    assert "exec_create" not in later


def test_failing_check_turns_unhealthy_and_stops_with_the_container(d):
    since = str(time.time())
    cid = run(d, "--health-cmd", "echo bad >&2; exit 3", "--health-interval", "100ms", "--health-retries", "2",
              "busybox", "sleep", "60")
    wait_for(lambda: status(d, cid) == "unhealthy")
    h = health(d, cid)
    assert h["FailingStreak"] >= 2
    assert h["Log"][-1]["ExitCode"] == 3 and "bad" in h["Log"][-1]["Output"]
    events = d.docker("events", "--since", since, "--until", str(time.time()), "--filter", f"container={cid}",
                      "--filter", "event=health_status", "--format", "{{.Action}}").stdout.decode().splitlines()
    assert events == ["health_status: unhealthy"]
    assert "(unhealthy)" in d.docker("ps", "--filter", f"id={cid}", "--format", "{{.Status}}").stdout.decode()
    d.docker("stop", "-t", "0", cid)
    log = health(d, cid)["Log"]
    time.sleep(0.4)  # four intervals: a probe still running would add a result
    assert health(d, cid)["Log"] == log  # no probe runs while stopped (the log keeps 5: compare it whole)


def test_timed_out_check_is_killed(d):
    cid = run(d, "--health-cmd", "sleep 30", "--health-interval", "100ms", "--health-timeout", "200ms",
              "--health-retries", "1", "busybox", "sleep", "60")
    wait_for(lambda: status(d, cid) == "unhealthy")
    last = health(d, cid)["Log"][-1]
    assert last["ExitCode"] == -1 and "exceeded timeout" in last["Output"]
    top = d.docker("top", cid).stdout.decode()
    wait_for(lambda: "sleep 30" not in d.docker("top", cid).stdout.decode())  # the probe was killed
    assert "sleep 60" in top


def test_image_healthcheck_and_no_healthcheck(d, tmp_path):
    (tmp_path / "Dockerfile").write_text("FROM busybox\nHEALTHCHECK --interval=100ms --retries=1 CMD false\n")
    r = subprocess.run(["docker", "-H", d.url, "build", "-q", "-t", "dy-health:1", str(tmp_path)],
                       capture_output=True, env={"DOCKER_BUILDKIT": "0", "PATH": "/usr/local/bin:/usr/bin:/bin",
                                                 "DOCKER_CONFIG": str(d.base / "docker-config")})
    assert r.returncode == 0, r.stderr
    cid = run(d, "dy-health:1", "sleep", "60")
    wait_for(lambda: status(d, cid) == "unhealthy")
    off = run(d, "--no-healthcheck", "dy-health:1", "sleep", "60")
    assert health(d, off) == {}
    assert config(d, off)["Healthcheck"] == {"Test": ["NONE"], "Interval": 100_000_000, "Retries": 1}
    tuned = run(d, "--health-retries", "3", "dy-health:1", "sleep", "60")  # keeps the image's test
    # merged at create time, as Docker: the container's Config shows the image's test and interval
    assert config(d, tuned)["Healthcheck"] == {"Test": ["CMD-SHELL", "false"], "Interval": 100_000_000,
                                               "Retries": 3}
    wait_for(lambda: status(d, tuned) == "unhealthy")
    assert health(d, tuned)["FailingStreak"] >= 3
    # the same through dockyard's own CLI: --health-timeout alone, and --no-healthcheck
    r = d.cli("run", "-d", "--health-timeout", "2s", "dy-health:1", "sleep", "60")
    assert r.returncode == 0, r.stderr
    own = r.stdout.decode().strip()
    assert config(d, own)["Healthcheck"] == {"Test": ["CMD-SHELL", "false"], "Interval": 100_000_000,
                                             "Timeout": 2_000_000_000, "Retries": 1}
    r = d.cli("create", "--no-healthcheck", "dy-health:1", "true")
    assert r.returncode == 0, r.stderr
    own_off = r.stdout.decode().strip()
    assert config(d, own_off)["Healthcheck"]["Test"] == ["NONE"]
    d.docker("rm", "-f", cid, off, tuned, own, own_off)
    d.docker("rmi", "dy-health:1")


def test_bad_interval_is_refused(d):
    r = d.docker("run", "-d", "--health-cmd", "true", "--health-interval", "1us", "busybox", "true")
    assert r.returncode != 0
    assert "Interval in Healthcheck cannot be less than 1ms" in r.stderr.decode()


def test_probe_killed_with_the_container_is_not_a_result(d):
    """A probe still running when the container dies is killed with its pid namespace, often
    before the daemon hears of the exit: it must not be logged as a failed check."""
    cid = run(d, "--health-cmd", "echo fine; sleep 1", "--health-interval", "10ms", "--health-retries", "1",
              "busybox", "sleep", "60")
    wait_for(lambda: status(d, cid) == "healthy", timeout=20)
    for _ in range(3):  # a probe starts every 10 ms and runs for a second: one is always in flight
        assert d.docker("kill", cid).returncode == 0
        h = health(d, cid)
        assert h["Status"] == "healthy", h
        assert all(r["ExitCode"] == 0 and r["Output"] == "fine\n" for r in h["Log"]), h["Log"]
        assert d.docker("start", cid).returncode == 0
        wait_for(lambda: health(d, cid)["Log"] and status(d, cid) == "healthy", timeout=20)
    d.docker("rm", "-f", cid)


def test_health_survives_a_daemon_restart(make_daemon, busybox_tar, tmp_path):
    """State.Health is in the container record: a stopped container shows its last state after
    a restart; a running one (live-restore) keeps its log and is probed again."""
    d = make_daemon()
    d.load(busybox_tar)
    hc = tmp_path / "hc"
    hc.mkdir()
    (hc / "state").write_text("before\n")
    live = run(d, "-v", f"{hc}:/hc", "--health-cmd", "cat /hc/state; test -e /hc/ok", "--health-interval", "1s",
               "--health-retries", "1", "busybox", "sleep", "60")
    stopped = run(d, "--health-cmd", "echo fine", "--health-interval", "100ms", "busybox", "sleep", "60")
    wait_for(lambda: status(d, live) == "unhealthy")
    wait_for(lambda: status(d, stopped) == "healthy")
    assert d.docker("stop", "-t", "0", stopped).returncode == 0
    stopped_health = health(d, stopped)
    assert stopped_health["Status"] == "healthy" and stopped_health["Log"][-1]["Output"] == "fine\n"
    d.stop()  # live-restore: the containers keep running (and the probe with them stops)
    (hc / "state").write_text("after\n")
    (hc / "ok").write_text("")
    d.start()
    assert health(d, stopped) == stopped_health
    restored = health(d, live)
    assert restored["Log"][0]["Output"] == "before\n" and restored["Log"][0]["ExitCode"] == 1
    wait_for(lambda: status(d, live) == "healthy")  # probing resumed
    after = health(d, live)
    assert after["Log"][-1]["Output"] == "after\n" and after["FailingStreak"] == 0
    assert any(r["Output"] == "before\n" for r in after["Log"])  # the log from before the restart stays
    assert d.docker("rm", "-f", live, stopped).returncode == 0
