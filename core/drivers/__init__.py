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
"""

from .cgroups import CgroupDriver, CgroupStats, Resources
from .network import Endpoint, Network, NetworkDriver
from .runtime import Runtime
from .storage import StorageDriver
from .transport import Transport
from .volume import VolumeDriver

__all__ = ["CgroupDriver", "CgroupStats", "Endpoint", "Network", "NetworkDriver", "Resources", "Runtime",
           "StorageDriver", "Transport", "VolumeDriver"]
