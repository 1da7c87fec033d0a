"""A pod's container as ``podman run`` arguments: security context, memory limit, environment
(resolved as the kubelet does) and volumes (materialised as files under the runner's workdir)."""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any, cast

import kubernetes

Manifest = dict[str, Any]


class PodConfigError(Exception):
    """The pod cannot be started as specified (kubelet: CreateContainerConfigError)."""


class ContainerArgs:
    """Builds the ``podman run`` arguments of a pod's container; reads the ConfigMaps, Secrets
    and service-account tokens it refers to from the API server."""

    def __init__(
        self,
        core: kubernetes.client.CoreV1Api,
        apiserver_port: int,
        volumes_dir: Path,
        port_env: tuple[str, ...],
    ) -> None:
        self.core = core
        self.apiserver_port = apiserver_port
        self.volumes_dir = volumes_dir
        self.port_env = port_env

    def of(self, pod: Manifest, container: Manifest, ports: dict[int, int]) -> list[str]:
        """The arguments for ``container`` of ``pod``, whose container ports are published on
        the host ports ``ports`` maps them to. Raises ``PodConfigError``."""
        pod_security = pod["spec"].get("securityContext", {})
        security = {**pod_security, **container.get("securityContext", {})}
        user = security.get("runAsUser")
        if security.get("runAsNonRoot") and not user:
            raise PodConfigError("container has runAsNonRoot and image will run as root")
        group = security.get("runAsGroup", user)
        args = []
        if user is not None:
            args.append(f"--user={user}:{group}")
        if "fsGroup" in pod_security:
            args.append(f"--group-add={pod_security['fsGroup']}")
        if security.get("readOnlyRootFilesystem"):
            args.append("--read-only")
        capabilities = security.get("capabilities", {})
        args += [f"--cap-drop={c}" for c in capabilities.get("drop", [])]
        args += [f"--cap-add={c}" for c in capabilities.get("add", [])]
        if security.get("allowPrivilegeEscalation") is False:
            args.append("--security-opt=no-new-privileges")
        memory = container.get("resources", {}).get("limits", {}).get("memory")
        if memory:
            args.append(f"--memory={memory_bytes(memory)}")
        for key, value in self._env(pod, container, ports).items():
            args.append(f"--env={key}={value}")
        args += self._mounts(pod, container)
        return args

    # --- environment -----------------------------------------------------------------------

    def _env(self, pod: Manifest, container: Manifest, ports: dict[int, int]) -> dict[str, str]:
        namespace = pod["metadata"]["namespace"]
        # The kubelet always gives a container the API server's address (here: the real one on
        # loopback, not the Service's cluster IP, as the container is on the host's network).
        env: dict[str, str] = {
            "KUBERNETES_SERVICE_HOST": "127.0.0.1",
            "KUBERNETES_SERVICE_PORT": str(self.apiserver_port),
        }
        for source in container.get("envFrom", []):
            prefix = source.get("prefix", "")
            if "configMapRef" in source:
                data = self._data("configmap", namespace, source["configMapRef"]["name"])
            else:
                data = self._data("secret", namespace, source["secretRef"]["name"])
            env |= {prefix + k: v for k, v in data.items()}
        for entry in container.get("env", []):
            if "value" in entry or "valueFrom" not in entry:
                env[entry["name"]] = entry.get("value", "")
                continue
            ref = entry["valueFrom"]
            if "fieldRef" in ref:
                env[entry["name"]] = field_value(pod, ref["fieldRef"]["fieldPath"])
            elif "secretKeyRef" in ref or "configMapKeyRef" in ref:
                kind = "secret" if "secretKeyRef" in ref else "configmap"
                key_ref = ref.get("secretKeyRef") or ref["configMapKeyRef"]
                data = self._data(kind, namespace, key_ref["name"])
                if key_ref["key"] not in data:
                    raise PodConfigError(
                        f"couldn't find key {key_ref['key']} in {kind} {key_ref['name']}"
                    )
                env[entry["name"]] = data[key_ref["key"]]
            else:
                raise PodConfigError(f"env {entry['name']}: unsupported source {sorted(ref)}")
        for name in self.port_env:
            for container_port, host_port in ports.items():
                if env.get(name) == str(container_port):
                    env[name] = str(host_port)
        return env

    def _data(self, kind: str, namespace: str, name: str) -> dict[str, str]:
        """A ConfigMap's or Secret's data, decoded."""
        try:
            if kind == "secret":
                secret = self.core.read_namespaced_secret(name, namespace)
                raw = secret.data or {}
                return {k: base64.b64decode(v).decode() for k, v in raw.items()}
            found = self.core.read_namespaced_config_map(name, namespace)
        except kubernetes.client.ApiException as error:
            if error.status == 404:
                raise PodConfigError(f'{kind} "{name}" not found') from None
            raise
        return dict(found.data or {})

    # --- volumes -----------------------------------------------------------------------------

    def _mounts(self, pod: Manifest, container: Manifest) -> list[str]:
        meta = pod["metadata"]
        root = self.volumes_dir / meta["namespace"] / meta["name"] / meta["uid"]
        volumes = {v["name"]: v for v in pod["spec"].get("volumes", [])}
        args = []
        for mount in container.get("volumeMounts", []):
            volume = volumes[mount["name"]]
            path = root / mount["name"]
            if not path.exists():
                self._materialise(pod, volume, path)
            mode = "ro" if mount.get("readOnly") or "emptyDir" not in volume else "rw"
            args.append(f"--volume={path}:{mount['mountPath']}:{mode}")
        return args

    def _materialise(self, pod: Manifest, volume: Manifest, path: Path) -> None:
        path.mkdir(parents=True)
        if "emptyDir" in volume:
            path.chmod(0o1777)  # writable by the container's user, like a fresh emptyDir
            return
        for relative, content in self._volume_files(pod, volume).items():
            target = path / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content)
            target.chmod(0o644)
        for directory in (path, *(d for d in path.rglob("*") if d.is_dir())):
            directory.chmod(0o755)

    def _volume_files(self, pod: Manifest, volume: Manifest) -> dict[str, str]:
        """The files of a configMap, secret or projected volume (as the kubelet writes them)."""
        namespace = pod["metadata"]["namespace"]
        if "configMap" in volume or "secret" in volume:
            return self._source_files(namespace, volume)
        if "projected" not in volume:
            raise PodConfigError(f"volume {volume['name']}: unsupported type")
        files: dict[str, str] = {}
        for source in volume["projected"]["sources"]:
            if "serviceAccountToken" in source:
                token = source["serviceAccountToken"]
                files[token["path"]] = self._token(pod, token)
            elif "downwardAPI" in source:
                for item in source["downwardAPI"]["items"]:
                    files[item["path"]] = field_value(pod, item["fieldRef"]["fieldPath"])
            else:
                files |= self._source_files(namespace, source)
        return files

    def _source_files(self, namespace: str, source: Manifest) -> dict[str, str]:
        if "configMap" in source:
            ref, kind = source["configMap"], "configmap"
            data = self._data(kind, namespace, ref["name"])
        else:
            ref, kind = source["secret"], "secret"
            data = self._data(kind, namespace, ref.get("secretName") or ref["name"])
        items = ref.get("items") or [{"key": k, "path": k} for k in data]
        missing = [i["key"] for i in items if i["key"] not in data]
        if missing:
            raise PodConfigError(f"{kind} {ref.get('name') or ref.get('secretName')}: no {missing}")
        return {item["path"]: data[item["key"]] for item in items}

    def _token(self, pod: Manifest, token: Manifest) -> str:
        """A bound service-account token from the TokenRequest API, as the kubelet requests."""
        spec: Manifest = {"expirationSeconds": int(token.get("expirationSeconds", 3607))}
        if token.get("audience"):
            spec["audiences"] = [token["audience"]]
        account = pod["spec"].get("serviceAccountName") or "default"
        response: Any = self.core.create_namespaced_service_account_token(
            account, pod["metadata"]["namespace"], cast(Any, {"spec": spec})
        )
        return str(response.status.token)


def field_value(pod: Manifest, path: str) -> str:
    """A downward-API ``fieldRef`` value."""
    simple = {
        "metadata.name": pod["metadata"]["name"],
        "metadata.namespace": pod["metadata"]["namespace"],
        "metadata.uid": pod["metadata"]["uid"],
        "spec.nodeName": pod["spec"].get("nodeName", ""),
        "spec.serviceAccountName": pod["spec"].get("serviceAccountName", ""),
        "status.hostIP": "127.0.0.1",
        "status.podIP": "127.0.0.1",
    }
    if path in simple:
        return str(simple[path])
    match = re.fullmatch(r"metadata\.(labels|annotations)\['([^']+)'\]", path)
    if match is None:
        raise PodConfigError(f"unsupported fieldRef {path}")
    return str(pod["metadata"].get(match.group(1), {}).get(match.group(2), ""))


def memory_bytes(quantity: str) -> int:
    """A memory quantity (``128Mi``, ``1G``, ``500000``) in bytes."""
    units = {
        "Ki": 2**10,
        "Mi": 2**20,
        "Gi": 2**30,
        "Ti": 2**40,
        "k": 10**3,
        "M": 10**6,
        "G": 10**9,
        "T": 10**12,
    }
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([A-Za-z]*)", quantity)
    if match is None or match.group(2) not in {**units, "": 1}:
        raise PodConfigError(f"unsupported memory quantity {quantity!r}")
    return int(float(match.group(1)) * units.get(match.group(2), 1))
