"""A real single-node Apache Kafka broker (KRaft, broker + controller) from the Maven jars.

Used by the pytest fixtures and by `make kafka-up`. Its listeners, credentials and
``server.properties`` are in ``testbed.kafka_config``, its TLS material in
``testbed.kafka_certificates``; this module formats its storage and runs it. The broker runs
detached with its output in ``<workdir>/broker.log``; readiness means a client's metadata
request was answered.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

from kafka import KafkaAdminClient

from testbed import procs, tools
from testbed.kafka_config import KafkaBrokerConfig
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
class KafkaBroker(KafkaBrokerConfig):
    """One broker in ``workdir``, configured as ``KafkaBrokerConfig`` says, run as a detached
    JVM whose pid is kept in ``pid_file`` so another command can stop it."""

    process: subprocess.Popen[bytes] | None = None

    @property
    def java_classpath(self) -> str:
        return f"{tools.kafka_libs()}/*"

    @property
    def log_file(self) -> Path:
        return self.workdir / "broker.log"

    @property
    def pid_file(self) -> Path:
        return self.workdir / "broker.pid"

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
        (config / "server.properties").write_text(self.server_properties())
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
