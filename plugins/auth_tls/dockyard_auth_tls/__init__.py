"""dockyard-auth-tls: the ``tls`` transport, caller identity, a policy file and an audit log.

* ``dockyard_auth_tls.transport``: ``tls://`` (and ``tcp://`` with ``--tls``/``--tlsverify``).
* ``dockyard_auth_tls.hooks``: ``authenticate_request`` (SO_PEERCRED / client certificate),
  ``authorize_request`` (``[plugins.auth_tls] policy``), ``request_finished`` (``audit_log``)
  and the ``dockyard tls init`` command.
"""

__version__ = "0.1.0"
