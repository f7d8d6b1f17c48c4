"""The ``native`` runtime: a small C shim (``shim.c``) launches and monitors each container.

Modules: :mod:`.native` (the driver), :mod:`.spec` (the shim's input), :mod:`.seccomp`
(default BPF filter), :mod:`.capabilities`, :mod:`.logfile` (log reader/writer),
:mod:`.state` (exit/pid files shared with the fake runtime).
"""
