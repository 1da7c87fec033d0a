"""kopf registrations: thin adapters from kopf's triggers to :class:`Reconciler`.

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
import contextlib
import functools
import logging
from typing import Any, Final

import kopf

from sensorsim_operator import metrics, names
from sensorsim_operator.api.v1alpha1 import API_GROUP, API_VERSION, PLURAL
from sensorsim_operator.background_reconciles import Retries, resync_forever
from sensorsim_operator.children.ownership import controller_owner
from sensorsim_operator.children.pod_template import BuildDefaults
from sensorsim_operator.kube import ApiKube, KubeError
from sensorsim_operator.settings import OperatorSettings
from sensorsim_operator.simulation_reconciler import ReconcileError, Reconciler

log = logging.getLogger(__name__)

CHILD_SELECTOR: Final = f"{names.MANAGED_BY_LABEL}={names.FIELD_MANAGER}"
CHILD_RESOURCES: Final = (("apps", "v1", "statefulsets"), ("v1", "services"), ("v1", "configmaps"))
RETRY_AFTER_API_ERROR: Final = 5.0
RETRY_AFTER_APPLY_FAILURE: Final = 15.0
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
    # Reconciles mostly wait on the API server: more threads than cores keep it busy.
    settings.execution.max_workers = 20
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
    memo.reconciler = reconciler
    reconcile_later = functools.partial(_reconcile_in_background, memo)
    memo.retries = Retries(reconcile_later)
    metrics.serve(config.operator_metrics_port)
    if config.operator_resync_seconds > 0:
        memo.resync = asyncio.create_task(
            resync_forever(
                reconcile_later,
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
    retries = memo.get("retries")
    if retries is not None:
        await retries.cancel_all()
    resync = memo.get("resync")
    if resync is not None:
        resync.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await resync
    kube = memo.get("kube")
    if kube is not None:
        kube.close()


def _reconcile(
    memo: kopf.Memo,
    namespace: str,
    name: str,
    trigger: str,
    logger: Any,
    *,
    child: kopf.Body | None = None,
    child_deleted: bool = False,
) -> None:
    reconciler: Reconciler = memo.reconciler
    with metrics.observe(trigger) as result:
        try:
            outcome = reconciler.reconcile(
                namespace, name, child=child, child_deleted=child_deleted
            )
        except ReconcileError as error:
            if error.retry:
                raise kopf.TemporaryError(str(error), delay=RETRY_AFTER_APPLY_FAILURE) from error
            raise kopf.PermanentError(str(error)) from error
        except KubeError as error:
            raise kopf.TemporaryError(f"API error: {error}", delay=RETRY_AFTER_API_ERROR) from error
        if not outcome.found:
            result.value = "gone"
        elif outcome.status_written:
            metrics.STATUS_WRITES.inc()
            logger.info(f"status updated (trigger: {trigger})")


def _reconcile_in_background(memo: kopf.Memo, namespace: str, name: str, trigger: str) -> None:
    """A reconcile no kopf handler asked for (a retry, the resync), logged by this module."""
    _reconcile(memo, namespace, name, trigger, log)


@kopf.on.resume(API_GROUP, API_VERSION, PLURAL, id="reconcile")
@kopf.on.create(API_GROUP, API_VERSION, PLURAL, id="reconcile")
@kopf.on.update(API_GROUP, API_VERSION, PLURAL, id="reconcile")
def simulation_changed(
    namespace: str | None, name: str, reason: str, memo: kopf.Memo, logger: kopf.Logger, **_: Any
) -> None:
    if namespace is not None:  # always set: the resource is namespaced
        _reconcile(memo, namespace, name, trigger=str(reason), logger=logger)


@kopf.on.event("apps", "v1", "statefulsets", labels={names.MANAGED_BY_LABEL: names.FIELD_MANAGER})
@kopf.on.event("v1", "services", labels={names.MANAGED_BY_LABEL: names.FIELD_MANAGER})
@kopf.on.event("v1", "configmaps", labels={names.MANAGED_BY_LABEL: names.FIELD_MANAGER})
def child_changed(
    body: kopf.Body,
    type: str | None,  # the event type: ADDED, MODIFIED, DELETED, or None when listing
    namespace: str | None,
    memo: kopf.Memo,
    logger: kopf.Logger,
    **_: Any,
) -> None:
    """A child changed (its status, someone's edit) or vanished: refresh the owner's status and
    restore the child if it is not as it should be."""
    owner = controller_owner(body)
    if owner is not None and namespace is not None:
        _reconcile_or_retry(
            memo,
            namespace,
            owner,
            trigger="child",
            logger=logger,
            child=body,
            child_deleted=type == "DELETED",
        )


@kopf.on.event("v1", "pods", labels=PRODUCER_POD_LABELS)
def pod_changed(
    body: kopf.Body, namespace: str | None, memo: kopf.Memo, logger: kopf.Logger, **_: Any
) -> None:
    """A producer pod changed (started, became ready, crash-loops, cannot pull its image):
    refresh its simulation's status. Nothing is applied: the pod is passed as the event's
    object, which is none of the children."""
    simulation = body.get("metadata", {}).get("labels", {}).get(names.INSTANCE_LABEL)
    if simulation and namespace is not None:
        _reconcile_or_retry(memo, namespace, simulation, trigger="pod", logger=logger, child=body)


def _reconcile_or_retry(
    memo: kopf.Memo,
    namespace: str,
    name: str,
    trigger: str,
    logger: Any,
    *,
    child: kopf.Body,
    child_deleted: bool = False,
) -> None:
    """``_reconcile`` for an event handler, which kopf does not retry: a failure schedules a
    full reconcile with back-off instead of waiting for the next resync."""
    try:
        _reconcile(memo, namespace, name, trigger, logger, child=child, child_deleted=child_deleted)
    except kopf.PermanentError:
        raise  # the spec is invalid and its status says so; an update will retrigger
    except kopf.TemporaryError as error:
        logger.warning(f"reconcile after a {trigger} event failed, retrying: {error}")
        retries: Retries = memo.retries
        retries.schedule(namespace, name)
