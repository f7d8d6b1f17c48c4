"""Facts about the host, read once: what ``/version`` and ``/info`` report."""

from __future__ import annotations

import os
import sys
from functools import cached_property
from typing import Any

from . import API_VERSION, MIN_API_VERSION, __version__

GOARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386", "ppc64le": "ppc64le", "s390x": "s390x"}


def _os_release() -> dict[str, str]:
    out: dict[str, str] = {}
    try:
        with open("/etc/os-release") as f:
            for line in f:
                key, sep, value = line.strip().partition("=")
                if sep:
                    out[key] = value.strip('"')
    except OSError:
        pass
    return out


class Host:
    @cached_property
    def kernel(self) -> str:
        return os.uname().release  # platform.release()'s answer, without the platform module (idle memory)

    @cached_property
    def arch(self) -> str:
        machine = os.uname().machine
        return GOARCH.get(machine, machine)

    @cached_property
    def os_release(self) -> dict[str, str]:
        return _os_release()

    @cached_property
    def mem_total(self) -> int:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
        return 0

    @property
    def ncpu(self) -> int:
        return len(os.sched_getaffinity(0))

    def version(self) -> dict[str, Any]:
        return {
            "Platform": {"Name": "Dockyard Engine"},
            "Components": [
                {
                    "Name": "Engine",
                    "Version": __version__,
                    "Details": {
                        "ApiVersion": API_VERSION,
                        "MinAPIVersion": MIN_API_VERSION,
                        "Arch": self.arch,
                        "Os": "linux",
                        "KernelVersion": self.kernel,
                        "Experimental": "false",
                        "GitCommit": "",
                        "GoVersion": f"python{sys.version.split()[0]}",
                    },
                }
            ],
            "Version": __version__,
            "ApiVersion": API_VERSION,
            "MinAPIVersion": MIN_API_VERSION,
            "GitCommit": "",
            "GoVersion": f"python{sys.version.split()[0]}",
            "Os": "linux",
            "Arch": self.arch,
            "KernelVersion": self.kernel,
            "Experimental": False,
            "BuildTime": "",
        }

    def ip_forwarding(self) -> bool:
        try:
            with open("/proc/sys/net/ipv4/ip_forward") as f:
                return f.read().strip() == "1"
        except OSError:
            return False


