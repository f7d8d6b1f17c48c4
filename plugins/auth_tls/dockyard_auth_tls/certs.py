"""``dockyard tls init``: a CA, a server certificate and client certificates, with ``cryptography``.

Layout of ``--dir DIR``::

    DIR/ca.pem DIR/ca-key.pem           the CA (keep ca-key.pem offline)
    DIR/cert.pem DIR/key.pem            the server's, for --tlscert / --tlskey (--tlscacert DIR/ca.pem):
                                        ``--dir /etc/dockyard`` gives dockyardd's default paths
    DIR/client/ca.pem cert.pem key.pem  the first client, in DOCKER_CERT_PATH layout
    DIR/clients/NAME/ca.pem cert.pem key.pem   every client (the first one too)

Private keys are mode 0600, certificates 0644.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from pathlib import Path
from typing import Iterable

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DAYS = 825


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write(path: Path, data: bytes, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    _write(path, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                   serialization.NoEncryption()), 0o600)


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    _write(path, cert.public_bytes(serialization.Encoding.PEM), 0o644)


def _builder(subject: x509.Name, issuer: x509.Name, public_key, days: int) -> x509.CertificateBuilder:
    now = dt.datetime.now(dt.timezone.utc)
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
            .public_key(public_key).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=days)))


def make_ca(common_name: str = "Dockyard CA", days: int = DAYS) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = _key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Dockyard")])
    cert = (_builder(name, name, key.public_key(), days)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    return key, cert


def make_leaf(ca_key, ca_cert: x509.Certificate, common_name: str, *, server: bool,
              hostnames: Iterable[str] = (), days: int = DAYS) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = _key()
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    b = (_builder(subject, ca_cert.subject, key.public_key(), days)
         .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
         .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=False, key_cert_sign=False,
                                      crl_sign=False, content_commitment=False, data_encipherment=False,
                                      key_agreement=True, encipher_only=False, decipher_only=False),
                        critical=True)
         .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH if server
                                               else ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
         .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False))
    if server:
        sans: list[x509.GeneralName] = []
        seen = set()
        for h in [*hostnames, "localhost", "127.0.0.1"]:
            if h in seen:
                continue
            seen.add(h)
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(h)))
            except ValueError:
                sans.append(x509.DNSName(h))
        b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return key, b.sign(ca_key, hashes.SHA256())


def init(directory: Path, hostnames: Iterable[str] = (), clients: Iterable[str] = ("client",),
         days: int = DAYS) -> dict[str, Path]:
    """Create the CA, the server and client certificates under ``directory``; return the paths."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    hostnames = list(hostnames)
    clients = list(clients) or ["client"]
    ca_key, ca_cert = make_ca(days=days)
    _write_key(d / "ca-key.pem", ca_key)
    _write_cert(d / "ca.pem", ca_cert)
    skey, scert = make_leaf(ca_key, ca_cert, hostnames[0] if hostnames else "localhost", server=True,
                            hostnames=hostnames, days=days)
    _write_key(d / "key.pem", skey)
    _write_cert(d / "cert.pem", scert)
    out = {"ca": d / "ca.pem", "ca-key": d / "ca-key.pem", "server-cert": d / "cert.pem",
           "server-key": d / "key.pem"}
    for i, name in enumerate(clients):
        ckey, ccert = make_leaf(ca_key, ca_cert, name, server=False, days=days)
        targets = [d / "clients" / name] + ([d / "client"] if i == 0 else [])
        for t in targets:
            _write_key(t / "key.pem", ckey)
            _write_cert(t / "cert.pem", ccert)
            _write_cert(t / "ca.pem", ca_cert)
        out[f"client:{name}"] = d / "clients" / name
    out["client"] = d / "client"
    return out
