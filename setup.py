"""Build steps pyproject.toml cannot declare: the native runtime's shim is compiled when the
wheel is built, so an installed Dockyard needs no C compiler at run time.

``build_py`` compiles ``core/runtime/shim.c`` with the flags the runtime itself uses
(``dockyard.runtime.native.build_shim``: ``-O2 -static``, else ``-O2``) into the package as
``dockyard/runtime/dockyard-shim-<sha256(shim.c)[:12]>``; the runtime uses that file only when
its name matches the source it ships with. An editable install (``pip install -e``) builds
nothing: a source checkout compiles the shim at the daemon's first start, as before.

The wheel holds a Linux executable, so it is tagged ``py3-none-<platform>``.
"""

import hashlib
import os
import subprocess
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

try:
    from setuptools.command.bdist_wheel import bdist_wheel
except ImportError:  # setuptools < 70.1
    from wheel.bdist_wheel import bdist_wheel

SHIM_SOURCE = Path(__file__).parent / "core" / "runtime" / "shim.c"


def shim_name(source: bytes) -> str:
    return f"dockyard-shim-{hashlib.sha256(source).hexdigest()[:12]}"


class BuildPyWithShim(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        self._shim = self.compile_shim()

    def compile_shim(self) -> str | None:
        cc = os.environ.get("CC") or "cc"
        target = Path(self.build_lib) / "dockyard" / "runtime" / shim_name(SHIM_SOURCE.read_bytes())
        target.parent.mkdir(parents=True, exist_ok=True)
        err = ""
        for static in (["-static"], []):
            try:
                r = subprocess.run([cc, "-O2", *static, "-o", str(target), str(SHIM_SOURCE)],
                                   capture_output=True, text=True)
            except OSError as e:
                err = str(e)
                break
            if r.returncode == 0:
                os.chmod(target, 0o555)
                return str(target)
            err = r.stderr
        if os.environ.get("DOCKYARD_SHIM_OPTIONAL") == "1":
            print(f"dockyard: shim not compiled, the runtime will compile it: {err.strip()[:500]}",
                  file=sys.stderr)
            return None
        raise SystemExit(f"dockyard: cannot compile the native runtime's shim ({cc}): {err.strip()[:2000]}\n"
                         "(set DOCKYARD_SHIM_OPTIONAL=1 to build a wheel that compiles it at first start)")

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        shim = getattr(self, "_shim", None)
        return [*super().get_outputs(include_bytecode), *([shim] if shim else [])]


class PlatformWheel(bdist_wheel):
    """Not pure (it holds an executable), but for any Python 3: ``py3-none-<platform>``."""

    def finalize_options(self) -> None:
        # as a distribution with extension modules: installed into platlib, the wheel's root
        self.distribution.has_ext_modules = lambda: True
        super().finalize_options()

    def get_tag(self) -> tuple[str, str, str]:
        _, _, plat = super().get_tag()
        return "py3", "none", plat


setup(cmdclass={"build_py": BuildPyWithShim, "bdist_wheel": PlatformWheel})
