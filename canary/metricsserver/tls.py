"""The serving TLS context, and a self-signed pair when no certificate is given.

The context *asks* for a client certificate but does not require one (``CERT_OPTIONAL``), so
that kubelet probes reach ``/healthz``, ``/livez`` and ``/readyz`` without one; the handlers then
refuse everything else without a verified certificate (:mod:`canary.metricsserver.auth`). A
certificate that is presented is verified against the requestheader client CA **during the
handshake**: Python's ``ssl`` has no way to request a certificate without verifying it, so a
certificate from any other CA ends the connection with a TLS alert instead of an HTTP 403.

``ssl`` loads certificates only from files. The self-signed pair is therefore written to an
anonymous in-memory file (``memfd``, Linux) that is closed as soon as it is loaded, so the key
never touches a disk; on other systems a private temporary directory is used and removed.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import ipaddress
import os
import socket
import ssl
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from canary.metricsserver.auth import PeerCertificate
from canary.metricsserver.config import ConfigError


@dataclass(frozen=True)
class ServingPair:
    cert_pem: bytes
    key_pem: bytes

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the certificate's DER form, as ``openssl x509 -fingerprint -sha256`` shows it."""
        der = ssl.PEM_cert_to_DER_cert(self.cert_pem.decode())
        digest = hashlib.sha256(der).hexdigest().upper()
        return ":".join(digest[i:i + 2] for i in range(0, len(digest), 2))


def server_context(client_ca_pem: str, *, cert_file: str | None = None, key_file: str | None = None,
                   pair: ServingPair | None = None) -> ssl.SSLContext:
    """A TLS 1.2+ server context serving ``cert_file``/``key_file`` (or ``pair``), verifying
    client certificates against ``client_ca_pem``. Raises ConfigError for unusable files."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        if pair is not None:
            with _in_memory_files(pair) as (cert_path, key_path):
                context.load_cert_chain(cert_path, key_path)
        elif cert_file and key_file:
            context.load_cert_chain(cert_file, key_file)
        else:
            raise ConfigError("--tls-cert-file and --tls-private-key-file go together: give both or neither")
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load the serving certificate {cert_file or '(self-signed)'} and key "
                          f"{key_file or ''}: {exc}") from exc
    try:
        context.load_verify_locations(cadata=client_ca_pem)
    except (ssl.SSLError, ValueError) as exc:
        raise ConfigError(f"the requestheader client CA is not a usable PEM bundle: {exc}") from exc
    context.verify_mode = ssl.CERT_OPTIONAL
    return context


def peer_certificate(ssl_object: ssl.SSLObject | ssl.SSLSocket | None) -> PeerCertificate | None:
    """The connection's client certificate, if it sent one (then verified, see the module doc)."""
    if ssl_object is None:
        return None
    cert = ssl_object.getpeercert()
    if not cert:
        return None
    common_name: str | None = None
    for rdn in cert.get("subject", ()):
        for attribute in rdn:
            if attribute[0] == "commonName":
                common_name = str(attribute[1])
    # With CERT_OPTIONAL, getpeercert() returns a certificate only after its chain verified.
    return PeerCertificate(common_name=common_name, verified=True)


def self_signed(hosts: Sequence[str] = ()) -> ServingPair:
    """A fresh ECDSA P-256 certificate for ``hosts`` (plus localhost, 127.0.0.1 and this host),
    valid for a year. Needs the ``cryptography`` package; raises ConfigError without it."""
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
    except ImportError as exc:
        raise ConfigError("no --tls-cert-file/--tls-private-key-file given, and the 'cryptography' package "
                          "needed to make a self-signed pair is not installed") from exc
    names = list(dict.fromkeys(["localhost", socket.gethostname(), *hosts]))
    sans: list[x509.GeneralName] = [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    for name in names:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            sans.append(x509.DNSName(name))
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"canary-metrics-server@{int(now.timestamp())}")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return ServingPair(
        cert_pem=cert.public_bytes(serialization.Encoding.PEM),
        key_pem=key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()),
    )


@contextlib.contextmanager
def _in_memory_files(pair: ServingPair) -> Iterator[tuple[str, str]]:
    memfd_create = getattr(os, "memfd_create", None)
    if memfd_create is not None and Path("/proc/self/fd").is_dir():
        fds = [memfd_create("canary-tls-cert"), memfd_create("canary-tls-key")]
        try:
            for fd, data in zip(fds, (pair.cert_pem, pair.key_pem), strict=True):
                os.write(fd, data)
            yield f"/proc/self/fd/{fds[0]}", f"/proc/self/fd/{fds[1]}"
        finally:
            for fd in fds:
                os.close(fd)
        return
    with tempfile.TemporaryDirectory(prefix="canary-tls-") as directory:
        cert_path, key_path = Path(directory, "tls.crt"), Path(directory, "tls.key")
        cert_path.write_bytes(pair.cert_pem)
        key_path.touch(mode=0o600)
        key_path.write_bytes(pair.key_pem)
        yield str(cert_path), str(key_path)
