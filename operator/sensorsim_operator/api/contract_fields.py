"""Spec fields made from the producer's settings contract (``domain/settings_contract.py``).

A SensorSimulation field that becomes a producer setting takes that setting's default, bounds,
enum, pattern and rules, so the API server refuses what the producer would refuse. Patterns
and rules become CEL ``x-kubernetes-validations`` with the contract's messages. Where the API
cannot hold a setting's full range, the field's upper bound is narrower
(:data:`API_UPPER_BOUNDS`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from pydantic import Field
from pydantic.config import JsonDict, JsonValue

from domain import settings_contract as contract
from domain import settings_vocabulary as vocabulary
from sensorsim_operator.api.kubernetes_types import MAX_SAFE_INTEGER

API_UPPER_BOUNDS: Final[Mapping[str, int]] = {"SIMULATION_SEED": MAX_SAFE_INTEGER}
"""Upper bounds narrower than the contract's, by variable: the producer takes any 64-bit seed,
the API server only integers it can hold as a float64."""
API_MAX_LENGTHS: Final[Mapping[str, int]] = {
    "KAFKA_TOPIC": vocabulary.MAX_TOPIC_LENGTH - len(vocabulary.STATE_TOPIC_SUFFIX)
}
"""Maximum lengths shorter than the contract's, by variable: the producers derive the state
topic's name from the data topic's (``<topic>-state``), and a simulation sets no other."""


def api_bounds(setting: vocabulary.Setting) -> dict[str, Any]:
    """The setting's bounds as ``Field`` arguments, the upper one (and the maximum length)
    narrowed for the API."""
    bounds = setting.bounds()
    if setting.env in API_UPPER_BOUNDS:
        bounds["le"] = API_UPPER_BOUNDS[setting.env]
    if setting.env in API_MAX_LENGTHS:
        bounds["max_length"] = API_MAX_LENGTHS[setting.env]
    return bounds


def cel_validations(setting: vocabulary.Setting) -> list[JsonDict]:
    """The setting's pattern and rules as ``x-kubernetes-validations`` entries."""
    found: list[JsonDict] = []
    if setting.pattern is not None:
        found.append(
            {"rule": f"self.matches(r'{setting.pattern}')", "message": setting.pattern_message}
        )
    found.extend({"rule": rule.cel, "message": rule.message} for rule in setting.rules)
    return found


def contract_field(env: str, description: str, *, required: bool = False, **extra: Any) -> Any:
    """The pydantic ``Field`` of the spec field carrying the setting ``env``: the contract's
    default (unless ``required``) and bounds (narrowed for the API), and its pattern and rules
    as CEL with the contract's messages."""
    setting = contract.setting(env)
    validations: list[JsonValue] = list(cel_validations(setting))
    schema_extra: JsonDict | None = (
        {"x-kubernetes-validations": validations} if validations else None
    )
    return Field(
        ... if required else setting.default,
        description=description,
        json_schema_extra=schema_extra,
        **api_bounds(setting),
        **extra,
    )
