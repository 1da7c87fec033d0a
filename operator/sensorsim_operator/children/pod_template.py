"""The producer pods' template: container, probes, volumes, resources, security context, and
the config hash that rolls the pods when anything in the template changes."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from sensorsim_operator import names
from sensorsim_operator.api.v1alpha1 import SimulationSpec
from sensorsim_operator.children import pod_resources
from sensorsim_operator.children.grace_period import termination_grace_seconds
from sensorsim_operator.children.identity import Manifest, SimulationRef
from sensorsim_operator.children.producer_env import (
    KAFKA_CA_DIR,
    KAFKA_CA_FILE,
    KAFKA_CLIENT_CERT_DIR,
    KAFKA_CLIENT_CERT_FILE,
    KAFKA_CLIENT_KEY_FILE,
    REFERENCE_DATA_DIR,
    producer_env,
    producer_settings,
    sensor_count,
)
from sensorsim_operator.children.stream_hash import stream_hash

TMP_DIR: Final = "/tmp"


@dataclass(frozen=True, slots=True)
class BuildDefaults:
    """Operator-wide settings that shape the children (not part of any one simulation)."""

    producer_image: str


def _volumes(spec: SimulationSpec) -> tuple[list[Manifest], list[Manifest]]:
    """Volumes and their mounts: a scratch /tmp (the root filesystem is read-only), the reference
    CSV, the Kafka CA bundle and the TLS client certificate when configured."""
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
    client = None if tls is None else tls.client_certificate_secret
    if client is not None:
        items = [
            {"key": client.certificate_key, "path": KAFKA_CLIENT_CERT_FILE},
            {"key": client.key_key, "path": KAFKA_CLIENT_KEY_FILE},
        ]
        # 0440: the key is readable by its owner and the pod's fsGroup (the producer) only
        volumes.append(
            {
                "name": "kafka-client-cert",
                "secret": {"secretName": client.name, "items": items, "defaultMode": 0o440},
            }
        )
        mounts.append(
            {"name": "kafka-client-cert", "mountPath": KAFKA_CLIENT_CERT_DIR, "readOnly": True}
        )
    return volumes, mounts


def _resources(spec: SimulationSpec) -> Manifest:
    """CPU as given; memory as given, else sized from the machines per pod and their sensors
    (pod_resources.py)."""
    request, limit = pod_resources.pod_memory(
        spec.machines,
        spec.replicas,
        sensor_count(spec),
        request=spec.resources.requests.memory,
        limit=spec.resources.limits.memory,
        max_pending=spec.kafka.producer.max_pending_records,
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
        "env": producer_env(simulation, spec),
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
        # Long enough for the final checkpoint of the largest shard (grace_period.py).
        "terminationGracePeriodSeconds": termination_grace_seconds(spec.machines, spec.replicas),
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


def _annotations(
    simulation: SimulationRef, spec: SimulationSpec, reference_digest: str | None
) -> dict[str, str]:
    """The user's pod annotations, then the stream hash (and the reference data's digest it
    covers, when known) over them."""
    annotations = dict(spec.pod_template.annotations)
    if spec.reference_data is not None and reference_digest is not None:
        annotations[names.REFERENCE_DATA_HASH_ANNOTATION] = reference_digest
    annotations[names.STREAM_HASH_ANNOTATION] = stream_hash(
        producer_settings(simulation, spec), spec.reference_data, reference_digest
    )
    return dict(sorted(annotations.items()))


def pod_template(
    simulation: SimulationRef,
    spec: SimulationSpec,
    defaults: BuildDefaults,
    reference_digest: str | None = None,
) -> tuple[Manifest, str]:
    """The pod template with its stream-hash and config-hash annotations, and the config hash.

    ``reference_digest`` is the digest of the referenced CSV (``stream_hash.py``), None when
    the operator could not read it.
    """
    labels = {**spec.pod_template.labels, **names.selector_labels(simulation.name)}
    template: Manifest = {
        "metadata": {
            "labels": dict(sorted(labels.items())),
            "annotations": _annotations(simulation, spec, reference_digest),
        },
        "spec": _pod_spec(simulation, spec, defaults),
    }
    digest = config_hash(template)
    template["metadata"]["annotations"][names.CONFIG_HASH_ANNOTATION] = digest
    return template, digest
