"""Docker's client config in the CLI without a daemon: which address a context resolves to,
the context store's format, credential helpers, and ``--version``."""

import hashlib
import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from dockyard_cli import contexts, credentials
from dockyard_cli.client import ClientError


@pytest.fixture
def conf(tmp_path, monkeypatch):
    for var in ("DOCKER_HOST", "DOCKYARD_HOST", "DOCKER_CONTEXT"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "cfg"))
    return tmp_path / "cfg"


def make(conf, name, host, skip=False, tls=()):
    d = conf / "contexts" / "meta" / hashlib.sha256(name.encode()).hexdigest()
    d.mkdir(parents=True)
    (d / "meta.json").write_text(json.dumps({"Name": name, "Metadata": {}, "Endpoints": {
        "docker": {"Host": host, "SkipTLSVerify": skip}}}))
    t = conf / "contexts" / "tls" / hashlib.sha256(name.encode()).hexdigest() / "docker"
    for f in tls:
        t.mkdir(parents=True, exist_ok=True)
        (t / f).write_text("x")


def test_precedence_is_dockers(conf, monkeypatch):
    make(conf, "a", "unix:///a.sock")
    make(conf, "b", "tcp://10.0.0.2:2376", skip=True, tls=("ca.pem",))
    (conf / "config.json").write_text(json.dumps({"currentContext": "a"}))
    assert contexts.resolve(None, None)[::2] == ("unix:///a.sock", "a")
    monkeypatch.setenv("DOCKER_CONTEXT", "b")
    host, tls, name = contexts.resolve(None, None)
    assert (host, name) == ("tcp://10.0.0.2:2376", "b")
    assert tls.verify is False and tls.cacert.endswith("/docker/ca.pem") and tls.cert is None
    monkeypatch.setenv("DOCKER_HOST", "unix:///env.sock")
    assert contexts.resolve(None, None) == (None, None, "default")
    assert contexts.resolve(None, "a")[::2] == ("unix:///a.sock", "a")
    assert contexts.resolve("unix:///flag.sock", None) == ("unix:///flag.sock", None, "default")
    with pytest.raises(ClientError, match="either specify --host or --context"):
        contexts.resolve("unix:///flag.sock", "a")
    with pytest.raises(ClientError, match='"nope" does not exist'):
        contexts.resolve(None, "nope")


def test_create_use_rm_write_dockers_store(conf):
    runner = CliRunner()
    r = runner.invoke(contexts.context, ["create", "c1", "--description", "d", "--docker", "host=unix:///c1.sock"])
    assert r.exit_code == 0, r.output
    meta = conf / "contexts" / "meta" / hashlib.sha256(b"c1").hexdigest() / "meta.json"
    assert json.loads(meta.read_text()) == {"Name": "c1", "Metadata": {"Description": "d"},
                                            "Endpoints": {"docker": {"Host": "unix:///c1.sock", "SkipTLSVerify": False}}}
    assert runner.invoke(contexts.context, ["create", "c1"]).exit_code == 1
    assert runner.invoke(contexts.context, ["create", "x"]).exit_code == 1  # docker's name regexp
    r = runner.invoke(contexts.context, ["update", "c1", "--description", "new", "--docker", "host=tcp://h:1"])
    assert r.exit_code == 0, r.output
    assert json.loads(meta.read_text()) == {"Name": "c1", "Metadata": {"Description": "new"},
                                            "Endpoints": {"docker": {"Host": "tcp://h:1", "SkipTLSVerify": False}}}
    assert runner.invoke(contexts.context, ["use", "c1"]).exit_code == 0
    assert json.loads((conf / "config.json").read_text())["currentContext"] == "c1"
    assert runner.invoke(contexts.context, ["rm", "c1"]).exit_code == 1  # in use
    assert runner.invoke(contexts.context, ["rm", "-f", "c1"]).exit_code == 0
    assert not meta.exists() and "currentContext" not in json.loads((conf / "config.json").read_text())


HELPER = """#!/bin/sh
echo "$1 $(cat)" >> {log}
[ "$1" = get ] && echo '{{"ServerURL":"r.example:5000","Username":"<token>","Secret":"tok"}}'
exit 0
"""


def test_credential_helpers_protocol(conf, tmp_path, monkeypatch):
    log = tmp_path / "log"
    (tmp_path / "docker-credential-fake").write_text(HELPER.format(log=log))
    (tmp_path / "docker-credential-fake").chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    conf.mkdir()
    (conf / "config.json").write_text(json.dumps({"credHelpers": {"r.example:5000": "fake"}}))
    credentials.store("r.example:5000", "bob", "pw")
    credentials.store("other.example", "eve", "plain")  # no helper for it: base64 in config.json
    assert credentials.get("r.example:5000") == {"serveraddress": "r.example:5000", "identitytoken": "tok"}
    credentials.erase("r.example:5000")
    calls = log.read_text().splitlines()
    assert calls[0].startswith("store ") and json.loads(calls[0][6:]) == {
        "ServerURL": "r.example:5000", "Username": "bob", "Secret": "pw"}
    assert calls[1:] == ["get r.example:5000", "erase r.example:5000"]
    config = json.loads((conf / "config.json").read_text())
    assert "r.example:5000" not in config["auths"] and config["auths"]["other.example"]["auth"] == "ZXZlOnBsYWlu"
    (conf / "config.json").write_text(json.dumps({"credsStore": "missing"}))
    with pytest.raises(ClientError, match="docker-credential-missing"):
        credentials.get("x")


def test_dash_dash_version():
    r = subprocess.run([sys.executable, "-m", "dockyard_cli", "--version"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.startswith("Dockyard version ") and ", build " in r.stdout


def test_the_platform_default_store_is_used_as_docker_does(conf, tmp_path, monkeypatch):
    log = tmp_path / "log"
    (tmp_path / "docker-credential-secretservice").write_text(HELPER.format(log=log))
    (tmp_path / "docker-credential-secretservice").chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    credentials.store("r.example:5000", "bob", "pw")
    assert log.read_text().startswith("store ")
    assert json.loads((conf / "config.json").read_text())["auths"] == {"r.example:5000": {}}
