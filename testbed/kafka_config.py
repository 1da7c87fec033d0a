"""The configuration of one test broker (KRaft, broker + controller in one process): its
directory, ports and credentials, the addresses and files clients need, and the
``server.properties`` that makes it so.

Kept apart from running the broker (``testbed.kafka``) so the listener layout, which every
security test depends on, reads in one place.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from testbed import procs
from testbed.kafka_certificates import KEYSTORE_PASSWORD, make_certificates


@dataclass
class KafkaBrokerConfig:
    """What one broker in ``workdir`` is, before it runs. With ``scram_user`` set, the client
    listener requires SASL_PLAINTEXT with SCRAM-SHA-512 (the broker talks to itself on a
    plaintext listener).
    With ``secure`` (and ``scram_user``/``scram_password``), the client listener (``port``) is
    SASL_SSL offering PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512 for that user, ``tls_port`` is
    a TLS-only listener and ``mtls_port`` a TLS listener that requires a client certificate
    signed by the CA (``client_cert_file``/``client_key_file`` is one); all present a
    certificate for 127.0.0.1 signed by ``ca_file``."""

    workdir: Path
    port: int = field(default_factory=procs.free_port)
    controller_port: int = field(default_factory=procs.free_port)
    internal_port: int = field(default_factory=procs.free_port)
    scram_user: str | None = None
    scram_password: str | None = None
    secure: bool = False
    tls_port: int = field(default_factory=procs.free_port)
    mtls_port: int = field(default_factory=procs.free_port)

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def username(self) -> str | None:
        return self.scram_user

    @property
    def password(self) -> str | None:
        return self.scram_password

    @property
    def tls_bootstrap(self) -> str:
        return f"127.0.0.1:{self.tls_port}"

    @property
    def mtls_bootstrap(self) -> str:
        return f"127.0.0.1:{self.mtls_port}"

    @property
    def ca_file(self) -> Path:
        return self.workdir / "tls" / "ca.crt"

    @property
    def client_cert_file(self) -> Path:
        """A client certificate signed by the CA (CN=sensorsim-user), PEM, as Strimzi's
        ``user.crt``; its key (unencrypted PEM) is ``client_key_file``."""
        return self.workdir / "tls" / "user.crt"

    @property
    def client_key_file(self) -> Path:
        return self.workdir / "tls" / "user.key"

    def server_properties(self) -> str:
        """The broker's ``server.properties``: plaintext, SCRAM or the secure listeners."""
        data = self.workdir / "data"
        common = f"""\
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:{self.controller_port}
controller.listener.names=CONTROLLER
log.dirs={data}
num.network.threads=2
num.io.threads=2
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
auto.create.topics.enable=true
group.initial.rebalance.delay.ms=0
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
share.coordinator.state.topic.num.partitions=1
log.retention.hours=1
log.segment.bytes=67108864
"""
        if self.secure:
            return common + self._secure_listeners()
        if self.scram_user is None:
            return (
                common
                + f"""\
listeners=PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}
advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
"""
            )
        return (
            common
            + f"""\
listeners=CLIENT://127.0.0.1:{self.port},INTERNAL://127.0.0.1:{self.internal_port},\
CONTROLLER://127.0.0.1:{self.controller_port}
advertised.listeners=CLIENT://127.0.0.1:{self.port},INTERNAL://127.0.0.1:{self.internal_port}
inter.broker.listener.name=INTERNAL
listener.security.protocol.map=CONTROLLER:PLAINTEXT,INTERNAL:PLAINTEXT,CLIENT:SASL_PLAINTEXT
sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.client.sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.client.scram-sha-512.sasl.jaas.config=\
org.apache.kafka.common.security.scram.ScramLoginModule required;
"""
        )

    def _secure_listeners(self) -> str:
        keystore = make_certificates(self.workdir / "tls")
        jaas = {
            "plain": "org.apache.kafka.common.security.plain.PlainLoginModule required "
            f'user_{self.scram_user}="{self.scram_password}";',
            "scram-sha-256": "org.apache.kafka.common.security.scram.ScramLoginModule required;",
            "scram-sha-512": "org.apache.kafka.common.security.scram.ScramLoginModule required;",
        }
        lines = [
            f"listeners=CLIENT://127.0.0.1:{self.port},TLS://127.0.0.1:{self.tls_port},"
            f"MTLS://127.0.0.1:{self.mtls_port},INTERNAL://127.0.0.1:{self.internal_port},"
            f"CONTROLLER://127.0.0.1:{self.controller_port}",
            f"advertised.listeners=CLIENT://127.0.0.1:{self.port},TLS://127.0.0.1:{self.tls_port},"
            f"MTLS://127.0.0.1:{self.mtls_port},INTERNAL://127.0.0.1:{self.internal_port}",
            "inter.broker.listener.name=INTERNAL",
            "listener.security.protocol.map=CONTROLLER:PLAINTEXT,INTERNAL:PLAINTEXT,"
            "CLIENT:SASL_SSL,TLS:SSL,MTLS:SSL",
            "listener.name.mtls.ssl.client.auth=required",
            "listener.name.mtls.ssl.truststore.type=PEM",
            f"listener.name.mtls.ssl.truststore.location={self.ca_file}",
            "ssl.keystore.type=PKCS12",
            f"ssl.keystore.location={keystore}",
            f"ssl.keystore.password={KEYSTORE_PASSWORD}",
            f"ssl.key.password={KEYSTORE_PASSWORD}",
            "sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512",
            "listener.name.client.sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512",
            *(f"listener.name.client.{m}.sasl.jaas.config={c}" for m, c in jaas.items()),
        ]
        return "\n".join(lines) + "\n"
