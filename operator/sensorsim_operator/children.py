"""Pure builders of a simulation's children: a settings ConfigMap, a headless Service and the
StatefulSet of producer pods.

Every function here maps (simulation, spec, defaults) to plain manifests and nothing else: no
API calls, no clock, no randomness. The same input always gives byte-identical manifests, which
is what makes server-side apply of them idempotent and the config hash stable.

The manifests are *apply configurations*: they hold only the fields the operator owns, so
server-side apply merges them with whatever Kubernetes or other managers add (defaults, a
``kubectl rollout restart`` annotation) without fighting over those fields.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from domain import settings_contract as contract
from sensorsim_operator import memory, names
from sensorsim_operator.api.v1alpha1 import KIND, SimulationSpec

Manifest = dict[str, Any]

REFERENCE_DATA_DIR: Final = "/etc/sensorsim/reference-data"
KAFKA_CA_DIR: Final = "/etc/sensorsim/kafka-ca"
KAFKA_CA_FILE: Final = "ca.crt"
TMP_DIR: Final = "/tmp"

# Keys whose values (at any depth) are resource quantities, which the API server canonicalises.
QUANTITY_KEYS: Final = frozenset({"resources", "sizeLimit"})


@dataclass(frozen=True, slots=True)
class SimulationRef:
    """The identity of a SensorSimulation object, as its children need it."""

    namespace: str
    name: str
    uid: str
    generation: int
    # metadata.creationTimestamp (RFC 3339, UTC with a 'Z'): set once by the API server and
    # stable for the life of the object, so it serves as the simulation's epoch.
    created: str | None = None

    @classmethod
    def from_object(cls, obj: Mapping[str, Any]) -> SimulationRef:
        meta = obj["metadata"]
        return cls(
            namespace=meta["namespace"],
            name=meta["name"],
            uid=meta["uid"],
            generation=int(meta.get("generation", 0)),
            created=meta.get("creationTimestamp"),
        )


@dataclass(frozen=True, slots=True)
class BuildDefaults:
    """Operator-wide settings that shape the children (not part of any one simulation)."""

    producer_image: str


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


def owner_reference(simulation: SimulationRef) -> Manifest:
    """Makes the child garbage-collected with the simulation (deletion needs no handler)."""
    return {
        "apiVersion": names.SIMULATION_API_VERSION,
        "kind": KIND,
        "name": simulation.name,
        "uid": simulation.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _metadata(simulation: SimulationRef, name: str) -> Manifest:
    return {
        "name": name,
        "namespace": simulation.namespace,
        "labels": names.child_labels(simulation.name),
        "ownerReferences": [owner_reference(simulation)],
    }


def producer_settings(simulation: SimulationRef, spec: SimulationSpec) -> dict[str, str]:
    """Every producer setting with a literal value, by environment variable; names and value
    formats are the contract's (``domain.settings_contract``).

    ``SHARD_INDEX`` is absent on purpose: each pod reads its own from the pod-index label.
    Credentials are absent too: pods read them from the user's Secret (see ``_env``).
    """
    kafka, failures = spec.kafka, spec.failures
    values: dict[str, object | None] = {
        "SIMULATION_NAME": simulation.name,
        # Cycle 0 is due when the resource was created, whichever pod starts first (and after
        # a lost state topic the schedule is still the resource's): docs/continuity.md.
        "SIMULATION_EPOCH": simulation.created,
        "NUM_MACHINES": spec.machines,
        "SHARD_COUNT": spec.replicas,
        "NUM_SENSORS": spec.sensors,
        "SIMULATION_INTERVAL_MS": spec.interval_ms,
        "SIMULATION_SEED": spec.seed,
        "SIMULATION_MODEL": spec.model,
        "SIMULATION_PERSISTENCE": spec.persistence,
        "SENSOR_DATA_FILE": (
            None
            if spec.reference_data is None
            else f"{REFERENCE_DATA_DIR}/{spec.reference_data.key}"
        ),
        "FAILURE_PROBABILITY": failures.probability,
        "FAILURE_MIN_CYCLES": failures.min_cycles,
        "FAILURE_MAX_CYCLES": failures.max_cycles,
        "FAILURE_RAMP_CYCLES": failures.ramp_cycles,
        "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "KAFKA_TOPIC": kafka.topic,
        "KAFKA_SECURITY_PROTOCOL": kafka.security_protocol,
        "KAFKA_COMPRESSION_TYPE": kafka.compression,
        "KAFKA_CREATE_TOPIC": kafka.create_topic,
        "KAFKA_TOPIC_PARTITIONS": kafka.partitions,
        "KAFKA_SASL_MECHANISM": None if kafka.sasl is None else kafka.sasl.mechanism,
        "KAFKA_SSL_CAFILE": (
            f"{KAFKA_CA_DIR}/{KAFKA_CA_FILE}"
            if kafka.tls is not None and kafka.tls.ca_secret is not None
            else None
        ),
        "MESSAGE_FORMAT": spec.message_format,
        "HTTP_PORT": names.HTTP_PORT,
        "LOG_LEVEL": spec.log_level,
        "LOG_FORMAT": "json",
    }
    return {
        env: contract.setting(env).render(value)
        for env, value in values.items()
        if value is not None
    }


def _env(simulation: SimulationRef, spec: SimulationSpec) -> list[Manifest]:
    env: list[Manifest] = [
        {"name": key, "value": value} for key, value in producer_settings(simulation, spec).items()
    ]
    env.append(
        {
            "name": contract.setting("SHARD_INDEX").env,
            "valueFrom": {
                "fieldRef": {
                    "apiVersion": "v1",
                    "fieldPath": f"metadata.labels['{names.POD_INDEX_LABEL}']",
                }
            },
        }
    )
    if spec.kafka.sasl is not None:
        secret = spec.kafka.sasl.credentials_secret
        # Credentials stay in the user's Secret: the operator only references them.
        for variable, key in (
            (contract.setting("KAFKA_SASL_USERNAME").env, secret.username_key),
            (contract.setting("KAFKA_SASL_PASSWORD").env, secret.password_key),
        ):
            env.append(
                {
                    "name": variable,
                    "valueFrom": {"secretKeyRef": {"name": secret.name, "key": key}},
                }
            )
    return env


def _volumes(spec: SimulationSpec) -> tuple[list[Manifest], list[Manifest]]:
    """Volumes and their mounts: a scratch /tmp (the root filesystem is read-only), the reference
    CSV and the Kafka CA bundle when configured."""
    volumes: list[Manifest] = [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}]
    mounts: list[Manifest] = [{"name": "tmp", "mountPath": TMP_DIR}]
    if spec.reference_data is not None:
        volumes.append(
            {
                "name": "reference-data",
                "configMap": {
                    "name": spec.reference_data.config_map_name,
                    "items": [{"key": spec.reference_data.key, "path": spec.reference_data.key}],
                },
            }
        )
        mounts.append({"name": "reference-data", "mountPath": REFERENCE_DATA_DIR, "readOnly": True})
    tls = spec.kafka.tls
    if tls is not None and tls.ca_secret is not None:
        volumes.append(
            {
                "name": "kafka-ca",
                "secret": {
                    "secretName": tls.ca_secret.name,
                    "items": [{"key": tls.ca_secret.key, "path": KAFKA_CA_FILE}],
                },
            }
        )
        mounts.append({"name": "kafka-ca", "mountPath": KAFKA_CA_DIR, "readOnly": True})
    return volumes, mounts


def _resources(spec: SimulationSpec) -> Manifest:
    """CPU as given; memory as given, else sized from the machines per pod (memory.py)."""
    request, limit = memory.pod_memory(
        spec.machines,
        spec.replicas,
        request=spec.resources.requests.memory,
        limit=spec.resources.limits.memory,
    )
    requests = {"cpu": spec.resources.requests.cpu, "memory": request}
    limits = {"memory": limit}
    if spec.resources.limits.cpu is not None:
        limits["cpu"] = spec.resources.limits.cpu
    return {"requests": requests, "limits": limits}


def _probe(path: str, period: int, failures: int) -> Manifest:
    return {
        "httpGet": {"path": path, "port": names.HTTP_PORT_NAME},
        "periodSeconds": period,
        "failureThreshold": failures,
        "timeoutSeconds": 2,
    }


def _container(
    simulation: SimulationRef, spec: SimulationSpec, defaults: BuildDefaults, mounts: list[Manifest]
) -> Manifest:
    return {
        "name": names.PRODUCER_CONTAINER,
        "image": spec.image or defaults.producer_image,
        "imagePullPolicy": spec.image_pull_policy,
        "env": _env(simulation, spec),
        "ports": [
            {"name": names.HTTP_PORT_NAME, "containerPort": names.HTTP_PORT, "protocol": "TCP"}
        ],
        # Reading and analysing the reference data may take a while on a busy node: the startup
        # probe holds the liveness probe off for up to 2 minutes.
        "startupProbe": _probe("/healthz", period=2, failures=60),
        "livenessProbe": _probe("/healthz", period=10, failures=3),
        "readinessProbe": _probe("/readyz", period=5, failures=2),
        "resources": _resources(spec),
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "runAsUser": names.RUN_AS_USER,
            "runAsGroup": names.RUN_AS_USER,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": mounts,
    }


def _pod_spec(simulation: SimulationRef, spec: SimulationSpec, defaults: BuildDefaults) -> Manifest:
    volumes, mounts = _volumes(spec)
    extras = spec.pod_template
    pod: Manifest = {
        # The producer never talks to the API server.
        "automountServiceAccountToken": False,
        # Service links would inject e.g. KAFKA_PORT=tcp://... for a Service named "kafka",
        # which collides with the producer's KAFKA_* settings.
        "enableServiceLinks": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": names.RUN_AS_USER,
            "runAsGroup": names.RUN_AS_USER,
            "fsGroup": names.RUN_AS_USER,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "terminationGracePeriodSeconds": 30,
        "containers": [_container(simulation, spec, defaults, mounts)],
        "volumes": volumes,
    }
    if extras.service_account_name is not None:
        pod["serviceAccountName"] = extras.service_account_name
    if extras.node_selector:
        pod["nodeSelector"] = dict(sorted(extras.node_selector.items()))
    if extras.tolerations:
        pod["tolerations"] = [
            toleration.model_dump(by_alias=True, exclude_none=True)
            for toleration in extras.tolerations
        ]
    return pod


def config_hash(pod_template: Mapping[str, Any]) -> str:
    """A short, stable digest of everything that shapes the pods (the whole pod template).

    Hashing the rendered template rather than a hand-picked list of fields means no setting can
    be forgotten: whatever reaches the pods is in the hash, whatever does not (the simulation's
    own labels and annotations, status) is not.
    """
    canonical = json.dumps(pod_template, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


def pod_template(
    simulation: SimulationRef, spec: SimulationSpec, defaults: BuildDefaults
) -> tuple[Manifest, str]:
    """The pod template with its config-hash annotation, and the hash."""
    labels = {**spec.pod_template.labels, **names.selector_labels(simulation.name)}
    template: Manifest = {
        "metadata": {
            "labels": dict(sorted(labels.items())),
            "annotations": dict(sorted(spec.pod_template.annotations.items())),
        },
        "spec": _pod_spec(simulation, spec, defaults),
    }
    digest = config_hash(template)
    template["metadata"]["annotations"][names.CONFIG_HASH_ANNOTATION] = digest
    return template, digest


def build_config_map(simulation: SimulationRef, spec: SimulationSpec) -> Manifest:
    """The simulation's resolved settings, one key per producer variable: what the pods run with,
    readable with ``kubectl get configmap <name>-settings -o yaml``. Pods get the same values in
    their environment, so that a change is a change of the pod template (and rolls the pods)."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _metadata(simulation, names.configmap_name(simulation.name)),
        "data": producer_settings(simulation, spec),
    }


def build_service(simulation: SimulationRef) -> Manifest:
    """Headless Service: stable DNS names for the producer pods and a target for scraping."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(simulation, names.service_name(simulation.name)),
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
    simulation: SimulationRef, spec: SimulationSpec, defaults: BuildDefaults
) -> tuple[Manifest, str]:
    """The producer pods: one per shard, ordinal = SHARD_INDEX. Returns it with its config hash."""
    template, digest = pod_template(simulation, spec, defaults)
    stateful_set: Manifest = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": _metadata(simulation, names.statefulset_name(simulation.name)),
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
    simulation: SimulationRef, spec: SimulationSpec, defaults: BuildDefaults
) -> Children:
    stateful_set, digest = build_stateful_set(simulation, spec, defaults)
    return Children(
        config_map=build_config_map(simulation, spec),
        service=build_service(simulation),
        stateful_set=stateful_set,
        config_hash=digest,
    )


def controller_owner(obj: Mapping[str, Any]) -> str | None:
    """The name of the SensorSimulation controlling a child, or None for anything else."""
    for ref in obj.get("metadata", {}).get("ownerReferences") or ():
        if (
            ref.get("controller")
            and ref.get("kind") == KIND
            and ref.get("apiVersion") == names.SIMULATION_API_VERSION
        ):
            name: str = ref["name"]
            return name
    return None


def same_object(manifest: Mapping[str, Any], obj: Mapping[str, Any]) -> bool:
    """True when ``obj`` is the object ``manifest`` describes (same kind, namespace, name)."""
    mine, theirs = manifest["metadata"], obj.get("metadata", {})
    return bool(
        manifest["kind"] == obj.get("kind")
        and mine["name"] == theirs.get("name")
        and mine["namespace"] == theirs.get("namespace")
    )


def _same_quantity(desired: str, actual: str) -> bool:
    try:
        return memory.quantity(desired) == memory.quantity(actual)
    except ValueError:  # not a quantity: compare as text
        return desired == actual


def conforms(desired: Any, actual: Any, *, quantities: bool = False) -> bool:
    """True when ``actual`` already holds everything in ``desired``: every key of a desired
    mapping with a conforming value, lists element by element and of the same length.

    Extra keys in ``actual`` (defaults, status, other managers' fields) are fine. Values under
    :data:`QUANTITY_KEYS` compare by value, since the API server stores quantities canonicalised
    ("0.5" CPU as "500m", "1024Mi" as "1Gi"). A false "differs" only costs a server-side apply
    that changes nothing; a field the operator no longer sets is not detected here, which is
    why every spec change and every resync applies in full.
    """
    if isinstance(desired, Mapping):
        return isinstance(actual, Mapping) and all(
            key in actual
            and conforms(value, actual[key], quantities=quantities or key in QUANTITY_KEYS)
            for key, value in desired.items()
        )
    if isinstance(desired, list):
        return (
            isinstance(actual, list)
            and len(desired) == len(actual)
            and all(
                conforms(d, a, quantities=quantities) for d, a in zip(desired, actual, strict=True)
            )
        )
    if quantities and isinstance(desired, str) and isinstance(actual, str):
        return _same_quantity(desired, actual)
    return bool(desired == actual)


def foreign_owner(obj: Mapping[str, Any], simulation: SimulationRef) -> str | None:
    """Why ``obj``, which has the name of one of ``simulation``'s children, is not its child
    (None when it is, so the operator may apply it).

    It is the simulation's child when the simulation (this very object, by uid) controls it,
    or when nothing controls it and the operator created it (its field manager owns fields:
    e.g. a child orphaned by ``kubectl delete --cascade=orphan`` of an earlier simulation of
    the same name). Anything else belongs to someone else and is never adopted.
    """
    meta = obj.get("metadata", {})
    controller = next(
        (ref for ref in meta.get("ownerReferences") or () if ref.get("controller")), None
    )
    if controller is not None:
        if controller.get("uid") == simulation.uid:
            return None
        return f"controlled by {controller.get('kind')} {controller.get('name')}"
    managers = {entry.get("manager") for entry in meta.get("managedFields") or ()}
    if names.FIELD_MANAGER in managers:
        return None
    made_by = ", ".join(sorted(str(m) for m in managers if m)) or "someone else"
    return f"not created by the operator (fields managed by {made_by})"
