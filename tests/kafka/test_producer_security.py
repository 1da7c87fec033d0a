"""The producer against a broker that requires TLS, and SASL over TLS, with each mechanism.

One broker for the module: a SASL_SSL listener offering PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512,
a TLS-only listener and a TLS listener requiring a client certificate, all with a certificate
signed by a test CA the producer is given with KAFKA_SSL_CAFILE.

The Strimzi tests build the producer pod with the operator's own builders from a spec naming
a Secret shaped exactly like a Strimzi ``KafkaUser`` Secret, resolve the pod's ``secretKeyRef``
variables and Secret volumes from that Secret as the kubelet would, and run the producer with
that environment against the broker.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from sensorsim_operator.api.v1alpha1 import parse_spec
from sensorsim_operator.children.identity import SimulationRef
from sensorsim_operator.children.manifests import build_children
from sensorsim_operator.children.pod_template import BuildDefaults
from testbed import tools
from testbed.kafka import KafkaBroker
from tests.producer_kafka_support import producer_env, read_topic, run_producer, unique_topic

pytestmark = pytest.mark.kafka

USER, PASSWORD = "sensorsim", "sensorsim-tls-secret"


@pytest.fixture(scope="module")
def secure_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    tools.install(tools.KAFKA)
    broker = KafkaBroker(
        tmp_path_factory.mktemp("kafka-secure"), scram_user=USER, scram_password=PASSWORD,
        secure=True,
    )  # fmt: skip
    try:
        broker.start()
        yield broker
    finally:
        broker.destroy()


def client_settings(broker: KafkaBroker, mechanism: str | None) -> dict[str, Any]:
    if mechanism is None:
        return {"security_protocol": "SSL", "ssl_cafile": str(broker.ca_file)}
    return {
        "security_protocol": "SASL_SSL",
        "ssl_cafile": str(broker.ca_file),
        "sasl_mechanism": mechanism,
        "sasl_plain_username": USER,
        "sasl_plain_password": PASSWORD,
    }


@pytest.mark.parametrize(
    "mechanism",
    ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", None],
    ids=["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "TLS-only"],
)
def test_records_are_delivered_over_tls_with_each_sasl_mechanism(
    secure_broker: KafkaBroker, mechanism: str | None
) -> None:
    topic = unique_topic(f"secure-{(mechanism or 'tls').lower()}")
    bootstrap = secure_broker.bootstrap if mechanism else secure_broker.tls_bootstrap
    security: dict[str, str] = {"KAFKA_SSL_CAFILE": str(secure_broker.ca_file)}
    if mechanism is None:
        security["KAFKA_SECURITY_PROTOCOL"] = "SSL"
    else:
        security |= {
            "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "KAFKA_SASL_MECHANISM": mechanism,
            "KAFKA_SASL_USERNAME": USER,
            "KAFKA_SASL_PASSWORD": PASSWORD,
        }
    env = producer_env(bootstrap, topic, NUM_MACHINES="4", SIMULATION_INTERVAL_MS="0", **security)
    result = run_producer(env, "--max-messages", "40", timeout=120)
    assert result.returncode == 0, result.stderr
    records = read_topic(bootstrap, topic, **client_settings(secure_broker, mechanism))
    assert len(records) == 40
    assert PASSWORD not in result.stderr


def test_a_wrong_password_over_tls_is_one_clear_line(secure_broker: KafkaBroker) -> None:
    env = producer_env(
        secure_broker.bootstrap, unique_topic("secure-wrong"), KAFKA_SECURITY_PROTOCOL="SASL_SSL",
        KAFKA_SSL_CAFILE=str(secure_broker.ca_file), KAFKA_SASL_MECHANISM="SCRAM-SHA-256",
        KAFKA_SASL_USERNAME=USER, KAFKA_SASL_PASSWORD="not-the-password",
        KAFKA_CONNECT_TIMEOUT_MS="45000",  # a loaded machine can need more than 10 s
    )  # fmt: skip
    result = run_producer(env, "--max-messages", "4", timeout=120)
    assert result.returncode == 3, result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1, result.stderr
    assert "rejected the credentials" in errors[0]
    assert "not-the-password" not in result.stderr


Secret = Mapping[str, bytes]


def strimzi_scram_secret() -> Secret:
    """The keys and values Strimzi writes for a KafkaUser with ``authentication: scram-sha-512``
    (no username key: the username is the KafkaUser's name)."""
    jaas = (
        "org.apache.kafka.common.security.scram.ScramLoginModule required "
        f'username="{USER}" password="{PASSWORD}";'
    )
    return {"password": PASSWORD.encode(), "sasl.jaas.config": jaas.encode()}


def strimzi_tls_secret(broker: KafkaBroker) -> Secret:
    """The keys Strimzi writes for a KafkaUser with ``authentication: tls`` (``ca.crt`` there is
    the clients CA; the cluster CA comes from ``<cluster>-cluster-ca-cert``)."""
    return {
        "ca.crt": broker.ca_file.read_bytes(),
        "user.crt": broker.client_cert_file.read_bytes(),
        "user.key": broker.client_key_file.read_bytes(),
        "user.p12": b"(unused)",
        "user.password": b"(unused)",
    }


def pod_environment(
    kafka: dict[str, Any], secrets: Mapping[str, Secret], root: Path
) -> dict[str, str]:
    """The producer's environment in the pod the operator builds for ``kafka``: literal values,
    ``secretKeyRef`` variables and Secret volumes resolved from ``secrets`` (a key the Secret
    lacks fails, as the kubelet refuses to start such a container), mount paths under
    ``root``."""
    spec = parse_spec({"replicas": 1, "machines": 4, "intervalMs": 0, "kafka": kafka})
    simulation = SimulationRef(namespace="plant", name="strimzi", uid="uid-1", generation=1)
    children = build_children(simulation, spec, BuildDefaults(producer_image="unused"))
    pod = children.stateful_set["spec"]["template"]["spec"]
    [container] = pod["containers"]
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    mounted: dict[str, str] = {}
    for mount in container["volumeMounts"]:
        source = volumes[mount["name"]].get("secret")
        if source is None:
            continue
        directory = root / mount["name"]
        directory.mkdir(parents=True)
        for item in source["items"]:
            (directory / item["path"]).write_bytes(secrets[source["secretName"]][item["key"]])
        mounted[mount["mountPath"]] = str(directory)
    env: dict[str, str] = {}
    for entry in container["env"]:
        if "value" in entry:
            value = entry["value"]
            for path, directory in mounted.items():
                value = value.replace(path, directory)
            env[entry["name"]] = value
        elif "secretKeyRef" in entry["valueFrom"]:
            ref = entry["valueFrom"]["secretKeyRef"]
            env[entry["name"]] = secrets[ref["name"]][ref["key"]].decode()
    return {**os.environ, **env, "SHARD_INDEX": "0", "HTTP_PORT": "0", "LOG_FORMAT": "text"}


@pytest.mark.parametrize(
    "sasl",
    [
        {"username": USER, "credentialsSecret": {"name": "producer"}},
        {"credentialsSecret": {"name": "producer", "jaasConfigKey": "sasl.jaas.config"}},
    ],
    ids=["username-and-password-key", "sasl.jaas.config-alone"],
)
def test_a_strimzi_scram_secret_works_unchanged(
    secure_broker: KafkaBroker, sasl: dict[str, Any], tmp_path: Path
) -> None:
    topic = unique_topic("strimzi-scram")
    kafka = {
        "bootstrapServers": secure_broker.bootstrap,
        "topic": topic,
        "createTopic": True,
        "securityProtocol": "SASL_SSL",
        "sasl": {"mechanism": "SCRAM-SHA-512", **sasl},
        "tls": {"caSecret": {"name": "cluster-ca-cert"}},
    }
    secrets = {
        "producer": strimzi_scram_secret(),
        "cluster-ca-cert": {"ca.crt": secure_broker.ca_file.read_bytes()},
    }
    env = pod_environment(kafka, secrets, tmp_path)
    result = run_producer(env, "--max-messages", "20", timeout=120)
    assert result.returncode == 0, result.stderr
    records = read_topic(
        secure_broker.bootstrap, topic, **client_settings(secure_broker, "SCRAM-SHA-512")
    )
    assert len(records) == 20
    assert PASSWORD not in result.stderr


def test_a_strimzi_tls_secret_authenticates_the_client(
    secure_broker: KafkaBroker, tmp_path: Path
) -> None:
    topic = unique_topic("strimzi-mtls")
    kafka = {
        "bootstrapServers": secure_broker.mtls_bootstrap,
        "topic": topic,
        "createTopic": True,
        "securityProtocol": "SSL",
        "tls": {
            "caSecret": {"name": "cluster-ca-cert"},
            "clientCertificateSecret": {"name": "producer"},
        },
    }
    secrets = {
        "producer": strimzi_tls_secret(secure_broker),
        "cluster-ca-cert": {"ca.crt": secure_broker.ca_file.read_bytes()},
    }
    env = pod_environment(kafka, secrets, tmp_path / "with")
    result = run_producer(env, "--max-messages", "20", timeout=120)
    assert result.returncode == 0, result.stderr
    mtls = {
        "security_protocol": "SSL",
        "ssl_cafile": str(secure_broker.ca_file),
        "ssl_certfile": str(secure_broker.client_cert_file),
        "ssl_keyfile": str(secure_broker.client_key_file),
    }
    assert len(read_topic(secure_broker.mtls_bootstrap, topic, **mtls)) == 20

    # the same listener refuses a client without a certificate
    kafka["tls"] = {"caSecret": {"name": "cluster-ca-cert"}}
    env = pod_environment(kafka, secrets, tmp_path / "without")
    refused = run_producer(
        {**env, "KAFKA_CONNECT_TIMEOUT_MS": "8000"}, "--max-messages", "4", timeout=120
    )
    assert refused.returncode == 3, refused.stderr
    assert "Traceback" not in refused.stderr
