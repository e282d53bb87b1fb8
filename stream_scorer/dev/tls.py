"""A throw-away certificate authority for TLS tests of the local services.

One CA signs a server certificate for ``localhost``/``127.0.0.1`` and a client
certificate (``CN=stream-scorer``); a second CA signs nothing and stands in
for "a CA the server does not trust". Keys are EC P-256, written unencrypted
(PKCS8), so redis-server, Kafka's PEM key stores and Python's ``ssl`` all read
them without passwords. ``cryptography`` is a dev-only dependency, so it is
imported inside :func:`make_certificates`.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePrivateKey
    from cryptography.x509 import Certificate


@dataclass(frozen=True)
class Certificates:
    """PEM files in one folder; every certificate is valid from yesterday for 30 days."""

    ca: Path
    """CA certificate that signed the server and client certificates."""
    server_cert: Path
    """Server certificate, SAN ``DNS:localhost`` and ``IP:127.0.0.1``."""
    server_key: Path
    """Server key, unencrypted PKCS8."""
    client_cert: Path
    """Client certificate (``CN=stream-scorer``) for mutual TLS."""
    client_key: Path
    other_ca: Path
    """A second CA that signed nothing here: clients pointed at it must refuse the server."""
    server_keystore: Path
    """Server key then certificate chain in one file: Kafka's ``ssl.keystore.type=PEM``."""
    client_keystore: Path
    """Client key then certificate chain in one file, for Java clients."""


def make_certificates(folder: Path) -> Certificates:
    """Write a fresh CA, server and client certificates (and an unrelated CA) to ``folder``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    folder = folder.resolve()  # redis-server runs in its data folder
    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    not_before = now - datetime.timedelta(days=1)
    not_after = not_before + datetime.timedelta(days=30)

    def name(common_name: str) -> x509.Name:
        return x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "stream-scorer dev"),
                x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            ]
        )

    def key_pem(key: EllipticCurvePrivateKey) -> bytes:
        return key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def cert_pem(cert: Certificate) -> bytes:
        return cert.public_bytes(serialization.Encoding.PEM)

    def make_ca(common_name: str) -> tuple[EllipticCurvePrivateKey, Certificate]:
        key = ec.generate_private_key(ec.SECP256R1())
        subject = name(common_name)
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
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
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .sign(key, hashes.SHA256())
        )
        return key, cert

    def make_leaf(
        common_name: str,
        usage: x509.ObjectIdentifier,
        ca_key: EllipticCurvePrivateKey,
        ca_cert: Certificate,
        san: list[x509.GeneralName] | None = None,
    ) -> tuple[EllipticCurvePrivateKey, Certificate]:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder()
            .subject_name(name(common_name))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=True,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
            )
        )
        if san:
            builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
        return key, builder.sign(ca_key, hashes.SHA256())

    ca_key, ca_cert = make_ca("stream-scorer dev CA")
    _, other_ca_cert = make_ca("stream-scorer untrusted CA")
    server_key, server_cert = make_leaf(
        "localhost",
        ExtendedKeyUsageOID.SERVER_AUTH,
        ca_key,
        ca_cert,
        [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],
    )
    client_key, client_cert = make_leaf(
        "stream-scorer", ExtendedKeyUsageOID.CLIENT_AUTH, ca_key, ca_cert
    )

    certs = Certificates(
        ca=folder / "ca.pem",
        server_cert=folder / "server.pem",
        server_key=folder / "server.key",
        client_cert=folder / "client.pem",
        client_key=folder / "client.key",
        other_ca=folder / "other-ca.pem",
        server_keystore=folder / "server-keystore.pem",
        client_keystore=folder / "client-keystore.pem",
    )
    certs.ca.write_bytes(cert_pem(ca_cert))
    certs.other_ca.write_bytes(cert_pem(other_ca_cert))
    certs.server_cert.write_bytes(cert_pem(server_cert))
    certs.client_cert.write_bytes(cert_pem(client_cert))
    for path, data in [
        (certs.server_key, key_pem(server_key)),
        (certs.client_key, key_pem(client_key)),
        (certs.server_keystore, key_pem(server_key) + cert_pem(server_cert) + cert_pem(ca_cert)),
        (certs.client_keystore, key_pem(client_key) + cert_pem(client_cert) + cert_pem(ca_cert)),
    ]:
        path.touch(mode=0o600)
        path.write_bytes(data)
    return certs
