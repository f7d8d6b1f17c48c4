"""Prometheus metrics for dockyardd (see README.md); the hooks are in :mod:`.hooks`."""
