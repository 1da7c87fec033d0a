"""A real OCI registry (the CNCF distribution registry, see ``tools.REGISTRY``) on a free
loopback port with its storage in a directory of its own, for pushing and pulling the release's
image and chart. Plain HTTP: clients pass ``--tls-verify=false`` (podman) or ``--plain-http``
(helm). Readiness means the registry answered its API's version check (``GET /v2/``).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from testbed import procs, tools
from testbed.polling import wait_until

MANIFEST_TYPES = (
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)


@dataclass
class OciRegistry:
    """One registry serving ``address`` from ``workdir``; ``start()``, ``destroy()``."""

    workdir: Path
    port: int = field(default_factory=procs.free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        """``host:port``, as image references and ``oci://`` URLs name the registry."""
        return f"127.0.0.1:{self.port}"

    @property
    def log_file(self) -> Path:
        return self.workdir / "registry.log"

    def start(self, timeout: float = 30) -> None:
        tools.install(tools.REGISTRY)
        storage = self.workdir / "storage"
        storage.mkdir(parents=True, exist_ok=True)
        env = {
            "REGISTRY_HTTP_ADDR": self.address,
            "REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY": str(storage),
        }
        command = [str(tools.tool_path("registry")), "serve", str(tools.registry_config())]
        self.process = procs.start_detached(command, self.log_file, env)
        wait_until(
            lambda: procs.http_ok(f"http://{self.address}/v2/"),
            timeout=timeout,
            interval=0.1,
            message=f"registry on {self.address}",
            process=self.process,
            log_file=self.log_file,
        )

    def tags(self, repository: str) -> list[str]:
        """The tags of ``repository`` (empty when it does not exist)."""
        url = f"http://{self.address}/v2/{repository}/tags/list"
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                listing = json.loads(response.read())
        except urllib.error.HTTPError as error:
            if error.code == 404:
                return []
            raise
        return sorted(listing.get("tags") or [])

    def manifest_digest(self, repository: str, tag: str) -> str:
        """The digest the registry serves ``repository:tag``'s manifest under."""
        request = urllib.request.Request(
            f"http://{self.address}/v2/{repository}/manifests/{tag}",
            method="HEAD",
            headers={"Accept": ", ".join(MANIFEST_TYPES)},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return str(response.headers["Docker-Content-Digest"])

    def stop(self) -> None:
        if self.process is not None:
            procs.stop_pid(self.process.pid)
            self.process.wait(timeout=10)
            self.process = None

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir / "storage", ignore_errors=True)
