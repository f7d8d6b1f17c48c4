"""scripts/demo.sh and scripts/setup.sh run as root without sudo (the machine may have none):
as another user they re-run themselves through sudo if there is one, else say that root is needed."""

import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
NOBODY = 65534


@pytest.fixture
def public_dir():
    d = Path(tempfile.mkdtemp(prefix="dockyard-scripts-"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d)


def as_nobody(script: str, path: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
                           "env", f"PATH={path}", shutil.which("bash"), f"scripts/{script}", "--flag", "two words"],
                          cwd=ROOT, capture_output=True, text=True, timeout=30)


@pytest.mark.privileged
@pytest.mark.parametrize("script", ["demo.sh", "setup.sh"])
def test_not_root_reruns_through_sudo(script, public_dir):
    sudo = public_dir / "sudo"  # records how it was called instead of becoming root
    sudo.write_text('#!/bin/sh\nfor a in "$@"; do printf "[%s]" "$a"; done\n')
    sudo.chmod(0o755)
    r = as_nobody(script, f"{public_dir}:/usr/bin:/bin")
    assert (r.returncode, r.stdout) == (0, f"[--][bash][scripts/{script}][--flag][two words]"), r.stderr


@pytest.mark.privileged
@pytest.mark.parametrize("script", ["demo.sh", "setup.sh"])
def test_not_root_without_sudo_says_root_is_needed(script, public_dir):
    (public_dir / "id").symlink_to(shutil.which("id"))  # a PATH with id and no sudo
    r = as_nobody(script, str(public_dir))
    assert (r.returncode, r.stdout) == (1, ""), r.stderr
    assert r.stderr == f"scripts/{script}: run as root (there is no sudo here)\n"
