"""The metrics plugin on a real dockyardd: requests, a container run, an exec and a health check,
scraped on the API socket and on ``--metrics-addr`` with prometheus-client's parser."""

from __future__ import annotations

import http.client
import json

import pytest
from prometheus_client.parser import text_string_to_metric_families

from dockyard.testing.daemon import free_port, wait_for
from dockyard_metrics.hooks import is_loopback, parse_addr
from dockyard_metrics.metrics import _ns, route_label


def samples(text: str) -> list:
    return [s for family in text_string_to_metric_families(text) for s in family.samples]


def value(text: str, name: str, **labels: str) -> float:
    """The sum of the samples named ``name`` whose labels include ``labels`` (0 when none)."""
    return sum(s.value for s in samples(text) if s.name == name
               and all(s.labels.get(k) == v for k, v in labels.items()))


def scrape_socket(d) -> str:
    status, body = d.request("GET", "/metrics")
    assert status == 200, body
    return body.decode()


def scrape_addr(port: int) -> tuple[str, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", "/metrics")
        r = conn.getresponse()
        assert r.status == 200
        return r.read().decode(), r.getheader("Content-Type")
    finally:
        conn.close()


@pytest.mark.privileged
def test_metrics_move_with_requests_containers_execs_and_health(make_daemon, busybox_tar):
    port = free_port()
    d = make_daemon("--metrics-addr", f"127.0.0.1:{port}")
    d.load(busybox_tar)
    wait_for(lambda: _accepts(port))
    before = scrape_socket(d)
    assert value(before, "dockyard_images") >= 1
    assert value(before, "dockyard_container_states_containers", state="running") == 0

    bogus = "0123456789abcdef-not-a-container"
    for _ in range(3):
        assert d.request("GET", "/containers/json")[0] == 200
    assert d.request("GET", f"/containers/{bogus}/json")[0] == 404
    assert d.request("GET", f"/v1.44/containers/{bogus}/json")[0] == 404
    assert d.request("GET", f"/no/such/{bogus}")[0] == 404
    assert d.docker("volume", "create", "metricsvol").returncode == 0

    r = d.docker("run", "--name", "m-once", "busybox", "true")
    assert r.returncode == 0, r.stderr
    r = d.docker("run", "-d", "--name", "m-up", "--health-cmd", "true", "--health-interval", "200ms",
                 "busybox", "sleep", "300")
    assert r.returncode == 0, r.stderr
    wait_for(lambda: _health(d, "m-up") == "healthy")
    r = d.docker("exec", "m-up", "sh", "-c", "echo hi")
    assert r.returncode == 0 and r.stdout == b"hi\n", r.stderr

    text = scrape_socket(d)
    # requests: per route template, method and status class; never the raw path
    assert value(text, "dockyard_http_requests_total", route="/containers/json", method="GET", status="2xx") >= 3
    assert value(text, "dockyard_http_requests_total", route="/containers/{id}/json", method="GET", status="4xx") >= 2
    assert value(text, "dockyard_http_requests_total", route="unmatched", status="4xx") >= 1
    assert not [s for s in samples(text) if bogus in json.dumps(s.labels)]
    assert value(text, "dockyard_http_request_duration_seconds_count", route="/containers/json", method="GET") >= 3
    assert value(text, "dockyard_http_request_duration_seconds_bucket", route="/containers/json", method="GET",
                 le="+Inf") >= 3
    # container actions (events) and their API durations
    for action in ("create", "start", "die", "exec_start", "exec_die", "health_status"):
        assert value(text, "dockyard_container_actions_total", action=action) >= 1, action
    assert value(text, "dockyard_container_actions_seconds_count", action="create") >= 2
    assert value(text, "dockyard_container_actions_seconds_count", action="start") >= 2
    # states, images and volumes on scrape
    assert value(text, "dockyard_container_states_containers", state="running") == 1
    assert value(text, "dockyard_container_states_containers", state="exited") == 1
    assert value(text, "dockyard_volumes") == 1
    # exec durations (docker exec and the health probes), health-check durations
    assert value(text, "dockyard_exec_duration_seconds_count") >= 2
    assert value(text, "dockyard_health_checks_total") >= 1
    assert value(text, "dockyard_health_check_duration_seconds_count") >= 1
    assert value(text, "dockyard_health_checks_failed_total") == 0
    assert value(text, "dockyard_events_total", type="container") >= 1

    assert d.docker("rm", "-f", "m-up", "m-once").returncode == 0
    assert d.docker("volume", "rm", "metricsvol").returncode == 0
    after, content_type = scrape_addr(port)  # the same registry on metrics-addr
    assert content_type.startswith("text/plain")
    assert value(after, "dockyard_container_actions_total", action="destroy") >= 2
    assert value(after, "dockyard_container_states_containers") == 0
    assert value(after, "dockyard_volumes") == 0
    assert value(after, "dockyard_http_requests_total", route="/metrics", method="GET", status="2xx") >= 2
    assert value(after, "dockyard_http_requests_total", route="/containers/{id}", method="DELETE", status="2xx") >= 2


@pytest.mark.privileged
def test_without_metrics_addr_only_the_api_socket_serves(make_daemon):
    d = make_daemon()
    text = scrape_socket(d)
    assert value(text, "dockyard_engine_info") == 1
    assert "dockyard_http_requests_created" not in text  # dockerd's exposition has no _created series
    assert "metrics listening" not in d.log()


def _accepts(port: int) -> bool:
    import socket

    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        return True
    except OSError:
        return False


def _health(d, name: str) -> str:
    r = d.docker("inspect", "--format", "{{.State.Health.Status}}", name)
    return r.stdout.decode().strip()


def test_addresses():
    assert parse_addr("127.0.0.1:9323") == ("127.0.0.1", 9323)
    assert parse_addr("[::1]:9323") == ("::1", 9323)
    assert parse_addr(":9323") == ("", 9323)
    for bad in ("127.0.0.1", "127.0.0.1:x", "127.0.0.1:0", "h:70000"):
        with pytest.raises(ValueError):
            parse_addr(bad)
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("") and not is_loopback("0.0.0.0") and not is_loopback("10.0.0.1")


def test_health_log_times():
    assert _ns("2026-12-06T09:00:00.123456789Z") == 1796547600123456789
    assert _ns("2026-12-06T10:00:00.5+01:00") == 1796547600500000000
    assert _ns("garbage") is None and _ns(None) is None


def test_unmatched_route_label():
    class NoRoute:
        @property
        def match_info(self):
            raise RuntimeError("not resolved")

    assert route_label(NoRoute()) == "unmatched"


@pytest.mark.privileged
def test_metrics_addr_from_the_config_file(make_daemon, tmp_path):
    port = free_port()
    conf = tmp_path / "dockyardd.toml"
    conf.write_text(f'metrics-addr = "127.0.0.1:{port}"\n')
    d = make_daemon("--config-file", str(conf))
    wait_for(lambda: _accepts(port))
    text, _ = scrape_addr(port)
    assert value(text, "dockyard_engine_info") == 1
    assert "not a loopback address" not in d.log()


@pytest.mark.privileged
def test_a_malformed_metrics_addr_stops_the_daemon(make_daemon):
    d = make_daemon("--metrics-addr", "127.0.0.1", start=False)
    with pytest.raises(RuntimeError, match="expected HOST:PORT"):
        d.start()
