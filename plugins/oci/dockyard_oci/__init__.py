"""Dockyard runtime driver for OCI runtimes (runc, crun, ...)."""
