"""``dockyard X --format F`` prints what ``docker X --format F`` (the real docker CLI 28) prints,
on the same daemon, for a corpus of formats: stdout, stderr and exit status are compared; only the
client half of ``version`` is normalised (it describes each CLI itself)."""

import json

import pytest

pytestmark = pytest.mark.privileged

LABEL = "dockyard.fmt-test"
PS = ("ps", "-a", "--filter", f"label={LABEL}")
VOLS = ("volume", "ls", "--filter", "name=fmt-vol")

# (command, format): formats avoid the times that move between the two runs (RunningFor, Status)
CORPUS = [
    (PS, "{{.Names}}"),
    (PS, "{{.State}} {{.Names}}"),
    (PS, "{{.ID}} {{.Image}} {{.Command}}"),
    (PS, "{{.Label \"color\"}}|{{.Label \"nope\"}}"),
    (PS, "{{.Labels}}"),
    (PS, "table {{.Names}}\t{{.Image}}\t{{.State}}"),
    (PS, "table {{.ID}}\t{{.Label \"color\"}}"),
    (PS, "{{.Names | upper}} {{lower .Image}} {{title .State}}"),
    (PS, "{{printf \"%-12s|%5s|\" .Names .State}}"),
    (PS, "{{if eq .State \"exited\"}}down{{else if eq .State \"created\"}}new{{else}}up{{end}}"),
    (PS, "{{range split .Labels \",\"}}[{{.}}]{{end}}"),
    (PS, "{{join (split .Labels \",\") \";\"}}"),
    (PS, "{{truncate .ID 5}}{{pad .Names 2 1}}|"),
    (PS, "{{len .Names}} {{index (split .Labels \",\") 0}}"),
    (PS, "{{slice .ID 0 4}}"),
    (("inspect", "fmt-a"), "{{slice .ID 0 4}} {{len .Id}}"),
    (PS, "{{- .Names -}}  {{/* a comment */}} {{- \" x\" }}"),
    (PS, "{{$n := .Names}}{{with .Image}}{{$n}}@{{.}}{{end}}"),
    (PS, "{{json .Names}} {{json .Networks}}"),
    (PS, "{{.Mounts}}|{{.Networks}}|{{.LocalVolumes}}|{{.Size}}"),
    (PS, "{{foo .Names}}"),
    (PS, "{{.Nope}}"),
    (PS, "{{.Names"),
    (("images",), "{{.Repository}}:{{.Tag}}"),
    (("images",), "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.Size}}"),
    (("images",), "{{.ID}} {{.Digest}} {{.CreatedAt}} {{.VirtualSize}}"),
    (("images",), "{{json .}}"),
    (("images",), "json"),
    (("images",), "{{.Containers}} {{.SharedSize}} {{.UniqueSize}}"),
    (("images",), "{{.Nope}}"),
    (("network", "ls"), "{{.Name}} {{.Driver}} {{.Scope}}"),
    (("network", "ls"), "table {{.Name}}\t{{.Driver}}\t{{.IPv6}}\t{{.Internal}}"),
    (("network", "ls"), "json"),
    (("network", "ls"), "{{if .Internal | eq \"true\"}}internal {{end}}{{.ID}}"),
    (("network", "ls"), "{{.Mountpoint}}"),
    (VOLS, "{{.Name}} {{.Driver}} {{.Mountpoint}}"),
    (VOLS, "table {{.Name}}\t{{.Label \"color\"}}\t{{.Scope}}"),
    (VOLS, "json"),
    (VOLS, "{{.Labels}} {{.Links}} {{.Size}} {{.Group}}"),
    (("inspect", "fmt-a"), "{{.Name}} {{.State.Status}} {{.State.Running}} {{.RestartCount}}"),
    (("inspect", "fmt-a"), "{{index .Config.Labels \"color\"}}|{{index .Config.Labels \"nope\"}}"),
    (("inspect", "fmt-a"), "{{range $k, $v := .Config.Labels}}{{$k}}={{$v}};{{end}}"),
    (("inspect", "fmt-a"), "{{json .Config.Labels}} {{json .Config.Cmd}} {{.Config.Cmd}}"),
    (("inspect", "fmt-a"), "{{len .Args}} {{index .Args 0}} {{.Path}}"),
    (("inspect", "fmt-a"), "{{range .Config.Env}}{{println .}}{{end}}"),
    (("inspect", "fmt-a"), "{{with .HostConfig}}{{.NetworkMode}}{{end}} {{or .Config.User \"root\"}}"),
    (("inspect", "fmt-a"), "{{.Config.Labels}} {{.Config.Cmd}}"),
    (("inspect", "fmt-a"), "{{printf \"%q %v %d %t\" .Name .Config.Cmd .State.ExitCode .State.Paused}}"),
    (("inspect", "fmt-a"), "{{.Nope}}"),
    (("inspect", "fmt-a"), "{{nope}}"),
    (("inspect", "fmt-a"), "json"),
    (("inspect", "busybox"), "{{.Os}}/{{.Architecture}} {{.Config.Cmd}} {{index .RepoTags 0}}"),
    (("inspect", "fmt-vol"), "{{.Name}} {{.Driver}} {{.Labels}}"),
    (("volume", "inspect", "fmt-vol"), "{{.Nope}}"),
    (("volume", "inspect", "fmt-vol"), "json"),
    (("network", "inspect", "bridge"), "{{.Name}} {{.Driver}} {{range .IPAM.Config}}{{.Subnet}}{{end}}"),
    (("network", "inspect", "bridge"), "json"),
    (("image", "inspect", "busybox"), "{{.Id}} {{.Size}} {{.RootFS.Type}}"),
    (("version",), "{{.Server.Version}} {{.Server.APIVersion}} {{.Server.Os}}"),
    (("version",), "{{.Server.ApiVersion}}"),
    (("version",), "{{range .Server.Components}}{{.Name}}={{.Version}} {{end}}"),
    (("version",), "{{.Nope}}"),
    (("version",), "{{json .Server.Components}}"),
    (("version",), "json"),
    (("info",), "{{.ServerVersion}} {{.Driver}} {{.OSType}} {{json .Labels}}"),
    (("info",), "{{.ClientInfo.Context}} {{range .Plugins.Volume}}{{.}} {{end}}"),
    (("info",), "{{.Nope}}"),
    (("info",), "{{foo}}"),
    (("history", "busybox"), ""),
    (("history", "busybox"), "json"),
    (("history", "busybox"), "table {{.ID}}\t{{.CreatedAt}}\t{{.Size}}"),
    (("history", "busybox"), "{{.CreatedBy}}|{{.Comment}}|{{.Nope}}"),
    (("stats", "--no-stream", "fmt-run"), "{{.Name}} {{.Container}} {{.PIDs}} {{.ID}}"),
    (("stats", "--no-stream", "fmt-run"), "table {{.Name}}\t{{.Container}}\t{{.PIDs}}"),
    (("stats", "--no-stream", "fmt-run"), "{{.Nope}}"),
]


@pytest.fixture(scope="module")
def d(busybox_daemon):
    d = busybox_daemon
    made = []
    for name, args in (("fmt-a", ["--label", "color=red", "-e", "A=1"]), ("fmt-b", ["--label", "color=blue"])):
        r = d.cli("create", "--name", name, "--label", LABEL, *args, "busybox", "sh", "-c", "exit 3")
        assert r.returncode == 0, r.stderr
        made.append(name)
    assert d.cli("start", "fmt-b").returncode == 0
    r = d.cli("run", "-d", "--name", "fmt-run", "--label", LABEL, "busybox", "sleep", "300")
    assert r.returncode == 0, r.stderr
    made.append("fmt-run")
    d.cli("wait", "fmt-b")
    # one label: docker joins a volume's labels in Go's (random) map order
    assert d.cli("volume", "create", "--label", "color=green", "fmt-vol").returncode == 0
    yield d
    for name in made:
        d.cli("rm", "-f", name)
    d.cli("volume", "rm", "fmt-vol")


def normalise(command, out):
    if command == ("version",) and out.startswith("{"):
        v = json.loads(out)
        v.pop("Client")
        return json.dumps(v)
    if command == ("images",):  # docker walks an image's repositories in Go's random map order
        lines = out.splitlines(keepends=True)
        head = lines[:1] if lines and lines[0].startswith("REPOSITORY") else []
        return "".join(head + sorted(lines[len(head):]))
    return out


@pytest.mark.parametrize("command,fmt", CORPUS, ids=[f"{' '.join(c[:2])}:{f}" for c, f in CORPUS])
def test_format_matches_docker(d, command, fmt):
    mine = d.cli(*command, "--format", fmt)
    theirs = d.docker(*command, "--format", fmt)
    assert (mine.returncode == 0) == (theirs.returncode == 0), (mine.stderr, theirs.stderr)
    assert normalise(command, mine.stdout.decode()) == normalise(command, theirs.stdout.decode())
    assert mine.stderr.decode() == theirs.stderr.decode()


def test_corpus_size():
    assert len(CORPUS) >= 40
