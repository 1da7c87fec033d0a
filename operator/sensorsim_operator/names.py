"""Fixed names, labels and annotation keys of a simulation's children.

Children have fixed names derived from the simulation's name (never ``generateName``): a rerun,
a restart or a repeated event then addresses the same objects instead of creating duplicates.
"""

from __future__ import annotations

from typing import Final

from sensorsim_operator.api.v1alpha1 import API_GROUP, API_VERSION, PLURAL

FIELD_MANAGER: Final = "sensorsim-operator"
SIMULATION_API_VERSION: Final = f"{API_GROUP}/{API_VERSION}"

# Kubernetes' recommended labels ("Recommended Labels" in the Kubernetes documentation)
NAME_LABEL: Final = "app.kubernetes.io/name"
INSTANCE_LABEL: Final = "app.kubernetes.io/instance"
COMPONENT_LABEL: Final = "app.kubernetes.io/component"
MANAGED_BY_LABEL: Final = "app.kubernetes.io/managed-by"
PART_OF_LABEL: Final = "app.kubernetes.io/part-of"
APP_NAME: Final = "sensorsim"
PRODUCER_COMPONENT: Final = "producer"

# Set by the StatefulSet controller on every pod (Kubernetes >= 1.28); the shard index.
POD_INDEX_LABEL: Final = "apps.kubernetes.io/pod-index"

# On the pod template: a change of this value is what makes Kubernetes roll the pods.
CONFIG_HASH_ANNOTATION: Final = f"{API_GROUP}/config-hash"
# On the pod template, so on every pod: a digest of what shapes the machines' streams. Pods of
# another value must all be gone before a pod of the new value starts (a handover).
STREAM_HASH_ANNOTATION: Final = f"{API_GROUP}/stream-hash"
# On the pod template: the digest of the reference-data ConfigMap's CSV the pods were built for.
REFERENCE_DATA_HASH_ANNOTATION: Final = f"{API_GROUP}/reference-data-hash"
# kopf's own bookkeeping on the simulation (instead of kopf.zalando.org/...).
KOPF_ANNOTATION_PREFIX: Final = API_GROUP

PRODUCER_CONTAINER: Final = "producer"
HTTP_PORT: Final = 8080
HTTP_PORT_NAME: Final = "http"
RUN_AS_USER: Final = 10001


def statefulset_name(simulation: str) -> str:
    """The StatefulSet has the simulation's name, so its pods are ``<simulation>-<ordinal>``."""
    return simulation


def service_name(simulation: str) -> str:
    """The headless Service governing the StatefulSet's pod DNS names."""
    return simulation


def configmap_name(simulation: str) -> str:
    return f"{simulation}-settings"


def pod_name(simulation: str, ordinal: int) -> str:
    return f"{statefulset_name(simulation)}-{ordinal}"


def selector_labels(simulation: str) -> dict[str, str]:
    """Labels selecting a simulation's producer pods (immutable in the StatefulSet)."""
    return {
        NAME_LABEL: APP_NAME,
        INSTANCE_LABEL: simulation,
        COMPONENT_LABEL: PRODUCER_COMPONENT,
    }


def child_labels(simulation: str) -> dict[str, str]:
    """Labels on every child; ``managed-by`` is also what the operator's watches select on."""
    return {
        **selector_labels(simulation),
        MANAGED_BY_LABEL: FIELD_MANAGER,
        PART_OF_LABEL: APP_NAME,
    }


def selector_string(simulation: str) -> str:
    """The pod selector as a label-selector string (status.selector, for /scale and HPAs)."""
    return ",".join(f"{key}={value}" for key, value in sorted(selector_labels(simulation).items()))


def simulation_path(namespace: str, name: str) -> str:
    return f"/apis/{API_GROUP}/{API_VERSION}/namespaces/{namespace}/{PLURAL}/{name}"
