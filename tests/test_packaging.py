"""Every distribution in the repository builds as a wheel with its entry points and metadata,
and the wheels install together as ``dockyard[all]`` into a fresh venv whose daemon runs a
container without a C compiler (the shim is compiled when the core wheel is built).

CI installs the core distribution editable and the plugins from their directories (non-editable),
so both install modes run on every change; this checks the wheels themselves.
"""

import hashlib
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

from dockyard.testing.daemon import DaemonProcess

ROOT = Path(__file__).parent.parent
DISTRIBUTIONS = {
    ".": ("dockyard", {"dockyard.transports": {"unix", "tcp"}, "dockyard.hooks": {"builtin_errors"},
                       "console_scripts": {"dockyard", "dockyardd"}}),
    "plugins/cgroups": ("dockyard_cgroups", {"dockyard.cgroups": {"v1", "v2", "auto"}}),
    "plugins/storage_overlay": ("dockyard_storage_overlay", {"dockyard.storage": {"overlay", "vfs"}}),
    "plugins/net_bridge": ("dockyard_net_bridge", {"dockyard.network": {"bridge"}}),
    "plugins/auth_tls": ("dockyard_auth_tls", {"dockyard.transports": {"tls"}, "dockyard.hooks": {"auth_tls"}}),
    "plugins/metrics": ("dockyard_metrics", {"dockyard.hooks": {"metrics"}}),
    "plugins/oci": ("dockyard_oci", {"dockyard.runtime": {"oci"}}),
    "tests/example_plugin": ("dockyard_example_audit", {"dockyard.hooks": {"example_audit"}}),
    "tests/example_volume_driver": ("dockyard_example_volume", {"dockyard.volume": {"exampledriver"}}),
}
for _pyproject in sorted(ROOT.glob("plugins/*/pyproject.toml")):  # every plugin, also one added later
    _path = str(_pyproject.parent.relative_to(ROOT))
    if _path not in DISTRIBUTIONS:
        _package = tomllib.loads(_pyproject.read_text())["tool"]["setuptools"]["packages"][0]
        DISTRIBUTIONS[_path] = (_package, {})
PLUGINS = sorted(p for p in DISTRIBUTIONS if p.startswith("plugins/"))
SHIM_NAME = "dockyard-shim-" + hashlib.sha256((ROOT / "core/runtime/shim.c").read_bytes()).hexdigest()[:12]


def core_version() -> str:
    (version,) = re.findall(r'^__version__ = "([^"]+)"$', (ROOT / "core/__init__.py").read_text(), re.M)
    return version


def entry_points(text: str) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    group = None
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("[") and line.endswith("]"):
            group = line[1:-1]
        elif "=" in line and group:
            out.setdefault(group, set()).add(line.split("=", 1)[0].strip())
    return out


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """Wheels of every distribution, built in one pip run (offline: the venv's setuptools);
    returns the directory and pip's output (the build backends' warnings)."""
    out = tmp_path_factory.mktemp("wheels")
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                        "--disable-pip-version-check", "-w", str(out), *(str(ROOT / p) for p in DISTRIBUTIONS)],
                       capture_output=True, text=True, cwd=out)
    assert r.returncode == 0, r.stdout + r.stderr
    return out, r.stdout + r.stderr


def wheel_of(wheelhouse: tuple[Path, str], path: str) -> Path:
    name = tomllib.loads((ROOT / path / "pyproject.toml").read_text())["project"]["name"]
    (wheel,) = wheelhouse[0].glob(f"{re.sub(r'[-_.]+', '_', name).lower()}-*.whl")
    return wheel


def metadata(wheel: Path) -> tuple[list[str], dict[str, set[str]], "Message", str]:  # noqa: F821
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        dist_info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA"))
        eps = entry_points(z.read(f"{dist_info}/entry_points.txt").decode())
        meta = Parser().parsestr(z.read(f"{dist_info}/METADATA").decode())
        wheel_info = z.read(f"{dist_info}/WHEEL").decode()
    return names, eps, meta, wheel_info


def test_builds_print_no_deprecation_warning(wheelhouse):
    """setuptools >= 77 deprecates ``license = {text = ...}`` (and licence classifiers): the
    warning pip printed on every set-up."""
    assert "deprecat" not in wheelhouse[1].lower(), wheelhouse[1]


@pytest.mark.parametrize("path", sorted(DISTRIBUTIONS))
def test_wheel_builds_with_entry_points(path, wheelhouse):
    package, expected = DISTRIBUTIONS[path]
    names, eps, meta, _ = metadata(wheel_of(wheelhouse, path))
    assert any(n.startswith(f"{package}/__init__.py") for n in names), names[:10]
    for group, wanted in expected.items():
        assert wanted <= eps.get(group, set()), (group, eps)
    if package == "dockyard":
        assert "dockyard/runtime/shim.c" in names
        assert "dockyard_cli/main.py" in names
        for init in (ROOT / "core").rglob("__init__.py"):  # no subpackage forgotten in pyproject
            assert f"dockyard/{init.relative_to(ROOT / 'core')}" in names


def test_core_wheel_holds_the_shim_and_is_a_platform_wheel(wheelhouse):
    """The shim is compiled when the wheel is built, named by the hash of the shim.c it came
    from (the runtime uses it only if that matches); the wheel is tagged for the platform."""
    wheel = wheel_of(wheelhouse, ".")
    names, _, meta, wheel_info = metadata(wheel)
    assert f"dockyard/runtime/{SHIM_NAME}" in names, [n for n in names if "runtime/" in n]
    with zipfile.ZipFile(wheel) as z:
        assert z.read(f"dockyard/runtime/{SHIM_NAME}")[:4] == b"\x7fELF"
    assert "Root-Is-Purelib: false" in wheel_info
    platform = sysconfig.get_platform().replace("-", "_").replace(".", "_")
    assert f"Tag: py3-none-{platform}" in wheel_info, wheel_info
    assert wheel.name == f"dockyard-{core_version()}-py3-none-{platform}.whl"


def test_core_metadata(wheelhouse):
    """One version (dockyard.__version__), an SPDX licence, the README, classifiers, the extras."""
    _, _, meta, _ = metadata(wheel_of(wheelhouse, "."))
    assert meta["Version"] == core_version()
    assert meta["License-Expression"] == "Apache-2.0"
    assert meta["Description-Content-Type"] == "text/markdown"
    assert meta.get_payload().lstrip().startswith("# Dockyard")
    classifiers = meta.get_all("Classifier")
    assert "Operating System :: POSIX :: Linux" in classifiers
    assert not [c for c in classifiers if c.startswith("License ::")]  # the SPDX expression says it
    assert {"all", "fast", "test"} <= set(meta.get_all("Provides-Extra"))
    all_extra = {re.split(r"[<>=!~; ]", r, maxsplit=1)[0] for r in meta.get_all("Requires-Dist") if 'extra == "all"' in r}
    plugin_names = {Parser().parsestr(metadata(wheel_of(wheelhouse, p))[2].as_string())["Name"] for p in PLUGINS}
    assert all_extra == plugin_names


@pytest.mark.parametrize("path", PLUGINS)
def test_plugin_depends_on_a_compatible_dockyard_range(path, wheelhouse):
    """Each plugin accepts this core version and not the next minor one (0.x: minor = breaking)."""
    from packaging.requirements import Requirement
    from packaging.version import Version

    _, _, meta, _ = metadata(wheel_of(wheelhouse, path))
    assert meta["License-Expression"] == "Apache-2.0"
    (req,) = [Requirement(r) for r in meta.get_all("Requires-Dist") if Requirement(r).name == "dockyard"]
    version = Version(core_version())
    assert version in req.specifier, req
    assert Version(f"{version.major}.{version.minor + 1}.0") not in req.specifier, req
    assert Version(f"{version.major + 1}.0.0") not in req.specifier, req


COMPILERS = re.compile(r"^(cc|c89|c99|gcc|tcc|clang|.*-gcc|gcc-.*|.*-gcc-.*|clang-.*)$")


def bin_without_compiler(dest: Path) -> str:
    """A PATH directory with every host command except C compilers (symlinks)."""
    dest.mkdir()
    for d in ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"):
        if not os.path.isdir(d):
            continue
        for name in os.listdir(d):
            if not COMPILERS.match(name) and not (dest / name).exists():
                (dest / name).symlink_to(os.path.join(d, name))
    return str(dest)


@pytest.mark.privileged
def test_all_extra_installs_from_wheels_and_runs_a_container_without_a_compiler(wheelhouse, tmp_path, busybox_tar):
    """``pip install --no-index --find-links WHEELS 'dockyard[all]'`` into a fresh venv gives every
    plugin; its daemon starts a container with the packaged shim, no cc on PATH, no shim cache."""
    venv = tmp_path / "venv"
    subprocess.run([sys._base_executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    # the dependencies (aiohttp, pyroute2, ...) come from this venv, without any dockyard
    # distribution: a directory of symlinks to its site-packages entries, on the fresh venv's path
    deps = tmp_path / "deps"
    deps.mkdir()
    here = Path(sysconfig.get_paths()["purelib"])
    for entry in here.iterdir():
        if not re.match(r"(?i)^(_*editable_*|_?dockyard)|.*\.pth$", entry.name):
            (deps / entry.name).symlink_to(entry)
    py = venv / "bin" / "python"
    purelib = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    Path(purelib, "deps.pth").write_text(f"{deps}\n")
    r = subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "-q", "--no-index",
                        "--disable-pip-version-check", "--find-links", str(wheelhouse[0]), "dockyard[all]"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    r = subprocess.run([str(py), "-c", "import importlib.metadata as m, dockyard; print(dockyard.__file__); "
                        "print(*sorted(d.metadata['Name'] for d in m.distributions() if 'dockyard' in d.metadata['Name']))"],
                       check=True, capture_output=True, text=True, cwd=tmp_path)
    where, names = r.stdout.splitlines()
    assert where.startswith(purelib), where
    plugins = [tomllib.loads((ROOT / p / "pyproject.toml").read_text())["project"]["name"] for p in PLUGINS]
    assert names.split() == sorted(["dockyard", *plugins])

    path = f"{venv / 'bin'}:{bin_without_compiler(tmp_path / 'bin')}"
    assert shutil.which("cc", path=path) is None and shutil.which("gcc", path=path) is None

    class VenvDaemon(DaemonProcess):
        def command(self) -> list[str]:
            return [str(venv / "bin" / "dockyardd"), *super().command()[3:]]

    d = VenvDaemon(tmp_path / "d", env={"PATH": path, "DOCKYARD_SHIM_CACHE": str(tmp_path / "no-cache"),
                                         "PYTHONPATH": ""})
    try:
        d.start()
        d.load(busybox_tar)
        r = subprocess.run([str(venv / "bin" / "dockyard"), "-H", d.url, "run", "--rm", "busybox", "echo", "packaged"],
                           capture_output=True, text=True, timeout=60, env=d.env, cwd=tmp_path)
        assert (r.returncode, r.stdout) == (0, "packaged\n"), r.stderr + d.log()[-3000:]
        assert (d.data_root / "runtime" / "native" / SHIM_NAME).is_file()  # the native runtime, from the wheel
    finally:
        d.finish()
