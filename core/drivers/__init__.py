"""Driver contracts: one small typed Protocol per driver kind.

A driver is one object, chosen by name from the config, found through a stevedore
entry-point group, and called directly through its Protocol:

=========================  =======================  ==============================
group                      config key               Protocol
=========================  =======================  ==============================
``dockyard.storage``       ``storage-driver``       :class:`StorageDriver`
``dockyard.cgroups``       ``cgroups``              :class:`CgroupDriver`
``dockyard.runtime``       ``runtime``              :class:`Runtime`
``dockyard.network``       per network (``Driver``)  :class:`NetworkDriver`
``dockyard.volume``        per volume (``Driver``)  :class:`VolumeDriver`
``dockyard.transports``    scheme of ``-H`` URLs    :class:`Transport`
=========================  =======================  ==============================

Every driver class is constructed as ``cls(config=<its [plugins.NAME] table as a dict>,
root=<data-root>/<kind>/<name>, state=<exec-root>/<kind>/<name>)`` and may define a
classmethod ``check()`` that raises :class:`dockyard.errors.SkipPlugin` when the host
cannot run it. A driver object may also carry ``@hookimpl`` methods: the daemon registers
it with the plugin manager after loading it.

Beyond its kind's base Protocol a driver may offer optional *capabilities*, each a
``runtime_checkable`` Protocol (``ExecRuntime``, ``TtyRuntime``, ``StagingStorage``,
``PortPublisher``...), named in its class attribute ``capabilities`` and checked once at load
by :mod:`dockyard.drivers.contracts` (which lists them per kind in ``CONTRACTS``).
"""

from .cgroups import CgroupDriver, CgroupStats, Resources
from .contracts import CONTRACTS, ClosableDriver, DriverRecord, UnsupportedCapability
from .network import Endpoint, ForgettingNetwork, Network, NetworkDriver, PortPublisher, ValidatingNetwork
from .runtime import (ExecRuntime, ExecStdinDetachRuntime, MultiRuntime, Runtime, StdinDetachRuntime, StdinRuntime,
                      TtyRuntime)
from .storage import (ExportingStorage, IdMappedStorage, LayerInfoStorage, StagingStorage, StorageDriver,
                      StorageOptsStorage)
from .transport import Transport
from .volume import ListingVolume, VolumeDriver

__all__ = ["CONTRACTS", "CgroupDriver", "CgroupStats", "ClosableDriver", "DriverRecord", "Endpoint", "ExecRuntime",
           "ExecStdinDetachRuntime", "ExportingStorage", "ForgettingNetwork", "IdMappedStorage", "LayerInfoStorage",
           "ListingVolume",
           "MultiRuntime", "Network", "NetworkDriver", "PortPublisher", "Resources", "Runtime", "StagingStorage",
           "StdinDetachRuntime", "StdinRuntime", "StorageDriver", "StorageOptsStorage", "Transport", "TtyRuntime",
           "UnsupportedCapability", "ValidatingNetwork", "VolumeDriver"]
