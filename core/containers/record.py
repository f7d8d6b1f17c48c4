"""A container's persistent record and the Docker-shaped views of it (inspect and list)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..lifecycle import State
from ..store import read_json, write_json
from ..timestamps import ZERO_TIME, rfc3339  # noqa: F401  (re-exported: health, service)
from ..util import human_duration
from .ports import list_ports

_STATES = {s.value: s for s in State}  # a dict lookup is much cheaper than State(value)
RECORD = "config.v2.json"


@dataclass
class Container:
    id: str
    name: str  # without the leading "/"
    image: str  # as the user wrote it
    image_id: str  # sha256:...
    config: dict[str, Any]  # Docker's Config after merging the image's
    host_config: dict[str, Any]
    created_ns: int = field(default_factory=time.time_ns)
    status: str = State.CREATED.value
    pid: int = 0
    exit_code: int = 0
    error: str = ""
    oom_killed: bool = False
    started_ns: int = 0
    finished_ns: int = 0
    restart_count: int = 0
    has_been_started: bool = False
    manually_stopped: bool = False
    storage_driver: str = ""
    top_layer: str | None = None
    networks: dict[str, Any] = field(default_factory=dict)  # name -> endpoint settings
    network_settings: dict[str, Any] = field(default_factory=dict)
    mounts: list[dict[str, Any]] = field(default_factory=list)  # Docker's inspect "Mounts"
    exec_ids: list[str] = field(default_factory=list)
    health: dict[str, Any] | None = None  # State.Health, kept by containers/health.py
    # intents, for start-up reconciliation after a crash (service.reconcile)
    starting: bool = False  # saved before the runtime launches the process, cleared with its pid
    remove_volumes: bool = False  # `rm -v` under way (state "removing"): anonymous volumes go too
    # the cgroup parent the container last started under (HostConfig.CgroupParent or the daemon's
    # cgroup-parent); None: the cgroups driver's own. A restarted daemon hands it back to the driver
    cgroup_parent: str | None = None

    # -- persistence -------------------------------------------------------------------

    @classmethod
    def load(cls, directory: Path) -> "Container | None":
        data = read_json(directory / RECORD)
        if data is None:
            return None
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})

    def save(self, directory: Path, sync: bool = True) -> None:
        write_json(directory / RECORD, self.to_dict(), sync=sync)

    def to_dict(self) -> dict[str, Any]:
        """The fields as a dict for the JSON encoder, which walks the nested dicts and lists
        itself: ``dataclasses.asdict`` deep-copied every value first (~1 ms per save)."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__}

    # -- state ---------------------------------------------------------------------------

    @property
    def state(self) -> State:
        return _STATES[self.status]

    @property
    def running(self) -> bool:
        return self.state in (State.RUNNING, State.PAUSED, State.RESTARTING)

    @property
    def labels(self) -> dict[str, str]:
        return self.config.get("Labels") or {}

    def command_line(self) -> list[str]:
        return [*(self.config.get("Entrypoint") or []), *(self.config.get("Cmd") or [])]

    def status_text(self, now_ns: int | None = None) -> str:
        """``Up 3 minutes``, ``Exited (0) 5 seconds ago``, ``Created``: what ``docker ps`` shows."""
        now_ns = now_ns or time.time_ns()
        s = self.state
        if s in (State.RUNNING, State.PAUSED):
            text = f"Up {human_duration((now_ns - self.started_ns) / 1e9)}"
            return text + (" (Paused)" if s == State.PAUSED else "")
        if s == State.RESTARTING:
            return f"Restarting ({self.exit_code}) {human_duration((now_ns - self.finished_ns) / 1e9)} ago"
        if s == State.EXITED and self.has_been_started:
            return f"Exited ({self.exit_code}) {human_duration((now_ns - self.finished_ns) / 1e9)} ago"
        if s == State.REMOVING:
            return "Removal In Progress"
        if s == State.DEAD:
            return "Dead"
        return "Created"

    # -- views ------------------------------------------------------------------------------

    def state_json(self) -> dict[str, Any]:
        s = self.state
        return {
            "Status": s.value,
            "Running": s in (State.RUNNING, State.PAUSED),
            "Paused": s == State.PAUSED,
            "Restarting": s == State.RESTARTING,
            "OOMKilled": self.oom_killed,
            "Dead": s == State.DEAD,
            "Pid": self.pid if self.running else 0,
            "ExitCode": self.exit_code,
            "Error": self.error,
            "StartedAt": rfc3339(self.started_ns),
            "FinishedAt": rfc3339(self.finished_ns),
        }

    def inspect(self, directory: Path, log_path: Path | None, graph: dict[str, Any]) -> dict[str, Any]:
        cmd = self.command_line()
        return {
            "Id": self.id,
            "Created": rfc3339(self.created_ns),
            "Path": cmd[0] if cmd else "",
            "Args": cmd[1:],
            "State": self.state_json(),
            "Image": self.image_id,
            "ResolvConfPath": str(directory / "resolv.conf"),
            "HostnamePath": str(directory / "hostname"),
            "HostsPath": str(directory / "hosts"),
            "LogPath": str(log_path) if log_path else "",  # only json-file's is API (as Docker)
            "Name": "/" + self.name,
            "RestartCount": self.restart_count,
            "Driver": self.storage_driver,
            "Platform": "linux",
            "MountLabel": "",
            "ProcessLabel": "",
            "AppArmorProfile": "",
            "ExecIDs": self.exec_ids or None,
            "HostConfig": self.host_config,
            "GraphDriver": graph,
            "Mounts": [{k: v for k, v in m.items() if k[0].isupper()} for m in self.mounts],  # lowercase: ours
            "Config": self.config,
            "NetworkSettings": self.network_settings_json(),
        }

    def network_settings_json(self) -> dict[str, Any]:
        ns = {
            "Bridge": "", "SandboxID": "", "SandboxKey": "", "HairpinMode": False,
            "LinkLocalIPv6Address": "", "LinkLocalIPv6PrefixLen": 0,
            "Ports": {}, "SecondaryIPAddresses": None, "SecondaryIPv6Addresses": None,
            "EndpointID": "", "Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0,
            "IPAddress": "", "IPPrefixLen": 0, "IPv6Gateway": "", "MacAddress": "",
            "Networks": self.networks,
        }
        ns.update(self.network_settings)
        return ns

    def list_json(self, image_name: str, size: dict[str, int] | None = None,
                  now_ns: int | None = None) -> dict[str, Any]:
        # what no API call changes after create is built once per container (docker ps and
        # compose poll the list: 50 containers cost ~0.4 ms of daemon CPU a request before)
        cached = self.__dict__.get("_list_fixed")
        if cached is None or cached[0] != image_name:
            fixed = {
                "Id": self.id,
                "Image": image_name,
                "ImageID": self.image_id,
                "Command": " ".join(self.command_line()),
                "Created": self.created_ns // 10**9,
                "Labels": self.labels,
                "HostConfig": {"NetworkMode": self.host_config.get("NetworkMode") or "default"},
            }
            cached = self.__dict__["_list_fixed"] = (image_name, fixed)
        out: dict[str, Any] = dict(cached[1])
        out["Names"] = ["/" + self.name]
        ports = self.network_settings.get("Ports")
        out["Ports"] = list_ports(ports) if ports else []
        out["State"] = self.status
        out["Status"] = self.status_text(now_ns)
        out["NetworkSettings"] = {"Networks": self.networks}
        out["Mounts"] = [
            {k: m.get(k) for k in ("Type", "Name", "Source", "Destination", "Driver", "Mode", "RW", "Propagation")
             if k in m}
            for m in self.mounts
        ] if self.mounts else []
        if size is not None:
            out.update(size)
        return out
