"""Install and locate the pinned test-infrastructure tools.

Versions live in ``tools/versions.env``; each tool's build recipe lives in ``tools/<name>/``
(a Maven POM for Kafka, a wrapper Go module for the Go tools). A tool is built once into
``$SENSORSIM_CACHE/tools/<name>-<version>-<recipe hash>/`` (outside the repository, default
``~/.cache/sensorsim``) and reused while neither its pin nor its recipe changes.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
TOOLS_DIR = REPO_ROOT / "tools"
VERSIONS_FILE = TOOLS_DIR / "versions.env"


class ToolError(RuntimeError):
    """A tool could not be installed or found; the message says which and why."""


def cache_dir() -> Path:
    return Path(os.environ.get("SENSORSIM_CACHE", Path.home() / ".cache" / "sensorsim"))


def versions() -> dict[str, str]:
    pins: dict[str, str] = {}
    for raw_line in VERSIONS_FILE.read_text().splitlines():
        line = raw_line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            pins[key.strip()] = value.strip()
    return pins


@dataclass(frozen=True)
class Tool:
    """One installable unit: a recipe folder producing one or more binaries (or a jar dir)."""

    name: str
    version_key: str
    binaries: tuple[str, ...]

    @property
    def recipe(self) -> Path:
        return TOOLS_DIR / self.name

    def install_dir(self) -> Path:
        digest = hashlib.sha256()
        for path in sorted(self.recipe.rglob("*")):
            if path.is_file():
                digest.update(path.name.encode())
                digest.update(path.read_bytes())
        version = versions()[self.version_key]
        return cache_dir() / "tools" / f"{self.name}-{version}-{digest.hexdigest()[:10]}"


KAFKA = Tool("kafka", "KAFKA_VERSION", ())
KUBERNETES = Tool(
    "k8s",
    "KUBERNETES_VERSION",
    ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl"),
)
ETCD = Tool("etcd", "ETCD_VERSION", ("etcd",))
KWOK = Tool("kwok", "KWOK_VERSION", ("kwok",))
HELM = Tool("helm", "HELM_VERSION", ("helm",))
GO_TOOLS = (KUBERNETES, ETCD, KWOK, HELM)
PROMETHEUS = Tool("prometheus", "PROMETHEUS_DEB_VERSION", ("prometheus", "promtool"))
REGISTRY = Tool("registry", "REGISTRY_DEB_VERSION", ("registry",))
# Tools unpacked from Debian packages (tools/<name>/README says why): the package, and where
# each binary is inside it.
DEB_TOOLS: dict[Tool, tuple[str, dict[str, str]]] = {
    PROMETHEUS: (
        "prometheus",
        {"prometheus": "usr/bin/prometheus", "promtool": "usr/bin/promtool"},
    ),
    REGISTRY: ("docker-registry", {"registry": "usr/bin/docker-registry"}),
}
ALL_TOOLS = (KAFKA, *GO_TOOLS, *DEB_TOOLS)


def _stamp(directory: Path) -> Path:
    return directory / ".complete"


def is_installed(tool: Tool) -> bool:
    return _stamp(tool.install_dir()).exists()


def tool_path(binary: str) -> Path:
    """Absolute path of an installed binary, e.g. ``tool_path("kube-apiserver")``."""
    for tool in (*GO_TOOLS, *DEB_TOOLS):
        if binary in tool.binaries:
            path = tool.install_dir() / "bin" / binary
            if not path.exists():
                raise ToolError(f"{binary} is not installed ({path} missing): run `make tools`")
            return path
    raise ToolError(f"unknown tool binary {binary!r}")


def bin_dirs() -> list[Path]:
    return [tool.install_dir() / "bin" for tool in GO_TOOLS]


def kafka_libs() -> Path:
    libs = KAFKA.install_dir() / "libs"
    if not _stamp(KAFKA.install_dir()).exists():
        raise ToolError(f"Kafka jars are not installed ({libs} missing): run `make tools`")
    return libs


def _run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> None:
    print(f"+ {' '.join(cmd)}", file=sys.stderr, flush=True)
    merged = {**os.environ, **(env or {})}
    result = subprocess.run(cmd, cwd=cwd, env=merged, check=False)
    if result.returncode != 0:
        raise ToolError(f"command failed with exit code {result.returncode}: {' '.join(cmd)}")


def _install_kafka(target: Path) -> None:
    pins = versions()
    _run(
        [
            "mvn",
            "-B",
            "-q",
            "-f",
            str(KAFKA.recipe / "pom.xml"),
            "org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={target / 'libs'}",
            f"-Dkafka.version={pins['KAFKA_VERSION']}",
            f"-Dlog4j2.version={pins['LOG4J2_VERSION']}",
            f"-Dslf4j.version={pins['SLF4J_VERSION']}",
        ],
        cwd=KAFKA.recipe,
    )
    (target / "libs").mkdir(exist_ok=True)
    if not any((target / "libs").glob("kafka_2.13-*.jar")):
        raise ToolError("Maven finished but the kafka_2.13 jar is missing from the classpath")


def _k8s_ldflags(version: str) -> str:
    major, minor = version.lstrip("v").split(".")[:2]
    flags = ["-s", "-w"]
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [
            f"-X {pkg}.gitVersion={version}",
            f"-X {pkg}.gitMajor={major}",
            f"-X {pkg}.gitMinor={minor}",
            f"-X {pkg}.gitTreeState=clean",
            f"-X {pkg}.gitCommit=0000000000000000000000000000000000000000",
            f"-X {pkg}.buildDate=1970-01-01T00:00:00Z",
        ]
    return " ".join(flags)


def _module_version(tool: Tool, module: str) -> str:
    return subprocess.run(
        ["go", "list", "-m", "-f", "{{.Version}}", module],
        cwd=tool.recipe,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


# The packages each recipe builds, and the ldflags that make `--version` tell the truth.
def _go_build_args(tool: Tool, version: str) -> tuple[list[str], str]:
    if tool is KUBERNETES:
        pkgs = [f"k8s.io/kubernetes/cmd/{b}" for b in tool.binaries]
        return pkgs, _k8s_ldflags(version)
    if tool is ETCD:
        return ["go.etcd.io/etcd/server/v3"], "-s -w"
    if tool is KWOK:
        return ["sigs.k8s.io/kwok/cmd/kwok"], "-s -w"  # consts.Version is set in source
    if tool is HELM:
        # As helm's Makefile does: the Kubernetes version helm assumes for `helm template`,
        # `lint` and `--dry-run` (Capabilities.KubeVersion) comes from its client-go module;
        # without it helm assumes v1.20 and refuses charts with a newer kubeVersion.
        client_go = _module_version(tool, "k8s.io/client-go")  # v0.MINOR.PATCH
        minor = client_go.split(".")[1]
        flags = [f"-s -w -X helm.sh/helm/v3/internal/version.version={version}"]
        for pkg in ("helm.sh/helm/v3/pkg/chartutil", "helm.sh/helm/v3/pkg/lint/rules"):
            flags.append(f"-X {pkg}.k8sVersionMajor=1 -X {pkg}.k8sVersionMinor={minor}")
        return ["helm.sh/helm/v3/cmd/helm"], " ".join(flags)
    raise ToolError(f"no Go build recipe for {tool.name}")


def _install_go_tool(tool: Tool, target: Path) -> None:
    version = versions()[tool.version_key]
    pkgs, ldflags = _go_build_args(tool, version)
    bindir = target / "bin"
    bindir.mkdir(parents=True, exist_ok=True)
    env = {"CGO_ENABLED": "0", "GOFLAGS": "-mod=readonly -buildvcs=false"}
    _run(
        [
            "go",
            "build",
            "-trimpath",
            "-tags",
            "selinux,notest,grpcnotrace",
            "-ldflags",
            ldflags,
            "-o",
            str(bindir) + "/",
            *pkgs,
        ],
        cwd=tool.recipe,
        env=env,
    )
    if tool is ETCD:
        # The etcd server module's main package is its root; go names the binary "server".
        (bindir / "server").rename(bindir / "etcd")
    if tool is KWOK:
        _copy_kwok_stages(target / "stages")
    for binary in tool.binaries:
        if not (bindir / binary).exists():
            raise ToolError(f"go build finished but {bindir / binary} is missing")


def _copy_kwok_stages(destination: Path) -> None:
    module_dir = subprocess.run(
        ["go", "list", "-m", "-f", "{{.Dir}}", "sigs.k8s.io/kwok"],
        cwd=KWOK.recipe,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    # kwok does nothing without Stage objects; tools/kwok/stages.txt names the sets to use.
    stage_dirs = [
        line.strip()
        for line in (KWOK.recipe / "stages.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    destination.mkdir(parents=True, exist_ok=True)
    for stage_dir in stage_dirs:
        for stage in sorted((Path(module_dir) / "kustomize" / "stage" / stage_dir).glob("*.yaml")):
            if stage.name != "kustomization.yaml":
                shutil.copyfile(stage, destination / stage.name)


def _install_deb_tool(tool: Tool, target: Path) -> None:
    """``apt-get download`` of the pinned package, ``dpkg-deb -x`` into ``target``, and only
    the tool's binaries kept (no service is installed or started)."""
    package, binaries = DEB_TOOLS[tool]
    version = versions()[tool.version_key]
    download = target / "download"
    download.mkdir()
    try:
        _run(["apt-get", "download", f"{package}={version}"], cwd=download)
    except ToolError as error:
        raise ToolError(
            f"{error}: the apt index may be missing or stale (`apt-get update`), or the archive "
            f"no longer has {package} {version} (update {tool.version_key})"
        ) from error
    [deb] = download.glob(f"{package}_*.deb")
    unpacked = target / "unpacked"
    _run(["dpkg-deb", "-x", str(deb), str(unpacked)], cwd=target)
    bindir = target / "bin"
    bindir.mkdir()
    for binary, inside in binaries.items():
        (unpacked / inside).rename(bindir / binary)
    shutil.rmtree(unpacked)
    shutil.rmtree(download)


def registry_config() -> Path:
    """The test registry's configuration (its recipe; address and storage come from the
    environment, see testbed/registry.py)."""
    return REGISTRY.recipe / "config.yml"


def kwok_stage_files() -> list[Path]:
    return sorted((KWOK.install_dir() / "stages").glob("*.yaml"))


def install(tool: Tool) -> Path:
    """Install one tool unless the same pin and recipe are already installed."""
    target = tool.install_dir()
    if _stamp(target).exists():
        return target
    started = time.monotonic()
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    if tool is KAFKA:
        _install_kafka(staging)
    elif tool in DEB_TOOLS:
        _install_deb_tool(tool, staging)
    else:
        _install_go_tool(tool, staging)
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    _stamp(target).write_text(f"built in {time.monotonic() - started:.0f}s\n")
    print(f"installed {tool.name} into {target}", file=sys.stderr, flush=True)
    return target


def install_all() -> None:
    for tool in ALL_TOOLS:
        install(tool)


def version_report() -> list[str]:
    """What each installed binary says of its own version."""
    lines = []
    for binary, args in (
        ("kube-apiserver", ["--version"]),
        ("kube-controller-manager", ["--version"]),
        ("kube-scheduler", ["--version"]),
        ("kubectl", ["version", "--client"]),
        ("etcd", ["--version"]),
        ("kwok", ["--version"]),
        ("helm", ["version", "--short"]),
        ("prometheus", ["--version"]),
        ("promtool", ["--version"]),
        ("registry", ["--version"]),
    ):
        out = subprocess.run(
            [str(tool_path(binary)), *args], capture_output=True, text=True, check=False
        )
        first = (out.stdout or out.stderr).strip().splitlines()
        lines.append(f"{binary}: {first[0] if first else '?'}")
    jar = next(kafka_libs().glob("kafka_2.13-*.jar"))
    lines.append(f"kafka: {jar.stem.removeprefix('kafka_2.13-')} ({jar.name})")
    return lines
