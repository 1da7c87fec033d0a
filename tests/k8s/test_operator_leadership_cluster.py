"""One active operator: operator processes competing for the Lease on a real control plane.

The operators differ in their producer image, so if both handled simulations they would
re-apply the StatefulSet's template in turn (a fight the StatefulSet's generation would show).
Short lease timings keep the test fast; the rules are the same as with the defaults.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from testbed.cluster import KubeCluster
from testbed.operator import OperatorProcess
from testbed.polling import wait_until
from tests.k8s.test_operator_e2e import Api

pytestmark = pytest.mark.k8s

REPO = Path(__file__).resolve().parents[2]
CRD_FILE = REPO / "charts" / "sensorsim" / "crds" / "sensorsimulations.sensorsim.io.yaml"
LEASE = "sensorsim-operator"
LEASE_DURATION = 6
TIMING = {
    "OPERATOR_LEASE_DURATION_SECONDS": str(LEASE_DURATION),
    "OPERATOR_LEASE_RENEW_DEADLINE_SECONDS": "4",
    "OPERATOR_LEASE_RETRY_PERIOD_SECONDS": "1",
}
# Time for a standby to notice a free Lease and write itself in, on a loaded machine.
TAKEOVER_SLACK = 6.0
QUIET_PERIOD = 12.0  # several resyncs (every 2 s) of both operators
TIMEOUT = 120.0


class Cluster(Api):
    """kubectl against one namespace (simulations and the Lease alike), parsed."""

    def holder(self) -> str:
        lease = self.get("lease", LEASE)
        return str((lease or {}).get("spec", {}).get("holderIdentity") or "")

    def create_simulation(self, name: str) -> None:
        simulation = {
            "apiVersion": "sensorsim.io/v1alpha1",
            "kind": "SensorSimulation",
            "metadata": {"name": name},
            "spec": {
                "replicas": 2,
                "machines": 4,
                "kafka": {"bootstrapServers": "kafka.invalid:9092", "topic": "sensor-data"},
            },
        }
        self.kubectl("apply", "-f", "-", input=json.dumps(simulation))

    def producer_image(self, simulation: str) -> str | None:
        """The producer image of ``simulation``'s StatefulSet (None while there is none)."""
        sts = self.get("statefulset", simulation)
        if sts is None:
            return None
        return str(sts["spec"]["template"]["spec"]["containers"][0]["image"])


def leading_identity(operator: OperatorProcess) -> str | None:
    """The identity ``operator`` leads as, once its log says it does."""
    found = re.search(r"leading as (\S+)", operator.log_file.read_text(errors="replace"))
    return found.group(1) if found else None


def wait(check: Any, what: str, operator: OperatorProcess | None = None) -> None:
    wait_until(
        check,
        timeout=TIMEOUT,
        message=what,
        log_file=operator.log_file if operator else None,
        process=operator.process if operator else None,
    )


@pytest.fixture
def cluster(k8s_cluster: KubeCluster) -> Iterator[Cluster]:
    k8s_cluster.kubectl("apply", "--server-side", "-f", str(CRD_FILE))
    k8s_cluster.kubectl("wait", "--for=condition=Established", "crd/sensorsimulations.sensorsim.io")
    namespace = f"lead-{uuid.uuid4().hex[:8]}"
    k8s_cluster.kubectl("create", "namespace", namespace)
    try:
        yield Cluster(k8s_cluster, namespace)
    finally:
        k8s_cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


@pytest.fixture
def operators(
    k8s_cluster: KubeCluster, cluster: Cluster, tmp_path: Path
) -> Iterator[dict[str, OperatorProcess]]:
    """Operators "a", "b" and "c" (not started), each with its own producer image; the Lease
    lives in the namespace they watch."""
    made = {
        name: OperatorProcess(
            k8s_cluster.env,
            tmp_path / f"operator-{name}.log",
            WATCH_NAMESPACES=cluster.namespace,
            OPERATOR_NAMESPACE=cluster.namespace,
            PRODUCER_IMAGE=f"sensorsim:{name}",
            OPERATOR_RESYNC_SECONDS="2",
            **TIMING,
        )
        for name in ("a", "b", "c")
    }
    try:
        yield made
    finally:
        for operator in made.values():
            operator.stop()


def test_one_operator_leads_a_standby_takes_over_and_none_fight(
    cluster: Cluster, operators: dict[str, OperatorProcess]
) -> None:
    a, b, c = operators["a"], operators["b"], operators["c"]
    a.start()
    wait(lambda: leading_identity(a) is not None, "operator a to lead", a)
    first = leading_identity(a)
    assert cluster.holder() == first
    b.start()  # /healthz answers while it stands by
    wait(lambda: f"held by {first}" in b.log_file.read_text(), "operator b to stand by", b)

    cluster.create_simulation("first")
    wait(lambda: cluster.producer_image("first") == "sensorsim:a", "the leader's children", a)

    # Quiet period with both running: nothing re-applies the template, the standby handled
    # nothing (its resync would apply its own image), the Lease stays with the leader.
    sts = cluster.get("statefulset", "first")
    assert sts is not None
    generation = sts["metadata"]["generation"]
    time.sleep(QUIET_PERIOD)
    sts = cluster.get("statefulset", "first")
    assert sts is not None
    assert sts["metadata"]["generation"] == generation, "the StatefulSet was re-applied"
    assert cluster.producer_image("first") == "sensorsim:a"
    assert cluster.holder() == first
    assert b.process is not None
    assert b.process.poll() is None
    assert b.metric("sensorsim_operator_leader") == 0
    assert b.metric("sensorsim_operator_reconciles_total") == 0
    assert a.metric("sensorsim_operator_leader") == 1
    assert a.metric("sensorsim_operator_reconciles_total") > 0

    # The leader dies without a word: the standby takes over once the Lease expires.
    a.kill()
    killed = time.monotonic()
    wait(lambda: leading_identity(b) is not None, "operator b to take over", b)
    took = time.monotonic() - killed
    assert took <= LEASE_DURATION + TAKEOVER_SLACK, f"took over after {took:.1f} s"
    second = leading_identity(b)
    assert second != first
    assert cluster.holder() == second
    cluster.create_simulation("second")
    wait(lambda: cluster.producer_image("second") == "sensorsim:b", "the new leader's children", b)
    wait(lambda: cluster.producer_image("first") == "sensorsim:b", "the new leader's template", b)

    # A clean stop releases the Lease: the next standby takes over at once.
    c.start()
    wait(lambda: f"held by {second}" in c.log_file.read_text(), "operator c to stand by", c)
    b.stop()
    assert b.process is not None
    assert b.process.returncode == 0
    stopped = time.monotonic()
    wait(lambda: leading_identity(c) is not None, "operator c to take over", c)
    assert time.monotonic() - stopped < LEASE_DURATION, "the Lease was not released"

    # A leader that finds the Lease held by someone else stops handling at once: it exits 1.
    cluster.kubectl(
        "patch", "lease", LEASE, "--type=merge", "-p", '{"spec":{"holderIdentity":"intruder"}}'
    )
    assert c.process is not None
    c.process.wait(timeout=TIMEOUT)
    assert c.process.returncode == 1
    assert "leadership lost, exiting: the Lease is held by intruder" in c.log_file.read_text()
