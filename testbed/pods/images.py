"""Images for the pod runner's containers, found or pulled as a kubelet does.

A pod's image is used when podman has it; otherwise, unless the container's
``imagePullPolicy`` is ``Never`` (then the pod waits with ``ErrImageNeverPull``), it is pulled
in the background while the pod waits in ``ContainerCreating``; a failed pull leaves the pod in
``ErrImagePull`` until the next attempt. Registries on a loopback address are pulled from in
plain HTTP (``--tls-verify=false``), as the test registry serves. One deviation: ``Always``
pulls only an image that is absent (the images the tests build exist only in podman's store).
"""

from __future__ import annotations

import json
import threading
from concurrent.futures import Future, ThreadPoolExecutor

from testbed import containers

LOOPBACK_REGISTRIES = ("localhost", "127.0.0.1", "[::1]")


def registry_of(image: str) -> str | None:
    """The registry host[:port] an image reference names (None: the default registry)."""
    first, _, rest = image.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        return first
    return None


def repository_of(image: str) -> str:
    """The reference without its tag or digest: ``127.0.0.1:5000/sensorsim:1.0`` ->
    ``127.0.0.1:5000/sensorsim``."""
    name = image.split("@", maxsplit=1)[0]
    if name.rfind(":") > name.rfind("/"):
        name = name.rsplit(":", 1)[0]
    return name


def pull_args(image: str) -> list[str]:
    registry = registry_of(image)
    loopback = registry is not None and registry.rsplit(":", 1)[0] in LOOPBACK_REGISTRIES
    return ["pull", "--quiet", *(["--tls-verify=false"] if loopback else []), image]


class ImagePuller:
    """Pulls the pods' images in the background (one pull per image at a time) and remembers
    which images it pulled."""

    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="image-pull")
        self._pulls: dict[str, Future[str | None]] = {}
        self._lock = threading.Lock()
        self.pulled: list[str] = []

    def waiting_reason(self, image: str, policy: str) -> tuple[str, str] | None:
        """None when ``image`` is present; otherwise why the pod waits for it (and a pull is
        started or under way, unless the policy forbids it)."""
        if present(image):
            return None
        if policy == "Never":
            return "ErrImageNeverPull", f'image "{image}" is not present on the node'
        with self._lock:
            pull = self._pulls.get(image)
            if pull is None:
                self._pulls[image] = self._executor.submit(self._pull, image)
                return "ContainerCreating", f'Pulling image "{image}"'
            if not pull.done():
                return "ContainerCreating", f'Pulling image "{image}"'
            del self._pulls[image]
        error = pull.result()
        if error is not None:
            return "ErrImagePull", f'failed to pull image "{image}": {error}'
        return None

    def _pull(self, image: str) -> str | None:
        result = containers.podman(*pull_args(image), check=False, timeout=900)
        if result.returncode != 0:
            return result.stderr.strip()[-300:] or f"podman pull exited {result.returncode}"
        self.pulled.append(image)
        return None

    def stop(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)


def present(image: str) -> bool:
    return containers.podman("image", "exists", image, check=False).returncode == 0


def image_id(image: str) -> str:
    """What a kubelet reports as a container's imageID: the digest of the image as its
    registry served it (``repository@sha256:...``), or the local image id of an image that
    came from no registry."""
    inspected = containers.podman(
        "image", "inspect", "--format", "{{json .RepoDigests}} {{.Id}}", image, check=False
    ).stdout.strip()
    if not inspected:
        return ""
    digests_json, _, local_id = inspected.rpartition(" ")
    repository = repository_of(image)
    for digest in json.loads(digests_json or "null") or []:
        if digest.split("@")[0] == repository:
            return str(digest)
    return f"sha256:{local_id}"
