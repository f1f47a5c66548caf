"""Certificates and keys of the local control plane, generated fresh for every start.

Credentials are x509 client certificates, not a static token file: the API server authenticates
every component the way a real cluster does (``system:kube-controller-manager``,
``system:kube-scheduler`` and ``admin`` in ``system:masters``), so the bootstrap RBAC bindings are
what authorizes them, and the kubeconfigs work unchanged with kubectl, helm, the ``kubernetes``
Python client and kopf. A token file would need one more API-server flag and gives every
component the same identity.

TLS and client keys are ECDSA P-256 because generating them is nearly free (an RSA key costs
tens of milliseconds each); the service-account signing key is RSA because RS256 is what every
token consumer expects.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

SERVICE_IP = "10.0.0.1"
"""The ClusterIP of ``default/kubernetes``: the first address of ``--service-cluster-ip-range``."""

APISERVER_DNS_NAMES = (
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
)
FRONT_PROXY_CLIENT_NAME = "front-proxy-client"
#: The user name of the admin kubeconfig, which the scenarios and their controllers use.
ADMIN_USER = "admin"

# A cluster lives for one test session or one demo; a year keeps long-running demos valid while
# still making a leaked key worthless soon. The backdate absorbs clock skew between processes.
_CA_VALIDITY = datetime.timedelta(days=3650)
_LEAF_VALIDITY = datetime.timedelta(days=365)
_BACKDATE = datetime.timedelta(hours=1)

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


@dataclass(frozen=True)
class KeyPair:
    """A certificate and its private key, as PEM files."""

    cert: Path
    key: Path


@dataclass(frozen=True)
class ClusterPKI:
    """Every PEM file the control plane is started with (paths under ``directory``)."""

    directory: Path
    ca: KeyPair
    """Signs every serving and client certificate below; the API server's ``--client-ca-file``."""
    apiserver: KeyPair
    front_proxy_ca: KeyPair
    """A CA of its own, as kubeadm does: a cert from the cluster CA must not be able to assert
    ``X-Remote-User`` to an aggregated API server."""
    front_proxy_client: KeyPair
    service_account_key: Path
    service_account_public_key: Path
    admin: KeyPair
    controller_manager: KeyPair
    scheduler: KeyPair
    kwok: KeyPair
    controller_manager_serving: KeyPair
    scheduler_serving: KeyPair


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _name(common_name: str, organizations: Sequence[str] = ()) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, org) for org in organizations]
    attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attributes)


def _key_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _write_private(path: Path, data: bytes) -> None:
    # Keys are created 0600 from the start rather than chmod-ed after being readable.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


@dataclass(frozen=True)
class Authority:
    """A CA held in memory while the certificates it signs are issued."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @classmethod
    def create(cls, common_name: str) -> Authority:
        key = _new_key()
        now = _now()
        public = key.public_key()
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .issuer_name(_name(common_name))
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _BACKDATE)
            .not_valid_after(now + _CA_VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .sign(key, hashes.SHA256())
        )
        return cls(cert=cert, key=key)

    def issue(
        self,
        common_name: str,
        *,
        organizations: Sequence[str] = (),
        server: bool = False,
        client: bool = False,
        dns_names: Sequence[str] = (),
        ip_addresses: Sequence[str] = (),
    ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        """A leaf certificate for serving (``server``), client authentication (``client``) or both."""
        if not server and not client:
            raise ValueError(f"certificate {common_name!r} must be for serving, client auth or both")
        key = _new_key()
        now = _now()
        usages = []
        if server:
            usages.append(ExtendedKeyUsageOID.SERVER_AUTH)
        if client:
            usages.append(ExtendedKeyUsageOID.CLIENT_AUTH)
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name, organizations))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _BACKDATE)
            .not_valid_after(now + _LEAF_VALIDITY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                # ECDSA keys only sign; key_encipherment is an RSA key-transport usage.
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
        )
        if dns_names or ip_addresses:
            names: list[x509.GeneralName] = [x509.DNSName(name) for name in dns_names]
            names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ip_addresses]
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        return builder.sign(self.key, hashes.SHA256()), key

    def write(self, directory: Path, stem: str) -> KeyPair:
        return _write_pair(directory, stem, self.cert, self.key)

    @classmethod
    def load(cls, pair: KeyPair) -> Authority:
        """A CA written earlier (by :meth:`write`), to issue more certificates from it."""
        cert = x509.load_pem_x509_certificate(pair.cert.read_bytes())
        key = serialization.load_pem_private_key(pair.key.read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{pair.key} is not an ECDSA key; only CAs made by Authority.create can be loaded")
        return cls(cert=cert, key=key)

    def issue_pair(
        self,
        directory: Path,
        stem: str,
        common_name: str,
        *,
        organizations: Sequence[str] = (),
        server: bool = False,
        client: bool = False,
        dns_names: Sequence[str] = (),
        ip_addresses: Sequence[str] = (),
    ) -> KeyPair:
        """:meth:`issue` a leaf and write it as ``directory/stem.crt`` and ``stem.key`` (0600)."""
        directory.mkdir(parents=True, exist_ok=True)
        cert, key = self.issue(
            common_name,
            organizations=organizations,
            server=server,
            client=client,
            dns_names=dns_names,
            ip_addresses=ip_addresses,
        )
        return _write_pair(directory, stem, cert, key)


def _write_pair(directory: Path, stem: str, cert: x509.Certificate, key: PrivateKey) -> KeyPair:
    pair = KeyPair(cert=directory / f"{stem}.crt", key=directory / f"{stem}.key")
    pair.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_private(pair.key, _key_pem(key))
    return pair


def generate_pki(directory: Path, *, service_ip: str = SERVICE_IP) -> ClusterPKI:
    """Create a new CA, front-proxy CA, every certificate and the service-account keys in ``directory``.

    Old files there are overwritten: a cluster started from a workdir always gets fresh identities.
    """
    directory.mkdir(parents=True, exist_ok=True)
    ca = Authority.create("canary-e2e-ca")
    front_proxy_ca = Authority.create("canary-e2e-front-proxy-ca")

    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    sa_private = directory / "sa.key"
    sa_public = directory / "sa.pub"
    _write_private(sa_private, _key_pem(sa_key))
    sa_public.write_bytes(
        sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return ClusterPKI(
        directory=directory,
        ca=ca.write(directory, "ca"),
        apiserver=ca.issue_pair(
            directory,
            "apiserver",
            "kube-apiserver",
            server=True,
            dns_names=list(APISERVER_DNS_NAMES),
            ip_addresses=["127.0.0.1", service_ip],
        ),
        front_proxy_ca=front_proxy_ca.write(directory, "front-proxy-ca"),
        front_proxy_client=front_proxy_ca.issue_pair(
            directory, "front-proxy-client", FRONT_PROXY_CLIENT_NAME, client=True
        ),
        service_account_key=sa_private,
        service_account_public_key=sa_public,
        admin=ca.issue_pair(directory, "admin", ADMIN_USER, organizations=["system:masters"], client=True),
        controller_manager=ca.issue_pair(
            directory, "controller-manager", "system:kube-controller-manager", client=True
        ),
        scheduler=ca.issue_pair(directory, "scheduler", "system:kube-scheduler", client=True),
        # kwok writes the status of every Node and Pod, which no bootstrap role short of
        # cluster-admin allows.
        kwok=ca.issue_pair(directory, "kwok", "kwok", organizations=["system:masters"], client=True),
        controller_manager_serving=ca.issue_pair(
            directory,
            "controller-manager-serving",
            "kube-controller-manager",
            server=True,
            dns_names=["localhost"],
            ip_addresses=["127.0.0.1"],
        ),
        scheduler_serving=ca.issue_pair(
            directory,
            "scheduler-serving",
            "kube-scheduler",
            server=True,
            dns_names=["localhost"],
            ip_addresses=["127.0.0.1"],
        ),
    )
