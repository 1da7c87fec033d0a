"""Whether an object found in the cluster already is as a manifest describes it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from sensorsim_operator.children import pod_resources

# Keys whose values (at any depth) are resource quantities, which the API server canonicalises.
QUANTITY_KEYS: Final = frozenset({"resources", "sizeLimit"})


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
        return pod_resources.quantity(desired) == pod_resources.quantity(actual)
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
