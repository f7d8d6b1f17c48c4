"""Dockyard: a Docker-compatible container engine.

This package is what plugin authors import::

    from dockyard import hookimpl, SkipPlugin, StorageDriver, errors
"""

from . import errors
from .drivers import CgroupDriver, Runtime, StorageDriver, Transport
from .errors import PluginError, SkipPlugin
from .hookspecs import hookimpl

__version__ = "0.1.0"
API_VERSION = "1.44"
MIN_API_VERSION = "1.24"

__all__ = [
    "API_VERSION", "MIN_API_VERSION", "CgroupDriver", "PluginError", "Runtime", "SkipPlugin",
    "StorageDriver", "Transport", "errors", "hookimpl", "__version__",
]
