"""Docker's client config in the ``dockyard`` CLI against a real daemon, cross-checked with the
real docker CLI: ``--version``/``version``, contexts (both CLIs share the store), credential
helpers, and the commands docker has (system prune, history, completion, ...).

HOME and DOCKER_CONFIG point at a temp dir: the user's own config is never read or written."""

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.privileged


@pytest.fixture
def env(tmp_path):
    """An environment with no daemon address and a fresh, private client config."""
    e = {k: v for k, v in os.environ.items() if k not in ("DOCKER_HOST", "DOCKYARD_HOST", "DOCKER_CONTEXT",
                                                         "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH")}
    (tmp_path / "home").mkdir()
    e.update(HOME=str(tmp_path / "home"), DOCKER_CONFIG=str(tmp_path / "docker-config"))
    return e


def dockyard(env, *args, input=None):
    return subprocess.run([sys.executable, "-m", "dockyard_cli", *args], capture_output=True, text=True,
                          env=env, input=input, timeout=60)


def docker(env, *args):
    return subprocess.run(["docker", *args], capture_output=True, text=True, env=env, timeout=60)


def test_dash_dash_version_and_version_without_a_daemon(env, tmp_path):
    r = dockyard(env, "--version")
    assert r.returncode == 0 and r.stdout.startswith("Dockyard version ") and ", build " in r.stdout
    r = dockyard(env, "-H", f"unix://{tmp_path}/none.sock", "version")
    assert r.returncode == 1
    assert r.stdout.startswith("Client:\n") and " API version:" in r.stdout and "Server" not in r.stdout
    assert "none.sock not found" in r.stderr


def test_version_prints_client_and_server(env, dockyard_daemon):
    r = dockyard(env, "-H", dockyard_daemon.url, "version")
    assert r.returncode == 0, r.stderr
    client, server = r.stdout.split("\n\n", 1)
    assert client.startswith("Client:") and "Context:           default" in client
    assert server.startswith("Server:") and "1.44" in server


def test_a_context_made_by_docker_is_used_by_dockyard(env, dockyard_daemon):
    r = docker(env, "context", "create", "yard", "--description", "test daemon",
               "--docker", f"host={dockyard_daemon.url}")
    assert r.returncode == 0, r.stderr
    r = dockyard(env, "--context", "yard", "version")
    assert r.returncode == 0, r.stderr
    assert "Context:           yard" in r.stdout and "Server:" in r.stdout
    assert dockyard(env, "--context", "yard", "ps").returncode == 0
    r = dockyard(env | {"DOCKER_CONTEXT": "yard"}, "info", "--format", "{{.OSType}}")
    assert r.stdout.strip() == "linux", r.stderr
    # --host wins over DOCKER_CONTEXT, DOCKER_HOST over DOCKER_CONTEXT; --host with --context is an error
    r = dockyard(env | {"DOCKER_CONTEXT": "yard"}, "-H", "unix:///nonexistent/x.sock", "ps")
    assert r.returncode == 1 and "x.sock" in r.stderr
    r = dockyard(env | {"DOCKER_CONTEXT": "yard", "DOCKER_HOST": "unix:///nonexistent/y.sock"}, "ps")
    assert r.returncode == 1 and "y.sock" in r.stderr
    r = dockyard(env, "--context", "yard", "-H", dockyard_daemon.url, "ps")
    assert r.returncode != 0 and "either specify --host or --context" in r.stderr
    # docker context use, then plain `dockyard ps` follows currentContext
    assert docker(env, "context", "use", "yard").returncode == 0
    r = dockyard(env, "context", "show")
    assert r.stdout.strip() == "yard"
    assert dockyard(env, "ps").returncode == 0
    ours = [json.loads(line) for line in dockyard(env, "context", "ls", "--format", "json").stdout.splitlines()]
    theirs = [json.loads(line) for line in docker(env, "context", "ls", "--format", "json").stdout.splitlines()]
    assert [x for x in ours if x["Name"] != "default"] == [x for x in theirs if x["Name"] != "default"]
    ours = json.loads(dockyard(env, "context", "inspect", "yard").stdout)
    theirs = json.loads(docker(env, "context", "inspect", "yard").stdout)
    assert ours == theirs


def test_a_context_made_by_dockyard_is_used_by_docker(env, dockyard_daemon):
    r = dockyard(env, "context", "create", "mine", "--docker", f"host={dockyard_daemon.url}")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "mine"
    r = dockyard(env, "context", "use", "mine")
    assert r.returncode == 0, r.stderr
    assert json.loads((env_config(env) / "config.json").read_text())["currentContext"] == "mine"
    r = docker(env, "version", "--format", "{{.Server.APIVersion}}")
    assert r.stdout.strip() == "1.44", r.stderr
    r = docker(env, "context", "inspect", "mine")
    assert json.loads(r.stdout)[0]["Endpoints"]["docker"]["Host"] == dockyard_daemon.url
    # in use: rm refuses without -f; use default, then rm, and docker agrees it is gone
    assert dockyard(env, "context", "rm", "mine").returncode == 1
    assert dockyard(env, "context", "use", "default").returncode == 0
    assert "currentContext" not in json.loads((env_config(env) / "config.json").read_text())
    assert dockyard(env, "context", "rm", "mine").returncode == 0
    assert docker(env, "context", "inspect", "mine").returncode != 0


def env_config(env):
    from pathlib import Path

    return Path(env["DOCKER_CONFIG"])


HELPER = r"""#!/bin/bash
# docker-credential-test: docker's credential-helper protocol, one file per server under $STORE
STORE=%s
echo "$1" >> "$STORE/calls"
key() { printf %%s "$1" | sha256sum | cut -c1-64; }
case "$1" in
  store) in=$(cat); url=$(printf %%s "$in" | sed -n 's/.*"ServerURL":"\([^"]*\)".*/\1/p')
         printf %%s "$in" > "$STORE/$(key "$url")" ;;
  get) url=$(cat); f="$STORE/$(key "$url")"
       if [ -f "$f" ]; then cat "$f"; else echo "credentials not found in native keychain"; exit 1; fi ;;
  erase) url=$(cat); rm -f "$STORE/$(key "$url")" ;;
  list) echo "{}" ;;
  *) exit 2 ;;
esac
"""


@pytest.fixture
def cred_helper(env, tmp_path):
    """``docker-credential-test`` on PATH, storing in tmp_path/store."""
    store, bindir = tmp_path / "store", tmp_path / "bin"
    store.mkdir()
    bindir.mkdir()
    (bindir / "docker-credential-test").write_text(HELPER % store)
    (bindir / "docker-credential-test").chmod(0o755)
    env["PATH"] = f"{bindir}:{env['PATH']}"
    return store


@pytest.mark.parametrize("where", ["credsStore", "credHelpers"])
def test_login_pull_logout_through_a_credential_helper(env, cred_helper, where, busybox_daemon, auth_registry):
    conf = env_config(env)
    conf.mkdir()
    setting = {"credsStore": "test"} if where == "credsStore" else {"credHelpers": {auth_registry.host: "test"}}
    (conf / "config.json").write_text(json.dumps(setting))
    url = busybox_daemon.url
    r = dockyard(env, "-H", url, "login", "-u", "alice", "--password-stdin", auth_registry.host,
                 input="s3cret-pass\n")
    assert r.returncode == 0 and "Login Succeeded" in r.stdout, r.stderr
    config_text = (conf / "config.json").read_text()
    assert "s3cret-pass" not in config_text and "YWxpY2U6czNjcmV0LXBhc3M" not in config_text
    assert json.loads(config_text)["auths"] == {auth_registry.host: {}}
    [stored] = [p for p in cred_helper.iterdir() if p.name != "calls"]
    assert json.loads(stored.read_text()) == {"ServerURL": auth_registry.host, "Username": "alice",
                                              "Secret": "s3cret-pass"}
    # push and pull send what the helper gives back; the real docker CLI reads the same login
    name = f"{auth_registry.host}/ctx/busybox:{where.lower()}"
    assert dockyard(env, "-H", url, "tag", "busybox:latest", name).returncode == 0
    try:
        r = dockyard(env, "-H", url, "image", "push", name)
        assert r.returncode == 0, r.stderr
        assert "get" in (cred_helper / "calls").read_text().split()
        dockyard(env, "-H", url, "rmi", name)
        r = docker(env, "-H", url, "pull", name)
        assert r.returncode == 0, r.stderr
        r = dockyard(env, "-H", url, "logout", auth_registry.host)
        assert r.returncode == 0 and "Removing login credentials" in r.stdout, r.stderr
        assert [p.name for p in cred_helper.iterdir()] == ["calls"]
        assert "erase" in (cred_helper / "calls").read_text().split()
        dockyard(env, "-H", url, "rmi", name)
        r = dockyard(env, "-H", url, "pull", name)
        assert r.returncode != 0
    finally:
        dockyard(env, "-H", url, "rmi", name)


def test_a_missing_helper_is_an_error_not_plain_text(env, dockyard_daemon):
    conf = env_config(env)
    conf.mkdir()
    (conf / "config.json").write_text(json.dumps({"credsStore": "no-such-helper"}))
    r = dockyard(env, "-H", dockyard_daemon.url, "pull", "127.0.0.1:1/x")
    assert r.returncode == 1 and "docker-credential-no-such-helper" in r.stderr


def test_completion_scripts_and_container_and_image_names_from_the_daemon(env, busybox_daemon):
    for shell, marker in (("bash", "_DOCKYARD_COMPLETE=bash_complete"), ("zsh", "#compdef dockyard"),
                          ("fish", "_DOCKYARD_COMPLETE=fish_complete")):
        r = dockyard(env, "completion", shell)
        assert r.returncode == 0 and marker in r.stdout, (shell, r.stderr)
    name = "ctx-completion-target"
    assert busybox_daemon.cli("create", "--name", name, "busybox:latest", "true").returncode == 0
    try:
        for words, cword in (("dockyard start ", 2), ("dockyard container stop ctx-comp", 3)):
            e = env | {"_DOCKYARD_COMPLETE": "bash_complete", "COMP_WORDS": words.replace("dockyard ", f"dockyard -H {busybox_daemon.url} ", 1),
                       "COMP_CWORD": str(cword + 2)}
            r = subprocess.run([sys.executable, "-m", "dockyard_cli"], capture_output=True, text=True, env=e,
                               timeout=60)
            assert f"plain,{name}" in r.stdout.splitlines(), (words, r.stdout, r.stderr)
        # exactly as a shell calls it, the daemon from DOCKER_HOST
        e = env | {"DOCKER_HOST": busybox_daemon.url, "_DOCKYARD_COMPLETE": "bash_complete",
                   "COMP_WORDS": "dockyard start ", "COMP_CWORD": "2"}
        r = subprocess.run([os.path.join(os.path.dirname(sys.executable), "dockyard")], capture_output=True,
                           text=True, env=e, timeout=60)
        assert f"plain,{name}" in r.stdout.splitlines(), (r.stdout, r.stderr)
        # DOCKER_CONTEXT is honoured too, and image arguments complete image references
        assert docker(env, "context", "create", "comp", "--docker", f"host={busybox_daemon.url}").returncode == 0
        e = env | {"DOCKER_CONTEXT": "comp", "_DOCKYARD_COMPLETE": "bash_complete",
                   "COMP_WORDS": "dockyard run busy", "COMP_CWORD": "2"}
        r = subprocess.run([sys.executable, "-m", "dockyard_cli"], capture_output=True, text=True, env=e, timeout=60)
        assert "plain,busybox:latest" in r.stdout.splitlines(), (r.stdout, r.stderr)
    finally:
        busybox_daemon.cli("rm", "-f", name)


def test_history_port_and_system_aliases(env, busybox_daemon):
    url = busybox_daemon.url
    ours = dockyard(env, "-H", url, "history", "busybox:latest")
    theirs = docker(env, "-H", url, "history", "busybox:latest")
    assert ours.returncode == 0 and theirs.returncode == 0, ours.stderr
    assert ours.stdout.split()[:5] == theirs.stdout.split()[:5] == ["IMAGE", "CREATED", "CREATED", "BY", "SIZE"]
    assert len(ours.stdout.splitlines()) == len(theirs.stdout.splitlines())
    cid = busybox_daemon.cli("create", "-p", "127.0.0.1::80", "busybox:latest", "true").stdout.decode().strip()
    try:
        r = dockyard(env, "-H", url, "container", "port", cid)
        assert r.returncode == 0 and r.stdout == docker(env, "-H", url, "container", "port", cid).stdout
    finally:
        busybox_daemon.cli("rm", "-f", cid)
    r = dockyard(env, "-H", url, "system", "info", "--format", "{{.OSType}}")
    assert r.stdout.strip() == "linux", r.stderr
    r = dockyard(env, "-H", url, "system", "events", "--since", "1", "--until", "2")
    assert r.returncode == 0, r.stderr


def test_system_prune(env, make_daemon, busybox_tar):
    busybox_daemon = make_daemon()  # its own daemon: prune must not take other tests' objects
    busybox_daemon.load(busybox_tar)
    url = busybox_daemon.url
    cid = busybox_daemon.cli("create", "busybox:latest", "true").stdout.decode().strip()
    net = "ctx-prune-net"
    assert busybox_daemon.cli("network", "create", net).returncode == 0
    vol = busybox_daemon.cli("volume", "create").stdout.decode().strip()  # anonymous-looking, but named: kept
    try:
        r = dockyard(env, "-H", url, "system", "prune", input="n\n")
        assert "WARNING! This will remove:" in r.stdout and "  - all stopped containers" in r.stdout
        assert cid in busybox_daemon.cli("ps", "-aq", "--no-trunc").stdout.decode()
        r = dockyard(env, "-H", url, "system", "prune", "-f", "--volumes")
        assert r.returncode == 0, r.stderr
        out = r.stdout
        assert out.index("Deleted Containers:") < out.index(cid) < out.index("Deleted Networks:") \
            < out.index(net) < out.index("Total reclaimed space: ")
        assert cid not in busybox_daemon.cli("ps", "-aq", "--no-trunc").stdout.decode()
        assert busybox_daemon.cli("image", "inspect", "busybox:latest").returncode == 0  # in no way dangling
    finally:
        busybox_daemon.cli("rm", "-f", cid)
        busybox_daemon.cli("network", "rm", net)
        busybox_daemon.cli("volume", "rm", vol)


def test_search_answers_what_the_daemon_answers(env, dockyard_daemon):
    ours = dockyard(env, "-H", dockyard_daemon.url, "search", "busybox")
    theirs = docker(env, "-H", dockyard_daemon.url, "search", "busybox")
    assert ours.returncode == theirs.returncode == 1
    assert ours.stderr.startswith("Error response from daemon: ")
    assert ours.stderr.strip() == theirs.stderr.strip()


FAKE_SSH = """#!/bin/bash
# ssh stand-in: records its arguments, then runs the remote command here (no sshd on the test host);
# the real docker CLI asks for `docker system dial-stdio`: ours answers it (dockyard system dial-stdio)
echo "$*" >> {log}
while [ "$1" != "--" ]; do shift; done
shift 2
[ "$1" = docker ] && {{ shift; set -- dockyard "$@"; }}
exec "$@"
"""


def test_ssh_hosts_through_dial_stdio(env, tmp_path, busybox_daemon):
    bindir = tmp_path / "sshbin"
    bindir.mkdir()
    log = tmp_path / "ssh.log"
    (bindir / "ssh").write_text(FAKE_SSH.format(log=log))
    (bindir / "ssh").chmod(0o755)
    # the "remote" dockyard reaches the daemon through DOCKYARD_HOST; the client is told -H ssh://
    env = env | {"PATH": f"{bindir}:{os.path.dirname(sys.executable)}:{env['PATH']}",
                 "DOCKYARD_HOST": busybox_daemon.url}
    r = dockyard(env, "-H", "ssh://alice@yard.example:2222", "version")
    assert r.returncode == 0 and "Server:" in r.stdout, r.stderr
    assert log.read_text().splitlines()[0] == \
        "-o ConnectTimeout=30 -l alice -p 2222 -- yard.example dockyard system dial-stdio"
    # attach (a hijacked connection) runs through it too, and a context may name an ssh host
    assert dockyard(env, "context", "create", "far", "--docker", "host=ssh://alice@yard.example").returncode == 0
    r = dockyard(env, "--context", "far", "run", "--rm", "busybox:latest", "echo", "over-ssh")
    assert r.returncode == 0 and r.stdout == "over-ssh\n", r.stderr
    # the real docker CLI over ssh:// is served by our dial-stdio on the far side
    r = docker(env, "-H", "ssh://alice@yard.example", "version", "--format", "{{.Server.APIVersion}}")
    assert r.returncode == 0 and r.stdout.strip() == "1.44", r.stderr
    # ssh failing: its stderr is the error
    (bindir / "ssh").write_text("#!/bin/sh\necho 'ssh: connect to host yard.example port 22: Connection refused' >&2\n"
                                "exit 255\n")
    r = dockyard(env, "-H", "ssh://yard.example", "ps")
    assert r.returncode == 1 and "Connection refused" in r.stderr
