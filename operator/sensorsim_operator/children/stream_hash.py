"""The stream hash: a digest of everything that shapes what the producer pods emit.

A change of any stream-shaping setting (``Setting.shapes_stream`` in the settings contract:
ownership, identity, schedule, model, failures, data, topics) must not roll the pods one by one,
since an old and a new pod would then emit machines under different settings or ownership at
the same time. The pod template carries this digest (``sensorsim.io/stream-hash``), so every
pod says which stream configuration it runs and the handover (``handover.py``) compares pods
with the desired template by it alone.

The reference data is part of the stream: its ConfigMap's name and key always, and the digest
of the CSV itself when the operator could read it. A change of the CSV then changes the hash at
the next reconcile and is handed over like any other stream change.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from domain import settings_contract as contract
from sensorsim_operator import names
from sensorsim_operator.api.v1alpha1 import ReferenceDataSpec


def stream_settings(settings: Mapping[str, str]) -> dict[str, str]:
    """The stream-shaping subset of a pod's literal settings, by variable."""
    return {env: value for env, value in settings.items() if env in contract.STREAM_SETTINGS}


def reference_data_digest(config_map: Mapping[str, Any], key: str) -> str:
    """The digest of the CSV under ``key`` of a ConfigMap as the API returns it (the text of
    ``data`` or the base64 of ``binaryData``; empty when the key is absent: the pods cannot
    mount it then)."""
    text = (config_map.get("data") or {}).get(key)
    if text is None:
        text = "binary:" + str((config_map.get("binaryData") or {}).get(key, ""))
    return hashlib.sha256(str(text).encode("utf-8")).hexdigest()[:16]


def stream_hash(
    settings: Mapping[str, str],
    reference_data: ReferenceDataSpec | None,
    reference_digest: str | None,
) -> str:
    """A short, stable digest of the stream-shaping settings and the reference data."""
    source: dict[str, Any] = {"settings": stream_settings(settings)}
    if reference_data is not None:
        source["referenceData"] = {
            "configMap": reference_data.config_map_name,
            "key": reference_data.key,
            "digest": reference_digest or "",
        }
    canonical = json.dumps(source, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


def template_reference_digest(pod_template: Mapping[str, Any]) -> str | None:
    """The reference-data digest a pod template was built with, if any."""
    annotations = (pod_template.get("metadata") or {}).get("annotations") or {}
    value = annotations.get(names.REFERENCE_DATA_HASH_ANNOTATION)
    return None if value is None else str(value)
