"""The control plane's certificates: what the API server and its clients will check, without them."""

from __future__ import annotations

import ipaddress
import ssl
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from e2e.cluster.pki import ClusterPKI, KeyPair, generate_pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> ClusterPKI:
    return generate_pki(tmp_path_factory.mktemp("pki"))


def load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def common_name(cert: x509.Certificate) -> str:
    return str(cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)


def organizations(cert: x509.Certificate) -> list[str]:
    return [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]


def extended_usages(cert: x509.Certificate) -> set[x509.ObjectIdentifier]:
    return set(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)


def test_cas_are_self_signed_cas_that_may_only_sign(pki: ClusterPKI) -> None:
    for pair in (pki.ca, pki.front_proxy_ca):
        ca = load(pair.cert)
        ca.verify_directly_issued_by(ca)
        constraints = ca.extensions.get_extension_for_class(x509.BasicConstraints)
        assert constraints.critical and constraints.value.ca
        usage = ca.extensions.get_extension_for_class(x509.KeyUsage).value
        assert usage.key_cert_sign and usage.crl_sign
    assert load(pki.ca.cert).subject != load(pki.front_proxy_ca.cert).subject


@pytest.mark.parametrize(
    ("attribute", "issuer", "cn", "orgs", "usage"),
    [
        ("apiserver", "ca", "kube-apiserver", [], ExtendedKeyUsageOID.SERVER_AUTH),
        ("admin", "ca", "admin", ["system:masters"], ExtendedKeyUsageOID.CLIENT_AUTH),
        (
            "controller_manager",
            "ca",
            "system:kube-controller-manager",
            [],
            ExtendedKeyUsageOID.CLIENT_AUTH,
        ),
        ("scheduler", "ca", "system:kube-scheduler", [], ExtendedKeyUsageOID.CLIENT_AUTH),
        ("kwok", "ca", "kwok", ["system:masters"], ExtendedKeyUsageOID.CLIENT_AUTH),
        (
            "controller_manager_serving",
            "ca",
            "kube-controller-manager",
            [],
            ExtendedKeyUsageOID.SERVER_AUTH,
        ),
        ("scheduler_serving", "ca", "kube-scheduler", [], ExtendedKeyUsageOID.SERVER_AUTH),
        (
            "front_proxy_client",
            "front_proxy_ca",
            "front-proxy-client",
            [],
            ExtendedKeyUsageOID.CLIENT_AUTH,
        ),
    ],
)
def test_leaf_chains_to_its_ca_with_the_right_identity_and_usage(
    pki: ClusterPKI,
    attribute: str,
    issuer: str,
    cn: str,
    orgs: list[str],
    usage: x509.ObjectIdentifier,
) -> None:
    pair: KeyPair = getattr(pki, attribute)
    cert = load(pair.cert)
    cert.verify_directly_issued_by(load(getattr(pki, issuer).cert))
    assert common_name(cert) == cn
    assert organizations(cert) == orgs
    assert extended_usages(cert) == {usage}
    constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert not constraints.ca
    key_usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert key_usage.digital_signature and not key_usage.key_cert_sign
    # The key file belongs to the certificate next to it.
    key = serialization.load_pem_private_key(pair.key.read_bytes(), password=None)
    assert key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) == cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert stat.S_IMODE(pair.key.stat().st_mode) == 0o600


def test_front_proxy_client_does_not_chain_to_the_cluster_ca(pki: ClusterPKI) -> None:
    # Otherwise any cluster client cert could pose as the aggregator to an extension server.
    with pytest.raises((ValueError, InvalidSignature)):
        load(pki.front_proxy_client.cert).verify_directly_issued_by(load(pki.ca.cert))


def test_apiserver_serves_every_name_clients_use(pki: ClusterPKI) -> None:
    sans = load(pki.apiserver.cert).extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert set(sans.value.get_values_for_type(x509.DNSName)) == {
        "localhost",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
    }
    assert set(sans.value.get_values_for_type(x509.IPAddress)) == {
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("10.0.0.1"),
    }


def test_python_tls_accepts_the_chain_for_loopback(pki: ClusterPKI) -> None:
    # What the kubernetes client and the readiness probes do: trust the CA, present a client
    # certificate. Loading both into an SSLContext catches a key/cert mismatch or a bad PEM.
    context = ssl.create_default_context(cafile=str(pki.ca.cert))
    context.load_cert_chain(str(pki.admin.cert), str(pki.admin.key))
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(pki.ca.cert))
    server.load_cert_chain(str(pki.apiserver.cert), str(pki.apiserver.key))


def test_service_account_keys_are_an_rsa_pair(pki: ClusterPKI) -> None:
    private = serialization.load_pem_private_key(pki.service_account_key.read_bytes(), password=None)
    public = serialization.load_pem_public_key(pki.service_account_public_key.read_bytes())
    assert isinstance(private, rsa.RSAPrivateKey) and isinstance(public, rsa.RSAPublicKey)
    assert private.key_size >= 2048
    assert private.public_key().public_numbers() == public.public_numbers()
    assert stat.S_IMODE(pki.service_account_key.stat().st_mode) == 0o600


def test_tls_keys_are_p256(pki: ClusterPKI) -> None:
    key = serialization.load_pem_private_key(pki.apiserver.key.read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1"


def test_regenerating_gives_new_identities(pki: ClusterPKI, tmp_path: Path) -> None:
    again = generate_pki(tmp_path)
    assert load(again.ca.cert).public_key() != load(pki.ca.cert).public_key()
    with pytest.raises((ValueError, InvalidSignature)):
        load(again.admin.cert).verify_directly_issued_by(load(pki.ca.cert))
