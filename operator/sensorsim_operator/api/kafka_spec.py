"""The ``kafka`` part of a SensorSimulation's spec: brokers, topic, security and client settings.

Credentials are never part of the spec: it names the Secrets that hold them, and the producer
pods read them from there.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, ConfigDict, Field

from domain import settings_contract as contract
from domain.settings_vocabulary import (
    Compression,
    DeliveryGuarantee,
    SaslMechanism,
    SecurityProtocol,
)
from sensorsim_operator.api.contract_fields import contract_field
from sensorsim_operator.api.kubernetes_types import ApiModel, DataKey, ObjectName, cel

BootstrapServers = Annotated[
    str, AfterValidator(contract.setting("KAFKA_BOOTSTRAP_SERVERS").validate)
]
Topic = Annotated[str, AfterValidator(contract.setting("KAFKA_TOPIC").validate)]


class SaslCredentialsRef(ApiModel):
    """Where the SASL credentials live. The operator never reads or copies them: pods get them
    through ``secretKeyRef`` environment variables. A Strimzi ``KafkaUser`` Secret works as it
    is: ``password`` (with the username given in ``sasl.username``), or ``sasl.jaas.config``
    alone (``jaasConfigKey``)."""

    name: ObjectName = Field(description="Name of a Secret in the simulation's namespace.")
    username_key: DataKey = Field(
        default="username",
        description="Key of the Secret holding the SASL username (unused when sasl.username or "
        "jaasConfigKey is set).",
    )
    password_key: DataKey = Field(
        default="password",
        description="Key of the Secret holding the SASL password (unused when jaasConfigKey is "
        "set).",
    )
    jaas_config_key: DataKey | None = Field(
        default=None,
        description="Key of the Secret holding a JAAS line with the username and password, "
        "e.g. 'sasl.jaas.config' of a Strimzi KafkaUser Secret (SCRAM); set, the username and "
        "password are read from it (sasl.username still wins for the username).",
    )


class SaslSpec(ApiModel):
    """SASL authentication to Kafka (used with securityProtocol SASL_PLAINTEXT or SASL_SSL)."""

    mechanism: SaslMechanism = Field(
        default=SaslMechanism.SCRAM_SHA_512,
        description="SASL mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.",
    )
    username: str | None = Field(
        default=None,
        min_length=1,
        max_length=253,
        description="The SASL username as a literal (e.g. the KafkaUser's name); unset = from "
        "the Secret.",
    )
    credentials_secret: SaslCredentialsRef = Field(
        description="Secret holding the SASL password, and the username unless it is given "
        "(never copied by the operator)."
    )


class CaSecretRef(ApiModel):
    """A CA bundle (PEM) in a Secret, mounted read-only into the producer pods."""

    name: ObjectName = Field(description="Name of a Secret in the simulation's namespace.")
    key: DataKey = Field(default="ca.crt", description="Key of the Secret holding the PEM bundle.")


class ClientCertificateRef(ApiModel):
    """A client certificate and its key (PEM) in a Secret, for TLS client authentication; the
    keys default to those of a Strimzi ``KafkaUser`` Secret (``authentication: tls``)."""

    name: ObjectName = Field(description="Name of a Secret in the simulation's namespace.")
    certificate_key: DataKey = Field(
        default="user.crt", description="Key of the Secret holding the certificate (PEM)."
    )
    key_key: DataKey = Field(
        default="user.key",
        description="Key of the Secret holding the certificate's unencrypted private key (PEM).",
    )


class TlsSpec(ApiModel):
    """TLS to Kafka (used with securityProtocol SSL or SASL_SSL)."""

    ca_secret: CaSecretRef | None = Field(
        default=None,
        description=(
            "CA bundle that signs the brokers' certificates; unset = the image's system CAs."
        ),
    )
    client_certificate_secret: ClientCertificateRef | None = Field(
        default=None,
        description="Client certificate and key for TLS client authentication (mTLS); unset = "
        "none.",
    )


class ProducerTuning(ApiModel):
    """The Kafka producer's batching, from an allow-list (acks stays all, with idempotence;
    compression is kafka.compression)."""

    linger_ms: int = contract_field(
        "KAFKA_LINGER_MS", "How long a batch may wait for more records (ms)."
    )
    batch_size: int = contract_field("KAFKA_BATCH_SIZE", "Largest record batch (bytes).")
    max_pending_records: int = contract_field(
        "KAFKA_MAX_PENDING_RECORDS",
        "The producer's buffer: records waiting for acknowledgement before the cycle loop "
        "waits (the Python client has no buffer.memory; this bound takes its place).",
    )


class KafkaSpec(ApiModel):
    """Where and how the producer pods publish readings."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "!self.securityProtocol.startsWith('SASL_') || has(self.sasl)",
                    "kafka.sasl is required when kafka.securityProtocol is SASL_PLAINTEXT "
                    "or SASL_SSL",
                    ".sasl",
                ),
                cel(
                    "!has(self.sasl) || self.securityProtocol.startsWith('SASL_')",
                    "kafka.sasl is only used with kafka.securityProtocol SASL_PLAINTEXT or "
                    "SASL_SSL; set the protocol or remove sasl",
                    ".sasl",
                ),
                cel(
                    "!has(self.tls) || self.securityProtocol in ['SSL', 'SASL_SSL']",
                    "kafka.tls is only used with kafka.securityProtocol SSL or SASL_SSL; "
                    "set the protocol or remove tls",
                    ".tls",
                ),
            ]
        }
    )

    bootstrap_servers: BootstrapServers = contract_field(
        "KAFKA_BOOTSTRAP_SERVERS",
        "Comma-separated host:port list of Kafka brokers (ports 1-65535), e.g. "
        "'kafka.kafka.svc:9092'. Required.",
        required=True,
    )
    topic: Topic = contract_field(
        "KAFKA_TOPIC",
        "Topic the readings are published to (Kafka topic name rules; not '.', '..' or an "
        "internal '__' topic).",
    )
    security_protocol: SecurityProtocol = contract_field(
        "KAFKA_SECURITY_PROTOCOL",
        "Kafka security protocol: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL.",
    )
    sasl: SaslSpec | None = Field(
        default=None,
        description="SASL mechanism and credentials; required with SASL_* security protocols.",
    )
    tls: TlsSpec | None = Field(
        default=None, description="TLS settings; only with the SSL or SASL_SSL security protocol."
    )
    compression: Compression = contract_field(
        "KAFKA_COMPRESSION_TYPE", "Producer compression codec: none, gzip, snappy, lz4, zstd."
    )
    create_topic: bool = contract_field(
        "KAFKA_CREATE_TOPIC",
        "Create the topic at start when it does not exist (needs broker permission).",
    )
    partitions: int = contract_field(
        "KAFKA_TOPIC_PARTITIONS", "Partition count used when createTopic creates the topic."
    )
    delivery_guarantee: DeliveryGuarantee = contract_field(
        "DELIVERY_GUARANTEE",
        "at-least-once (a consumer de-duplicates on machine and seq after a crash) or "
        "exactly-once (each checkpoint interval is one transaction: a read_committed consumer "
        "sees every cycle once, one checkpoint interval late).",
    )
    producer: ProducerTuning = Field(
        default_factory=ProducerTuning,
        description="Producer batching: lingerMs, batchSize, maxPendingRecords (nothing else).",
    )
