"""A real single-node Apache Kafka broker (KRaft, broker + controller) from the Maven jars.

Used by the pytest fixtures and by `make kafka-up`. The broker runs detached with its output in
``<workdir>/broker.log``; readiness means a client's metadata request was answered.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from kafka import KafkaAdminClient

from testbed import procs, tools
from testbed.polling import wait_until

CLUSTER_ID = "c2Vuc29yc2ltLXRlc3Qtaw"  # any 22-char base64 Kafka Uuid; fixed for tests

_LOG4J2 = """\
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = {log}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.statechange.name = state.change.logger
logger.statechange.level = WARN
"""

_JVM_OPTS = (
    "-Xms256m",
    "-Xmx768m",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent",
    "-Djava.awt.headless=true",
)


@dataclass
class KafkaBroker:
    """One broker in ``workdir``. With ``scram_user`` set, the client listener requires
    SASL_PLAINTEXT with SCRAM-SHA-512 (the broker talks to itself on a plaintext listener).
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
    process: subprocess.Popen[bytes] | None = None

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

    @property
    def java_classpath(self) -> str:
        return f"{tools.kafka_libs()}/*"

    @property
    def log_file(self) -> Path:
        return self.workdir / "broker.log"

    @property
    def pid_file(self) -> Path:
        return self.workdir / "broker.pid"

    def _properties(self) -> str:
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

    def _java(
        self, main_class: str, *args: str, jvm_opts: tuple[str, ...] = ("-Xmx256m",)
    ) -> list[str]:
        log4j = self.workdir / "config" / "log4j2.properties"
        return [
            "java",
            *jvm_opts,
            f"-Dlog4j2.configurationFile={log4j}",
            f"-Dkafka.logs.dir={self.workdir / 'logs'}",
            "-cp",
            self.java_classpath,
            main_class,
            *args,
        ]

    def format(self) -> None:
        """Write the configuration and format fresh storage (removing any old data)."""
        shutil.rmtree(self.workdir / "data", ignore_errors=True)
        config = self.workdir / "config"
        config.mkdir(parents=True, exist_ok=True)
        (config / "server.properties").write_text(self._properties())
        (config / "log4j2.properties").write_text(_LOG4J2.format(log=self.log_file))
        cmd = self._java(
            "kafka.tools.StorageTool",
            "format",
            "-t",
            CLUSTER_ID,
            "-c",
            str(config / "server.properties"),
        )
        if self.scram_user is not None:
            for mechanism in (
                ("SCRAM-SHA-256", "SCRAM-SHA-512") if self.secure else ("SCRAM-SHA-512",)
            ):
                cmd += [
                    "--add-scram",
                    f"{mechanism}=[name={self.scram_user},password={self.scram_password}]",
                ]
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"formatting Kafka storage failed:\n{result.stdout}{result.stderr}")

    def start(self, timeout: float = 120.0) -> None:
        """Start the broker (formatting storage first if it has none) and wait until a client's
        metadata request is answered."""
        if not (self.workdir / "data" / "meta.properties").exists():
            self.format()
        properties = str(self.workdir / "config" / "server.properties")
        cmd = self._java("kafka.Kafka", properties, jvm_opts=_JVM_OPTS)
        self.process = procs.start_detached(cmd, self.workdir / "stdout.log")
        self.pid_file.write_text(str(self.process.pid))
        wait_until(
            self._answers_metadata,
            timeout=timeout,
            message=f"Kafka broker on {self.bootstrap}",
            process=self.process,
            log_file=self.log_file,
        )

    def _answers_metadata(self) -> bool:
        bootstrap = self.bootstrap
        kwargs: dict[str, object] = {}
        if self.secure:
            kwargs = {"security_protocol": "SSL", "ssl_cafile": str(self.ca_file)}
            bootstrap = self.tls_bootstrap
        elif self.scram_user is not None:
            kwargs = {
                "security_protocol": "SASL_PLAINTEXT",
                "sasl_mechanism": "SCRAM-SHA-512",
                "sasl_plain_username": self.scram_user,
                "sasl_plain_password": self.scram_password,
            }
        admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000, **kwargs)
        try:
            admin.list_topics()
            return True
        finally:
            admin.close()

    def stop(self) -> None:
        """Stop the broker (controlled shutdown, then SIGKILL after a grace period)."""
        pid = self.process.pid if self.process else _read_pid(self.pid_file)
        if pid is not None:
            procs.stop_pid(pid)
        if self.process is not None:
            self.process.wait(timeout=10)
            self.process = None
        self.pid_file.unlink(missing_ok=True)

    def freeze(self) -> None:
        """Suspend the broker's JVM (SIGSTOP): connections stay open, nothing is answered — a
        hung broker, unlike a stopped one whose connections are refused."""
        assert self.process is not None, "the broker is not running"
        os.kill(self.process.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        """Resume a frozen broker (SIGCONT)."""
        assert self.process is not None, "the broker is not running"
        os.kill(self.process.pid, signal.SIGCONT)

    def destroy(self) -> None:
        """Stop and remove all state."""
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)


def _read_pid(pid_file: Path) -> int | None:
    try:
        return int(pid_file.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


KEYSTORE_PASSWORD = "sensorsim-test-keystore"


def make_certificates(directory: Path) -> Path:
    """A test CA (``ca.crt``), a broker certificate for 127.0.0.1/localhost signed by it in a
    PKCS#12 keystore (returned), and a client certificate signed by it (``user.crt``,
    ``user.key``). EC keys: quick to generate on a slow machine."""
    directory.mkdir(parents=True, exist_ok=True)
    keystore = directory / "broker.p12"
    if keystore.exists() and (directory / "user.crt").exists():
        return keystore
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    (directory / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    steps = [
        ["req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "3",
         "-subj", "/CN=sensorsim test CA"],
        ["req", *ec, "-keyout", "broker.key", "-out", "broker.csr", "-subj", "/CN=127.0.0.1"],
        ["x509", "-req", "-in", "broker.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
         "-CAcreateserial", "-out", "broker.crt", "-days", "3", "-extfile", "san.ext"],
        ["pkcs12", "-export", "-in", "broker.crt", "-inkey", "broker.key", "-certfile", "ca.crt",
         "-out", keystore.name, "-passout", f"pass:{KEYSTORE_PASSWORD}"],
        # a client's certificate for TLS client authentication, as a Strimzi KafkaUser's
        ["req", *ec, "-keyout", "user.key", "-out", "user.csr", "-subj", "/CN=sensorsim-user"],
        ["x509", "-req", "-in", "user.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
         "-CAcreateserial", "-out", "user.crt", "-days", "3"],
    ]  # fmt: skip
    for step in steps:
        result = subprocess.run(
            ["openssl", *step], cwd=directory, capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            raise RuntimeError(f"openssl {step[0]} failed:\n{result.stderr}")
    return keystore
