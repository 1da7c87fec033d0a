"""A small, typed door to the Kubernetes API for the few calls the operator makes.

It speaks plain JSON dicts (the builders' manifests go out as they are) over the ``kubernetes``
client's authenticated connection pool, so in-cluster tokens, kubeconfig files and their refresh
are the client's business. Children are written with server-side apply: no read before write,
no resourceVersion, and a request that changes nothing leaves the object (and its
resourceVersion) untouched.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any, Final, Protocol

import urllib3
from kubernetes import client, config

from sensorsim_operator import names
from sensorsim_operator.api.v1alpha1 import API_GROUP, API_VERSION, PLURAL

log = logging.getLogger(__name__)

JsonObject = dict[str, Any]

_PLURALS: Final[Mapping[tuple[str, str], str]] = {
    ("v1", "ConfigMap"): "configmaps",
    ("v1", "Service"): "services",
    ("apps/v1", "StatefulSet"): "statefulsets",
    ("v1", "Pod"): "pods",
    (f"{API_GROUP}/{API_VERSION}", "SensorSimulation"): PLURAL,
}
_TIMEOUT_SECONDS: Final = 30.0
CONNECTIONS: Final = 20


class KubeError(Exception):
    """An API request failed; ``status`` is the HTTP status (0 when no response arrived)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def object_path(api_version: str, kind: str, namespace: str, name: str | None = None) -> str:
    """The REST path of a namespaced object (or of its collection when ``name`` is None)."""
    prefix = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    path = f"{prefix}/namespaces/{namespace}/{_PLURALS[(api_version, kind)]}"
    return path if name is None else f"{path}/{name}"


def manifest_path(manifest: Mapping[str, Any]) -> str:
    meta = manifest["metadata"]
    return object_path(manifest["apiVersion"], manifest["kind"], meta["namespace"], meta["name"])


class Kube(Protocol):
    """What the reconciler needs from the API server (a fake implements it in unit tests)."""

    def get(self, path: str) -> JsonObject | None:
        """The object at ``path``, or None when it does not exist."""

    def apply(self, manifest: Mapping[str, Any]) -> JsonObject:
        """Server-side apply of ``manifest`` as the operator's field manager, forcing conflicts."""

    def patch_status(self, path: str, status: Mapping[str, Any]) -> JsonObject:
        """Merge-patch the ``status`` subresource of the object at ``path``."""

    def post_event(self, event: Mapping[str, Any]) -> None:
        """Create a core/v1 Event (best effort: an Event that cannot be posted is logged and
        dropped; it never fails a reconcile)."""
        ...

    def scale(self, path: str, replicas: int, *, resource_version: str) -> None:
        """Set ``spec.replicas`` of the object at ``path`` (a merge patch of that one field),
        leaving the rest of its spec (the pod template) as it is, provided the object still has
        ``resource_version``: otherwise a :class:`KubeError` with status 409 (Conflict)."""

    def list_simulations(self, namespaces: Sequence[str]) -> list[JsonObject]:
        """All SensorSimulations in ``namespaces`` (all namespaces when empty)."""

    def list_pods(self, namespace: str, label_selector: str) -> list[JsonObject]:
        """The pods of ``namespace`` matching ``label_selector``."""


class ApiKube:
    """:class:`Kube` over the ``kubernetes`` package's ApiClient."""

    def __init__(self, api: client.ApiClient) -> None:
        self._api = api

    @classmethod
    def from_environment(cls) -> ApiKube:
        """In-cluster credentials when running in a pod, else the kubeconfig ($KUBECONFIG)."""
        configuration = client.Configuration()
        if os.environ.get("KUBERNETES_SERVICE_HOST"):
            config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        else:
            # Read $KUBECONFIG now: the client captures it once, when it is first imported.
            config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=os.environ.get("KUBECONFIG") or None,
                client_configuration=configuration,
            )
        # One connection for each reconcile that may run at once, and one to spare.
        configuration.connection_pool_maxsize = CONNECTIONS
        return cls(client.ApiClient(configuration))

    def close(self) -> None:
        self._api.close()  # type: ignore[no-untyped-call]

    def _request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        content_type: str | None = None,
        query: Sequence[tuple[str, str]] = (),
    ) -> JsonObject | None:
        headers = {"Accept": "application/json"}
        if content_type is not None:
            headers["Content-Type"] = content_type
        _, url, headers, body, _ = self._api.param_serialize(
            method=method,
            resource_path=path,
            query_params=list(query) or None,
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        try:
            response = self._api.call_api(
                method, url, header_params=headers, body=body, _request_timeout=_TIMEOUT_SECONDS
            )
            data = response.read()  # type: ignore[no-untyped-call]
            response.response.release_conn()  # back to the pool: the body is fully read
        except client.ApiException as error:
            if error.status == 404:
                return None
            raise KubeError(error.status or 0, _reason(error.body, str(error))) from error
        except (urllib3.exceptions.HTTPError, OSError) as error:
            # Connection refused, TLS, timeouts: retryable. Anything else is a bug and must
            # surface as one, not be retried as if the API server were at fault.
            raise KubeError(0, f"{method} {path}: {error}") from error
        if response.status == 404:
            return None
        if response.status >= 400:
            raise KubeError(response.status, _reason(data, f"{method} {path}: {response.status}"))
        parsed: JsonObject = json.loads(data) if data else {}
        return parsed

    def get(self, path: str) -> JsonObject | None:
        return self._request("GET", path)

    def apply(self, manifest: Mapping[str, Any]) -> JsonObject:
        result = self._request(
            "PATCH",
            manifest_path(manifest),
            body=dict(manifest),
            content_type="application/apply-patch+yaml",  # JSON is YAML
            query=(("fieldManager", names.FIELD_MANAGER), ("force", "true")),
        )
        if result is None:  # the namespace vanished under us
            raise KubeError(404, f"cannot apply {manifest_path(manifest)}: not found")
        return result

    def patch_status(self, path: str, status: Mapping[str, Any]) -> JsonObject:
        result = self._request(
            "PATCH",
            f"{path}/status",
            body={"status": dict(status)},
            content_type="application/merge-patch+json",
            query=(("fieldManager", names.FIELD_MANAGER),),
        )
        if result is None:
            raise KubeError(404, f"cannot patch {path}/status: not found")
        return result

    def post_event(self, event: Mapping[str, Any]) -> None:
        namespace = event["metadata"]["namespace"]
        try:
            self._request("POST", f"/api/v1/namespaces/{namespace}/events", body=dict(event))
        except KubeError as error:
            log.warning("could not post the Event %r: %s", event.get("reason"), error)

    def scale(self, path: str, replicas: int, *, resource_version: str) -> None:
        result = self._request(
            # The object itself, not its scale subresource: "patch" on it is the operator's
            # grant already (charts/sensorsim/templates/operator/_rbac.tpl). A resourceVersion
            # in a patch is a precondition: the API server refuses it (409) when it is stale.
            "PATCH",
            path,
            body={
                "metadata": {"resourceVersion": resource_version},
                "spec": {"replicas": replicas},
            },
            content_type="application/merge-patch+json",
            query=(("fieldManager", names.FIELD_MANAGER),),
        )
        if result is None:
            raise KubeError(404, f"cannot scale {path}: not found")

    def list_simulations(self, namespaces: Sequence[str]) -> list[JsonObject]:
        paths = (
            [f"/apis/{API_GROUP}/{API_VERSION}/namespaces/{ns}/{PLURAL}" for ns in namespaces]
            if namespaces
            else [f"/apis/{API_GROUP}/{API_VERSION}/{PLURAL}"]
        )
        found: list[JsonObject] = []
        for path in paths:
            listing = self._request("GET", path) or {}
            found.extend(listing.get("items", []))
        return found

    def list_pods(self, namespace: str, label_selector: str) -> list[JsonObject]:
        listing = self._request(
            "GET",
            object_path("v1", "Pod", namespace),
            query=(("labelSelector", label_selector),),
        )
        items: list[JsonObject] = (listing or {}).get("items", [])
        return items


def _reason(body: Any, fallback: str) -> str:
    """The API server's own message (a Status object) when there is one."""
    try:
        status = json.loads(body)
    except (TypeError, ValueError):
        return fallback
    message = status.get("message") if isinstance(status, dict) else None
    return str(message) if message else fallback
