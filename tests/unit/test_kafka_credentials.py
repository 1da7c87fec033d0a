"""Strimzi-shaped Kafka credentials and producer tuning, from the spec to the pod to the client:
a literal or Secret username, the password key, a JAAS line, a TLS client certificate."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from domain.jaas import jaas_options
from producer.errors import ConfigError
from producer.kafka.client_config import admin_config, client_config
from producer.settings import load_settings
from sensorsim_operator.api.v1alpha1 import parse_spec
from sensorsim_operator.children.identity import SimulationRef
from sensorsim_operator.children.manifests import Children, build_children
from sensorsim_operator.children.pod_template import BuildDefaults

pytestmark = pytest.mark.unit

SIMULATION = SimulationRef(namespace="plant", name="line-a", uid="uid-1", generation=1)
STRIMZI_JAAS = (
    "org.apache.kafka.common.security.scram.ScramLoginModule required "
    'username="line-a-producer" password="Xy\\"z9;q";'
)


def build(kafka: dict[str, Any]) -> Children:
    spec = parse_spec(
        {"replicas": 1, "machines": 4, "kafka": {"bootstrapServers": "k:9093", **kafka}}
    )
    return build_children(SIMULATION, spec, BuildDefaults(producer_image="sensorsim:test"))


def env_of(children: Children) -> dict[str, dict[str, Any]]:
    [container] = children.stateful_set["spec"]["template"]["spec"]["containers"]
    return {entry["name"]: entry for entry in container["env"]}


def secret_ref(name: str, key: str) -> dict[str, Any]:
    return {"secretKeyRef": {"name": name, "key": key}}


def test_jaas_lines_give_their_options() -> None:
    assert jaas_options(STRIMZI_JAAS) == {"username": "line-a-producer", "password": 'Xy"z9;q'}
    assert jaas_options("a.B required user=bare ;") == {"user": "bare"}
    for bad in ("", 'username="a" password="b";', 'a.B required username="open;'):
        with pytest.raises(ValueError, match="is not one JAAS line"):
            jaas_options(bad)


def test_the_producer_takes_username_and_password_from_the_jaas_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("KAFKA_SASL_JAAS_CONFIG", STRIMZI_JAAS)
    config = client_config(load_settings())
    assert config["sasl_plain_username"] == "line-a-producer"
    assert config["sasl_plain_password"] == 'Xy"z9;q'
    monkeypatch.setenv("KAFKA_SASL_USERNAME", "given")  # a literal username wins
    assert client_config(load_settings())["sasl_plain_username"] == "given"


def test_an_unreadable_jaas_line_is_named_without_its_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("KAFKA_SASL_MECHANISM", "PLAIN")
    monkeypatch.setenv("KAFKA_SASL_JAAS_CONFIG", "password=hunter2")
    with pytest.raises(ConfigError, match="KAFKA_SASL_JAAS_CONFIG: is not one JAAS line") as error:
        load_settings()
    assert "hunter2" not in str(error.value)
    monkeypatch.setenv("KAFKA_SASL_JAAS_CONFIG", "a.B required username=u;")  # no password
    with pytest.raises(ConfigError, match="KAFKA_SASL_JAAS_CONFIG with username and password"):
        load_settings()


def test_a_client_certificate_goes_to_every_client(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("ca.crt", "user.crt", "user.key"):
        (tmp_path / name).write_text("PEM")
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SSL")
    monkeypatch.setenv("KAFKA_SSL_CAFILE", str(tmp_path / "ca.crt"))
    monkeypatch.setenv("KAFKA_SSL_CERTFILE", str(tmp_path / "user.crt"))
    monkeypatch.setenv("KAFKA_SSL_KEYFILE", str(tmp_path / "user.key"))
    settings = load_settings()
    for config in (client_config(settings), admin_config(settings)):
        assert config["ssl_certfile"] == str(tmp_path / "user.crt")
        assert config["ssl_keyfile"] == str(tmp_path / "user.key")


@pytest.mark.parametrize(
    ("env", "problem"),
    [
        ({"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CERTFILE": "user.crt"},
         "KAFKA_SSL_CERTFILE and KAFKA_SSL_KEYFILE are set together"),
        ({"KAFKA_SSL_CERTFILE": "user.crt", "KAFKA_SSL_KEYFILE": "user.key"},
         "KAFKA_SSL_CERTFILE is set but KAFKA_SECURITY_PROTOCOL is PLAINTEXT"),
        ({"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CERTFILE": "missing.crt",
          "KAFKA_SSL_KEYFILE": "user.key"}, "KAFKA_SSL_CERTFILE: missing.crt is not a readable"),
    ],
)  # fmt: skip
def test_client_certificate_mistakes_are_named(
    env: dict[str, str], problem: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("user.crt", "user.key"):
        (tmp_path / name).write_text("PEM")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ConfigError, match=problem):
        load_settings()


def test_strimzi_scram_secret_with_a_literal_username() -> None:
    children = build({
        "securityProtocol": "SASL_SSL",
        "sasl": {"username": "line-a-producer", "credentialsSecret": {"name": "line-a-producer"}},
    })  # fmt: skip
    env = env_of(children)
    assert env["KAFKA_SASL_USERNAME"]["value"] == "line-a-producer"
    assert env["KAFKA_SASL_PASSWORD"]["valueFrom"] == secret_ref("line-a-producer", "password")
    assert "KAFKA_SASL_JAAS_CONFIG" not in env


def test_strimzi_scram_secret_by_its_jaas_line_alone() -> None:
    children = build({
        "securityProtocol": "SASL_SSL",
        "sasl": {"credentialsSecret": {"name": "u", "jaasConfigKey": "sasl.jaas.config"}},
    })  # fmt: skip
    env = env_of(children)
    assert env["KAFKA_SASL_JAAS_CONFIG"]["valueFrom"] == secret_ref("u", "sasl.jaas.config")
    assert "KAFKA_SASL_USERNAME" not in env  # the Secret has no such key: the pod would not start
    assert "KAFKA_SASL_PASSWORD" not in env
    assert "sasl.jaas.config" not in str(children.config_map)


def test_strimzi_tls_secret_is_mounted_for_client_authentication() -> None:
    children = build({
        "securityProtocol": "SSL",
        "tls": {"caSecret": {"name": "cluster-ca-cert"},
                "clientCertificateSecret": {"name": "line-a-producer"}},
    })  # fmt: skip
    pod = children.stateful_set["spec"]["template"]["spec"]
    volume = next(v for v in pod["volumes"] if v["name"] == "kafka-client-cert")
    assert volume["secret"] == {
        "secretName": "line-a-producer",
        "items": [{"key": "user.crt", "path": "user.crt"}, {"key": "user.key", "path": "user.key"}],
        "defaultMode": 0o440,
    }
    [container] = pod["containers"]
    mount = next(m for m in container["volumeMounts"] if m["name"] == "kafka-client-cert")
    env = env_of(children)
    assert env["KAFKA_SSL_CERTFILE"]["value"] == f"{mount['mountPath']}/user.crt"
    assert env["KAFKA_SSL_KEYFILE"]["value"] == f"{mount['mountPath']}/user.key"
    assert mount["readOnly"] is True


def test_producer_tuning_is_allow_listed() -> None:
    env = env_of(build({"producer": {"lingerMs": 25, "batchSize": 131072, "maxPendingRecords": 9}}))
    assert env["KAFKA_LINGER_MS"]["value"] == "25"
    assert env["KAFKA_BATCH_SIZE"]["value"] == "131072"
    assert env["KAFKA_MAX_PENDING_RECORDS"]["value"] == "9"
    for extra in ({"acks": "1"}, {"bufferMemory": 1}, {"lingerMs": -1}):
        with pytest.raises(ValueError, match="producer"):
            build({"producer": extra})
