"""What the Kubernetes API accepts, as pydantic types and CEL helpers for the API models.

Object names, ConfigMap and Secret keys, label values, qualified names (label, annotation,
node-selector and taint keys) and resource quantities, each as the API server checks them; the
base model every API type derives from; and the ``x-kubernetes-validations`` entry builder.
"""

from __future__ import annotations

from typing import Annotated, Final, Literal

from pydantic import BaseModel, ConfigDict, StringConstraints
from pydantic.alias_generators import to_camel
from pydantic.config import JsonDict

MAX_SAFE_INTEGER: Final = 2**53 - 1
"""The API server holds schema bounds and integers as float64/int64: larger integers (a 64-bit
seed) cannot be written in a SensorSimulation."""

# Kubernetes object names and ConfigMap/Secret keys, as the API server checks them.
DNS_SUBDOMAIN_PATTERN: Final = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
DATA_KEY_PATTERN: Final = r"^[-._a-zA-Z0-9]+$"
LABEL_VALUE_PATTERN: Final = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"
# Label, annotation, node-selector and taint keys: an optional DNS-subdomain prefix and '/',
# then a name of at most 63 characters (Kubernetes "qualified name").
QUALIFIED_NAME_PATTERN: Final = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
QUALIFIED_NAME_RULE: Final = (
    "an optional DNS-subdomain prefix and '/', then at most 63 letters, digits, '-', '_' or "
    "'.', starting and ending with a letter or digit"
)
# Non-negative only: a pod's requests and limits may not be negative.
QUANTITY_PATTERN: Final = (
    r"^\+?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
    r"(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
IMAGE_PATTERN: Final = r"^[^\s]+$"

ObjectName = Annotated[
    str, StringConstraints(min_length=1, max_length=253, pattern=DNS_SUBDOMAIN_PATTERN)
]
DataKey = Annotated[str, StringConstraints(min_length=1, max_length=253, pattern=DATA_KEY_PATTERN)]
Quantity = Annotated[str, StringConstraints(min_length=1, max_length=32, pattern=QUANTITY_PATTERN)]
LabelValue = Annotated[str, StringConstraints(max_length=63, pattern=LABEL_VALUE_PATTERN)]
AnnotationValue = Annotated[str, StringConstraints(max_length=4096)]
PullPolicy = Literal["Always", "IfNotPresent", "Never"]


class ApiModel(BaseModel):
    """camelCase on the wire, snake_case in Python; unknown fields are errors; immutable."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
    )


def cel(rule: str, message: str, field_path: str | None = None) -> JsonDict:
    """One ``x-kubernetes-validations`` entry; ``fieldPath`` makes the API server name the field."""
    entry: JsonDict = {"rule": rule, "message": message}
    if field_path is not None:
        entry["fieldPath"] = field_path
        entry["reason"] = "FieldValueInvalid"
    return entry
