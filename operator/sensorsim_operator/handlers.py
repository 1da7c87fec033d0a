"""kopf registrations: thin adapters from kopf's triggers to the reconcile work queue.

Every handler is a coroutine that only marks a simulation dirty (background_reconciles.py runs
the reconciles); the watches also keep indexes of the simulations' children and producer pods,
from which each reconcile takes its snapshot (observed.py) instead of listing them.

Traps avoided on purpose (see docs/operator.md):
- handlers return None: a return value would be written into ``status.<handler>``, which the
  strict status schema prunes ("Patching failed with inconsistencies");
- kopf keeps its bookkeeping in ``sensorsim.io/*`` annotations, not in ``status``;
- no ``on.delete`` handler, timer or daemon: any of them would add a finalizer and make deleting
  a simulation wait for the operator; children go with their owner (garbage collector);
- status is written whole by the reconciler (kopf's merge patches replace lists whole anyway).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any, Final

import kopf

from sensorsim_operator import metrics, names
from sensorsim_operator.api.v1alpha1 import API_GROUP, API_VERSION, PLURAL
from sensorsim_operator.background_reconciles import (
    SETTLE_SECONDS,
    Reconciles,
    cancel,
    resync_forever,
)
from sensorsim_operator.children.pod_template import BuildDefaults
from sensorsim_operator.kube import ApiKube
from sensorsim_operator.observed import (
    Key,
    Observed,
    child_key,
    pod_key,
    pod_summary,
    trimmed,
)
from sensorsim_operator.settings import OperatorSettings
from sensorsim_operator.simulation_reconciler import Reconciler

log = logging.getLogger(__name__)

CHILD_SELECTOR: Final = f"{names.MANAGED_BY_LABEL}={names.FIELD_MANAGER}"
CHILD_RESOURCES: Final = (("apps", "v1", "statefulsets"), ("v1", "services"), ("v1", "configmaps"))
CHILD_INDEXES: Final = ("child_statefulsets", "child_services", "child_configmaps")
PRODUCER_POD_LABELS: Final = {
    names.NAME_LABEL: names.APP_NAME,
    names.COMPONENT_LABEL: names.PRODUCER_COMPONENT,
}


def configure_kopf(settings: kopf.OperatorSettings) -> None:
    settings.peering.standalone = True
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=API_GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=API_GROUP, key="last-handled-configuration"
    )
    # The reconciler posts an Event per condition transition (condition_events.py); kopf's own
    # log-to-Event posting would repeat every retry's warning, so it is off.
    settings.posting.enabled = False
    # Watch only our children, filtered by the API server rather than in this process.
    for resource in CHILD_RESOURCES:
        settings.watching.label_selectors[resource] = CHILD_SELECTOR
    # A silently dropped watch connection would otherwise stall the operator indefinitely.
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.label_selectors[("v1", "pods")] = ",".join(
        f"{key}={value}" for key, value in PRODUCER_POD_LABELS.items()
    )


@kopf.on.startup()
async def start(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    configure_kopf(settings)
    config = OperatorSettings()
    kube = ApiKube.from_environment()
    memo.kube = kube
    reconciler = Reconciler(kube, BuildDefaults(producer_image=config.producer_image))
    # kopf gives each object's handlers a shallow copy of this memo: the first handler fills
    # this shared dict with kopf's indexes, which come only as the handlers' kwargs.
    indexes: dict[str, kopf.Index[Key, dict[str, Any]]] = {}
    memo.indexes = indexes
    memo.reconciles = Reconciles(reconciler, lambda key: _snapshot(indexes, key))
    memo.reconciles.start()
    metrics.serve(config.operator_metrics_port)
    memo.resync = None
    if config.operator_resync_seconds > 0:
        memo.resync = asyncio.create_task(
            resync_forever(
                memo.reconciles,
                reconciler.simulations,
                config.namespaces,
                config.operator_resync_seconds,
            )
        )
    log.info(
        "sensorsim operator started",
        extra={
            "namespaces": config.namespaces or "all",
            "producer_image": config.producer_image,
            "metrics_port": config.operator_metrics_port,
        },
    )


@kopf.on.cleanup()
async def stop(memo: kopf.Memo, **_: Any) -> None:
    await cancel(memo.get("resync"))
    reconciles = memo.get("reconciles")
    if reconciles is not None:
        await reconciles.stop()
    kube = memo.get("kube")
    if kube is not None:
        kube.close()


def _snapshot(indexes: Mapping[str, kopf.Index[Key, dict[str, Any]]], key: Key) -> Observed | None:
    """The simulation's children and pods from kopf's indexes (None before any handler ran)."""
    if not indexes:
        return None
    children = [obj for name in CHILD_INDEXES for obj in indexes[name].get(key, ())]
    return Observed.of(children, indexes["producer_pods"].get(key, ()))


def _mark(
    memo: kopf.Memo, key: Key | None, kwargs: Mapping[str, Any], delay: float, trigger: str
) -> None:
    if not memo.indexes:
        memo.indexes.update({name: kwargs[name] for name in (*CHILD_INDEXES, "producer_pods")})
    if key is not None:
        memo.reconciles.mark(key, delay, trigger)


@kopf.index("v1", "pods", labels=PRODUCER_POD_LABELS)
def producer_pods(body: kopf.Body, **_: Any) -> dict[Key, dict[str, Any]] | None:
    key = pod_key(body)
    return None if key is None else {key: pod_summary(body)}


@kopf.index("apps", "v1", "statefulsets", labels={names.MANAGED_BY_LABEL: names.FIELD_MANAGER})
def child_statefulsets(body: kopf.Body, **_: Any) -> dict[Key, dict[str, Any]] | None:
    key = child_key(body)
    return None if key is None else {key: trimmed(body)}


@kopf.index("v1", "services", labels={names.MANAGED_BY_LABEL: names.FIELD_MANAGER})
def child_services(body: kopf.Body, **_: Any) -> dict[Key, dict[str, Any]] | None:
    key = child_key(body)
    return None if key is None else {key: trimmed(body)}


@kopf.index("v1", "configmaps", labels={names.MANAGED_BY_LABEL: names.FIELD_MANAGER})
def child_configmaps(body: kopf.Body, **_: Any) -> dict[Key, dict[str, Any]] | None:
    key = child_key(body)
    return None if key is None else {key: trimmed(body)}


@kopf.on.resume(API_GROUP, API_VERSION, PLURAL, id="reconcile")
@kopf.on.create(API_GROUP, API_VERSION, PLURAL, id="reconcile")
@kopf.on.update(API_GROUP, API_VERSION, PLURAL, id="reconcile")
async def simulation_changed(
    namespace: str | None, name: str, reason: str, memo: kopf.Memo, **kwargs: Any
) -> None:
    """The spec changed (or the operator starts): reconcile now."""
    if namespace is not None:  # always set: the resource is namespaced
        _mark(memo, (namespace, name), kwargs, 0.0, str(reason))


@kopf.on.event("apps", "v1", "statefulsets", labels={names.MANAGED_BY_LABEL: names.FIELD_MANAGER})
@kopf.on.event("v1", "services", labels={names.MANAGED_BY_LABEL: names.FIELD_MANAGER})
@kopf.on.event("v1", "configmaps", labels={names.MANAGED_BY_LABEL: names.FIELD_MANAGER})
async def child_changed(body: kopf.Body, type: str | None, memo: kopf.Memo, **kwargs: Any) -> None:
    """A child changed (its status, someone's edit) or vanished: refresh the owner's status and
    restore the child if it is not as it should be. The echo of the operator's own apply is
    not a change."""
    reconciles: Reconciles = memo.reconciles
    if reconciles.relevance.child_event(body, deleted=type == "DELETED"):
        _mark(memo, child_key(body), kwargs, SETTLE_SECONDS, "child")


@kopf.on.event("v1", "pods", labels=PRODUCER_POD_LABELS)
async def pod_changed(body: kopf.Body, type: str | None, memo: kopf.Memo, **kwargs: Any) -> None:
    """A producer pod appeared, vanished, or changed what a reconcile reads from it (it
    crash-loops, cannot pull its image, terminates): refresh its simulation's status."""
    reconciles: Reconciles = memo.reconciles
    if reconciles.relevance.pod_event(body, deleted=type == "DELETED"):
        _mark(memo, pod_key(body), kwargs, SETTLE_SECONDS, "pod")
