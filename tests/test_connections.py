"""Every Kafka client's options come from one function, the Faust app's too; TLS files load."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth
from pydantic import SecretStr

from stream_scorer.connections.kafka import kafka_options, ssl_context
from stream_scorer.dev.tls import Certificates, make_certificates
from stream_scorer.errors import ConfigError
from stream_scorer.settings import Settings, load_settings
from stream_scorer.worker.app import faust_credentials


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("certs"))


def settings_for(protocol: str, certs: Certificates, **more: Any) -> Settings:
    given: dict[str, Any] = {"kafka_security_protocol": protocol, **more}
    if protocol.startswith("SASL_"):
        given |= {"kafka_sasl_username": "scorer", "kafka_sasl_password": "pw-9d1e"}
        given.setdefault("kafka_sasl_mechanism", "SCRAM-SHA-256")
    if protocol in ("SSL", "SASL_SSL"):
        given["kafka_ssl_cafile"] = certs.ca
    return Settings(**given)


@pytest.mark.parametrize("protocol", ["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"])
def test_faust_connects_as_every_other_client(protocol: str, certs: Certificates) -> None:
    settings = settings_for(protocol, certs)
    ours = kafka_options(settings)
    assert ours.pop("bootstrap_servers") == settings.kafka_bootstrap_servers
    faust = dict(credentials_to_aiokafka_auth(faust_credentials(settings)))
    assert faust.keys() - {"ssl_context"} == ours.keys() - {"ssl_context"}
    for key in ours.keys() - {"ssl_context"}:
        assert faust[key] == ours[key], key
    assert (faust.get("ssl_context") is None) == (ours.get("ssl_context") is None)
    if protocol.startswith("SASL_"):
        assert ours["sasl_plain_password"] == "pw-9d1e"
        assert ours["sasl_mechanism"] == "SCRAM-SHA-256"


def test_tls_context_trusts_the_ca_file_and_checks_names(certs: Certificates) -> None:
    context = ssl_context(settings_for("SSL", certs))
    assert context is not None
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname
    ca = x509.load_pem_x509_certificate(certs.ca.read_bytes())
    name = ca.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    subjects = [dict(x[0] for x in c["subject"]) for c in context.get_ca_certs()]
    assert [s["commonName"] for s in subjects] == [name]  # that CA, and only it
    loose = ssl_context(settings_for("SSL", certs, kafka_ssl_check_hostname=False))
    assert loose is not None
    assert not loose.check_hostname
    assert ssl_context(settings_for("SASL_PLAINTEXT", certs)) is None


def test_a_client_key_that_does_not_load_is_a_config_error(
    certs: Certificates, tmp_path: Path
) -> None:
    settings = settings_for(
        "SSL",
        certs,
        kafka_ssl_certfile=certs.client_cert,
        kafka_ssl_keyfile=certs.server_key,  # the key of another certificate
        kafka_ssl_key_password="kp-77aa",
    )
    with pytest.raises(ConfigError, match="SCORER_KAFKA_SSL_KEYFILE") as info:
        ssl_context(settings)
    assert "kp-77aa" not in str(info.value)
    good = settings_for(
        "SSL", certs, kafka_ssl_certfile=certs.client_cert, kafka_ssl_keyfile=certs.client_key
    )
    assert ssl_context(good) is not None
    # Passwords OpenSSL cannot take at all, for an encrypted key: too long, or not text.
    # Named, never quoted.
    key = serialization.load_pem_private_key(certs.client_key.read_bytes(), None)
    locked = tmp_path / "locked.key"
    locked.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"right-password"),
        )
    )
    for odd in ("x" * 2000, "k\udcffp"):
        with pytest.raises(ConfigError, match="SCORER_KAFKA_SSL_KEYFILE") as info:
            ssl_context(
                good.model_copy(
                    update={"kafka_ssl_keyfile": locked, "kafka_ssl_key_password": SecretStr(odd)}
                )
            )
        assert odd not in str(info.value)


def test_a_cluster_client_with_a_client_certificate_is_made_without_a_connection(
    certs: Certificates,
) -> None:
    """redis-py's cluster client takes no key password: it is not passed (nor accepted)."""
    from redis.asyncio.cluster import RedisCluster

    from stream_scorer.connections.redis import connect_settings

    settings = Settings(
        redis_url="rediss://127.0.0.1:1",
        redis_cluster=True,
        redis_ssl_cafile=certs.ca,
        redis_ssl_certfile=certs.client_cert,
        redis_ssl_keyfile=certs.client_key,
    )
    assert isinstance(connect_settings(settings), RedisCluster)
    with pytest.raises(ConfigError, match="cannot use an encrypted key"):
        load_settings(**{**settings.model_dump(), "redis_ssl_key_password": "k"})


def test_a_redis_ca_file_that_holds_no_certificate_is_a_config_error(
    certs: Certificates, tmp_path: Path
) -> None:
    from stream_scorer.connections.redis import connect_settings

    junk = tmp_path / "ca.pem"
    junk.write_text("not a certificate\n")
    settings = Settings(redis_url="rediss://127.0.0.1:1", redis_ssl_cafile=junk)
    with pytest.raises(ConfigError, match="SCORER_REDIS_SSL_CAFILE"):
        connect_settings(settings)
