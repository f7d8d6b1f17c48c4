"""TLS with bad client certificates never reaches the policy (issue 13: the class is listed here).

The tests live with the plugin, in plugins/auth_tls/tests/test_daemon.py, and run here too
(same code, not a copy), against a real daemon with ``--tlsverify`` and the real docker CLI:

* no client certificate: the handshake fails, the docker CLI and docker-py get no answer
  (``test_docker_cli_and_docker_py_over_tlsverify``);
* a certificate from a foreign CA, and an expired one from the right CA: refused at the
  handshake, never audited, and the daemon keeps serving others
  (``test_foreign_ca_and_expired_client_certificates_are_refused_at_the_handshake``);
* a daemon whose own certificate is missing does not start; ``--tls`` without
  ``--tlsverify`` makes callers anonymous (``test_tls_scheme_and_missing_certs``);
* the certificate's common name is the principal the rules match
  (``test_tls_identity_cn_rules``).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytestmark = pytest.mark.privileged

_PATH = Path(__file__).resolve().parents[2] / "plugins" / "auth_tls" / "tests" / "test_daemon.py"
_spec = importlib.util.spec_from_file_location("dockyard_auth_tls_tests_daemon", _PATH)
_mod = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_mod)

# fixtures the tests take
pki = _mod.pki
foreign_pki = _mod.foreign_pki
daemons = _mod.daemons

test_no_client_certificate_is_refused = _mod.test_docker_cli_and_docker_py_over_tlsverify
test_foreign_ca_and_expired_certificates_are_refused = (
    _mod.test_foreign_ca_and_expired_client_certificates_are_refused_at_the_handshake)
test_tls_scheme_and_missing_certs = _mod.test_tls_scheme_and_missing_certs
test_tls_identity_cn_rules = _mod.test_tls_identity_cn_rules
