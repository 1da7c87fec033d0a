"""The producer pods' part of a SensorSimulation's spec: compute resources, tolerations and
the few pod template settings users commonly need (labels, annotations, node selector, service
account)."""

from __future__ import annotations

import re
from typing import Final, Literal

from pydantic import ConfigDict, Field, model_validator
from pydantic.config import JsonDict

from sensorsim_operator.api.kubernetes_types import (
    QUALIFIED_NAME_PATTERN,
    QUALIFIED_NAME_RULE,
    AnnotationValue,
    ApiModel,
    LabelValue,
    ObjectName,
    Quantity,
    cel,
)

# Pod labels the operator sets itself (the StatefulSet's selector); users may not override them.
RESERVED_POD_LABELS: Final = (
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/component",
)


def _keys_rule(field: str, what: str) -> JsonDict:
    """CEL: every key of the map ``field`` is a qualified name (CRD schemas cannot constrain
    map keys otherwise)."""
    return cel(
        f"!has(self.{field}) || self.{field}.all(k, k.matches(r'{QUALIFIED_NAME_PATTERN}'))",
        f"podTemplate.{field} keys must be {what}: {QUALIFIED_NAME_RULE}",
        f".{field}",
    )


def _bad_keys(mapping: dict[str, str]) -> list[str]:
    return sorted(key for key in mapping if not re.fullmatch(QUALIFIED_NAME_PATTERN, key))


class ResourceRequests(ApiModel):
    """What the scheduler reserves for each producer pod."""

    cpu: Quantity = Field(default="100m", description="CPU request of each producer pod.")
    memory: Quantity | None = Field(
        default=None,
        description=(
            "Memory request of each producer pod; unset = sized from the machines per pod "
            "(docs/operator.md, 'Memory')."
        ),
    )


class ResourceLimits(ApiModel):
    """Hard caps for each producer pod."""

    cpu: Quantity | None = Field(
        default=None, description="CPU limit of each producer pod; unset = no CPU limit."
    )
    memory: Quantity | None = Field(
        default=None,
        description=(
            "Memory limit of each producer pod; unset = sized from the machines per pod "
            "(docs/operator.md, 'Memory')."
        ),
    )


class ResourcesSpec(ApiModel):
    """Compute resources of each producer pod."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "!has(self.requests.memory) || !has(self.limits.memory) || "
                    "quantity(self.requests.memory).compareTo(quantity(self.limits.memory)) <= 0",
                    "resources.requests.memory must be less than or equal to "
                    "resources.limits.memory: raise the limit or lower the request",
                    ".requests.memory",
                ),
                cel(
                    "!has(self.limits.cpu) || "
                    "quantity(self.requests.cpu).compareTo(quantity(self.limits.cpu)) <= 0",
                    "resources.requests.cpu must be less than or equal to resources.limits.cpu: "
                    "raise the limit or lower the request",
                    ".requests.cpu",
                ),
            ]
        }
    )

    requests: ResourceRequests = Field(
        default_factory=ResourceRequests, description="Requests of each producer pod."
    )
    limits: ResourceLimits = Field(
        default_factory=ResourceLimits, description="Limits of each producer pod."
    )


class Toleration(ApiModel):
    """A pod toleration (the Kubernetes core/v1 Toleration fields)."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "has(self.key) || self.operator == 'Exists'",
                    "a toleration without a key must use operator Exists (it then tolerates "
                    "every taint): set key or operator: Exists",
                    ".operator",
                ),
                cel(
                    "self.operator != 'Exists' || !has(self.value) || self.value == ''",
                    "a toleration with operator Exists matches any value: remove value",
                    ".value",
                ),
                cel(
                    "!has(self.tolerationSeconds) || "
                    "(has(self.effect) && self.effect == 'NoExecute')",
                    "tolerationSeconds is only used with effect NoExecute: set effect: NoExecute "
                    "or remove tolerationSeconds",
                    ".tolerationSeconds",
                ),
            ]
        }
    )

    key: str | None = Field(
        default=None,
        max_length=317,
        pattern=QUALIFIED_NAME_PATTERN,
        description="Taint key the toleration applies to; unset with operator Exists = all taints.",
    )
    operator: Literal["Exists", "Equal"] = Field(
        default="Equal", description="Exists (any value) or Equal (value must match)."
    )
    value: LabelValue | None = Field(
        default=None, description="Taint value to match with operator Equal."
    )
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = Field(
        default=None, description="Taint effect to match; unset = all effects."
    )
    toleration_seconds: int | None = Field(
        default=None,
        ge=0,
        le=31_536_000,
        description="For NoExecute: how long the pod stays bound after the taint appears.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> Toleration:
        if self.key is None and self.operator != "Exists":
            raise ValueError("a toleration without a key must use operator Exists")
        if self.operator == "Exists" and self.value:
            raise ValueError("a toleration with operator Exists matches any value: remove value")
        if self.toleration_seconds is not None and self.effect != "NoExecute":
            raise ValueError("tolerationSeconds is only used with effect NoExecute")
        return self


class PodTemplateExtras(ApiModel):
    """A small, bounded set of pod template settings users commonly need."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "!has(self.labels) || !self.labels.exists(k, k in "
                    + "["
                    + ", ".join(f"'{k}'" for k in RESERVED_POD_LABELS)
                    + "])",
                    "podTemplate.labels may not set "
                    + ", ".join(RESERVED_POD_LABELS)
                    + ": the operator uses them to select the producer pods",
                    ".labels",
                ),
                _keys_rule("labels", "label keys"),
                _keys_rule("annotations", "annotation keys"),
                _keys_rule("nodeSelector", "node label keys"),
            ]
        }
    )

    labels: dict[str, LabelValue] = Field(
        default_factory=dict,
        max_length=32,
        description="Extra labels on the producer pods (keys per Kubernetes label rules).",
    )
    annotations: dict[str, AnnotationValue] = Field(
        default_factory=dict, max_length=32, description="Extra annotations on the producer pods."
    )
    node_selector: dict[str, LabelValue] = Field(
        default_factory=dict,
        max_length=16,
        description="Node labels the producer pods must be scheduled on.",
    )
    tolerations: list[Toleration] = Field(
        default_factory=list, max_length=16, description="Tolerations of the producer pods."
    )
    service_account_name: ObjectName | None = Field(
        default=None,
        description="ServiceAccount of the producer pods (e.g. for image pull secrets).",
    )

    @model_validator(mode="after")
    def _no_reserved_labels(self) -> PodTemplateExtras:
        reserved = sorted(set(self.labels) & set(RESERVED_POD_LABELS))
        if reserved:
            raise ValueError(f"podTemplate.labels may not set {', '.join(reserved)}")
        for field, mapping in (
            ("labels", self.labels),
            ("annotations", self.annotations),
            ("nodeSelector", self.node_selector),
        ):
            bad = _bad_keys(mapping)
            if bad:
                raise ValueError(
                    f"podTemplate.{field} keys {bad} are invalid: {QUALIFIED_NAME_RULE}"
                )
        return self
