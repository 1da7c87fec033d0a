"""The three children of a simulation, whole: the settings ConfigMap, the headless Service and
the StatefulSet of producer pods, in the order they are applied."""

from __future__ import annotations

from dataclasses import dataclass

from sensorsim_operator import names
from sensorsim_operator.api.v1alpha1 import SimulationSpec
from sensorsim_operator.children.identity import Manifest, SimulationRef, child_metadata
from sensorsim_operator.children.pod_template import BuildDefaults, pod_template
from sensorsim_operator.children.producer_env import producer_settings


@dataclass(frozen=True, slots=True)
class Children:
    """A simulation's children, in the order they are applied (the StatefulSet last, so its pods
    never start before the Service that names them)."""

    config_map: Manifest
    service: Manifest
    stateful_set: Manifest
    config_hash: str

    def in_apply_order(self) -> tuple[Manifest, Manifest, Manifest]:
        return (self.config_map, self.service, self.stateful_set)


def build_config_map(simulation: SimulationRef, spec: SimulationSpec) -> Manifest:
    """The simulation's resolved settings, one key per producer variable: what the pods run with,
    readable with ``kubectl get configmap <name>-settings -o yaml``. Pods get the same values in
    their environment, so that a change is a change of the pod template (and rolls the pods)."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": child_metadata(simulation, names.configmap_name(simulation.name)),
        "data": producer_settings(simulation, spec),
    }


def build_service(simulation: SimulationRef) -> Manifest:
    """Headless Service: stable DNS names for the producer pods and a target for scraping."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": child_metadata(simulation, names.service_name(simulation.name)),
        "spec": {
            "clusterIP": "None",
            "selector": names.selector_labels(simulation.name),
            "ports": [
                {
                    "name": names.HTTP_PORT_NAME,
                    "port": names.HTTP_PORT,
                    "targetPort": names.HTTP_PORT_NAME,
                    "protocol": "TCP",
                }
            ],
        },
    }


def build_stateful_set(
    simulation: SimulationRef,
    spec: SimulationSpec,
    defaults: BuildDefaults,
    reference_digest: str | None = None,
) -> tuple[Manifest, str]:
    """The producer pods: one per shard, ordinal = SHARD_INDEX. Returns it with its config hash."""
    template, digest = pod_template(simulation, spec, defaults, reference_digest)
    stateful_set: Manifest = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": child_metadata(simulation, names.statefulset_name(simulation.name)),
        "spec": {
            # Suspending keeps the template (and its hash) as it is, so resuming brings back
            # exactly the same pods without a rollout.
            "replicas": 0 if spec.suspend else spec.replicas,
            "serviceName": names.service_name(simulation.name),
            # Shards are independent: start and stop them all at once, not one by one.
            "podManagementPolicy": "Parallel",
            "selector": {"matchLabels": names.selector_labels(simulation.name)},
            "updateStrategy": {"type": "RollingUpdate"},
            "revisionHistoryLimit": 5,
            "template": template,
        },
    }
    return stateful_set, digest


def build_children(
    simulation: SimulationRef,
    spec: SimulationSpec,
    defaults: BuildDefaults,
    reference_digest: str | None = None,
) -> Children:
    """All three children of ``simulation`` for ``spec``, with the pod template's hash.
    ``reference_digest``: the referenced CSV's digest, when known (``stream_hash.py``)."""
    stateful_set, digest = build_stateful_set(simulation, spec, defaults, reference_digest)
    return Children(
        config_map=build_config_map(simulation, spec),
        service=build_service(simulation),
        stateful_set=stateful_set,
        config_hash=digest,
    )
