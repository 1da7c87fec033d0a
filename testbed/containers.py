"""The project's image, built and run with podman (daemonless; there is no Docker engine here).

- ``ensure_packages()`` installs podman, runc and mmdebstrap from Debian when they are missing.
- The Dockerfile names the official ``python:3.11.14-slim-trixie``, which cannot be pulled here.
  ``standin_base()`` builds a stand-in from Debian packages (Python 3.11 from bookworm, pip, the
  machine's CA bundle) with mmdebstrap and tags it with the official name, so the Dockerfile
  builds unchanged with ``--pull=never``. The rootfs tarball is cached in
  ``$SENSORSIM_CACHE/images/`` keyed by its recipe (and the CA bundle), like the other tools.
- ``build_image()`` builds the Dockerfile; ``hardened_run_args()`` are the ``podman run`` flags of
  the pods' security context (uid 10001, read-only root, no capabilities, no-new-privileges).

Every podman call uses runc (crun refuses these hybrid cgroup-v1 machines) and explicit ulimits
(without them the runtime's setrlimit fails with "Operation not permitted").
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from testbed import tools

DOCKERFILE = tools.REPO_ROOT / "Dockerfile"
IMAGE_REPOSITORY = "localhost/sensorsim"
APT_PACKAGES = ("podman", "runc", "mmdebstrap")
GLOBAL_ARGS = ("--runtime", "runc")
ULIMITS = ("--ulimit", "nofile=4096:4096", "--ulimit", "nproc=4096:4096")
RECIPE_LABEL = "io.sensorsim.standin.recipe"
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
STANDIN_CA_BUNDLE = "/usr/local/share/sensorsim-standin/ca-bundle.crt"
RUN_AS = "10001:10001"


@dataclass(frozen=True)
class StandinRecipe:
    """What the stand-in base is made of; any change here gives a new cache key."""

    suite: str = "bookworm"
    mirror: str = "http://deb.debian.org/debian"
    # python3.11 as in the official image; pip because the Dockerfile runs `pip install uv`;
    # passwd for the final stage's groupadd/useradd (the official slim image has it).
    packages: tuple[str, ...] = (
        "python3.11",
        "python3.11-venv",
        "libpython3.11",
        "python3-pip",
        "ca-certificates",
        "passwd",
    )
    hooks: tuple[str, ...] = (
        # The official image's pip installs into the system interpreter and its python lives
        # in /usr/local/bin (the Dockerfile's UV_PYTHON points there).
        'rm -f "$1/usr/lib/python3.11/EXTERNALLY-MANAGED"',
        'ln -sf /usr/bin/python3.11 "$1/usr/local/bin/python3"',
        'ln -sf /usr/bin/python3.11 "$1/usr/local/bin/python"',
        # Package registries are reached through a TLS proxy whose CA only the host's bundle
        # has: RUN steps (pip, uv) need it.
        f'mkdir -p "$1{Path(STANDIN_CA_BUNDLE).parent}"',
        f'cp {HOST_CA_BUNDLE} "$1{STANDIN_CA_BUNDLE}"',
        'rm -rf "$1/usr/share/doc" "$1/usr/share/man" "$1/var/cache/apt"/*.bin',
    )
    config: tuple[str, ...] = (
        "ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin",
        "ENV LANG=C.UTF-8",
        f"ENV SSL_CERT_FILE={STANDIN_CA_BUNDLE}",
        f"ENV PIP_CERT={STANDIN_CA_BUNDLE}",
        'CMD ["python3"]',
    )

    def key(self) -> str:
        digest = hashlib.sha256(json.dumps(self.__dict__, sort_keys=True).encode())
        if HOST_CA_BUNDLE.exists():
            digest.update(HOST_CA_BUNDLE.read_bytes())
        return digest.hexdigest()[:12]


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- podman --------------------------------------------------------------------------------


def ensure_packages() -> None:
    """Install podman, runc and mmdebstrap with apt when one is missing (as root)."""
    missing = [
        p for p in APT_PACKAGES if shutil.which(p) is None and not Path(f"/usr/sbin/{p}").exists()
    ]
    if not missing:
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise tools.ToolError(
            f"{', '.join(missing)} missing: run `apt-get install -y {' '.join(APT_PACKAGES)}`"
        )
    started = time.monotonic()
    log(f"installing {' '.join(APT_PACKAGES)} with apt-get")
    for cmd in (
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", *APT_PACKAGES],
    ):
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise tools.ToolError(f"{' '.join(cmd)} failed:\n{result.stdout}{result.stderr}")
    log(f"installed {' '.join(APT_PACKAGES)} in {time.monotonic() - started:.0f}s")


def podman_command(*args: str) -> list[str]:
    return ["podman", *GLOBAL_ARGS, *args]


def podman(
    *args: str, check: bool = True, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        podman_command(*args), capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and result.returncode != 0:
        raise tools.ToolError(
            f"podman {' '.join(args)} failed ({result.returncode}):\n{result.stdout}{result.stderr}"
        )
    return result


def _streamed(*args: str) -> None:
    """A long podman command whose progress the user should see (on stderr)."""
    log(f"+ podman {' '.join(args)}")
    result = subprocess.run(podman_command(*args), stdout=sys.stderr, check=False)
    if result.returncode != 0:
        raise tools.ToolError(f"podman {' '.join(args[:1])} failed with code {result.returncode}")


def image_labels(reference: str) -> dict[str, str] | None:
    """The image's labels, or None when there is no such image."""
    result = podman("image", "inspect", "--format", "{{json .Labels}}", reference, check=False)
    if result.returncode != 0:
        return None
    labels: dict[str, str] | None = json.loads(result.stdout or "null")
    return labels or {}


# --- the stand-in base ---------------------------------------------------------------------


def official_base() -> str:
    """The base image the Dockerfile names, as podman spells it."""
    bases = set(re.findall(r"^FROM\s+(\S+)", DOCKERFILE.read_text(), flags=re.MULTILINE))
    if len(bases) != 1:
        raise tools.ToolError(f"expected one base image in {DOCKERFILE}, found {sorted(bases)}")
    [base] = bases
    return base if "/" in base else f"docker.io/library/{base}"


def standin_tarball(recipe: StandinRecipe) -> Path:
    """The stand-in's root filesystem, built with mmdebstrap once per recipe."""
    target = tools.cache_dir() / "images" / f"python-standin-{recipe.key()}.tar"
    if target.exists():
        return target
    started = time.monotonic()
    # per process: two builds at once (two checkouts, one cache) must not share a partial file
    partial = target.with_name(f"{target.stem}.{os.getpid()}.partial")
    partial.parent.mkdir(parents=True, exist_ok=True)
    cmd = [
        "mmdebstrap",
        "--quiet",
        "--variant=apt",
        f"--include={','.join(recipe.packages)}",
        *(f"--customize-hook={hook}" for hook in recipe.hooks),
        "--format=tar",
        recipe.suite,
        str(partial),
        recipe.mirror,
    ]
    log(f"+ {' '.join(cmd)}")
    result = subprocess.run(cmd, stdout=sys.stderr, check=False)
    if result.returncode != 0:
        partial.unlink(missing_ok=True)
        raise tools.ToolError(f"mmdebstrap failed with code {result.returncode}")
    partial.replace(target)  # atomic; a concurrent build of the same recipe wrote the same
    log(f"stand-in rootfs {target} built in {time.monotonic() - started:.0f}s")
    return target


def standin_base(recipe: StandinRecipe | None = None) -> str:
    """Tag a stand-in for the Dockerfile's base image (imported from the cached rootfs), unless
    the real base image is already present (pulled on a machine that can)."""
    recipe = recipe or StandinRecipe()
    reference = official_base()
    labels = image_labels(reference)
    if labels is not None and labels.get(RECIPE_LABEL) == recipe.key():
        return reference
    if labels is not None and RECIPE_LABEL not in labels:
        log(f"{reference} is present and is not this project's stand-in: building on it")
        return reference
    tarball = standin_tarball(recipe)
    changes = [*recipe.config, f"LABEL {RECIPE_LABEL}={recipe.key()}"]
    podman("import", *(f"--change={c}" for c in changes), str(tarball), reference)
    log(f"{reference} is a STAND-IN built from Debian {recipe.suite}, not the official image")
    return reference


# --- the project's image -------------------------------------------------------------------


def project_version() -> str:
    match = re.search(
        r'^version = "([^"]+)"', (tools.REPO_ROOT / "pyproject.toml").read_text(), re.M
    )
    if match is None:
        raise tools.ToolError("no version in pyproject.toml")
    return match.group(1)


def _revision() -> str:
    result = subprocess.run(
        ["git", "rev-parse", "HEAD"],
        cwd=tools.REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout.strip() or "unknown"


@dataclass(frozen=True)
class BuiltImage:
    tag: str  # the version tag users load (localhost/sensorsim:<version>)
    pinned: str  # a tag naming exactly this build (another checkout may move the version tag)


def build_image() -> BuiltImage:
    """Build the Dockerfile, unchanged, against the stand-in base."""
    ensure_packages()
    standin_base()
    tag = f"{IMAGE_REPOSITORY}:{project_version()}"
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as scratch:
        iidfile = Path(scratch) / "iid"
        _streamed(
            "build",
            "--pull=never",
            "--network=host",
            *ULIMITS,
            "--build-arg",
            f"VERSION={project_version()}",
            "--build-arg",
            f"REVISION={_revision()}",
            f"--iidfile={iidfile}",
            "--file",
            str(DOCKERFILE),
            "--tag",
            tag,
            str(tools.REPO_ROOT),
        )
        image_id = iidfile.read_text().strip().removeprefix("sha256:")
    # Tagged by id, not by looking the version tag up: builds from other checkouts on the same
    # machine share podman's store and may have moved the version tag meanwhile.
    pinned = f"{tag}-{image_id[:12]}"
    podman("tag", image_id, pinned)
    log(f"built {tag} ({pinned}) in {time.monotonic() - started:.0f}s")
    return BuiltImage(tag, pinned)


def image_report(reference: str) -> list[str]:
    """The image's size and its layers (the build steps that made them), for CI's log."""
    size = podman("image", "inspect", "--format", "{{.Size}}", reference).stdout.strip()
    history = podman(
        "history", "--format", "{{.Size}}\t{{.CreatedBy}}", "--no-trunc", reference
    ).stdout
    lines = [f"image {reference}: {int(size) / 1e6:.0f} MB (stand-in base included)"]
    for row in history.splitlines():
        layer_size, _, created_by = row.partition("\t")
        step = re.sub(r"\s+", " ", created_by.removeprefix("/bin/sh -c ")).strip()
        lines.append(f"  {layer_size:>10}  {step[:110]}")
    return lines


# --- running it ----------------------------------------------------------------------------


def hardened_run_args(
    env: Mapping[str, str] = {},
    mounts: Sequence[tuple[Path, str]] = (),
    user: str = RUN_AS,
    network: str = "host",
) -> list[str]:
    """``podman run`` flags for a pod's restricted security context: numeric non-root user,
    read-only root filesystem with a tmpfs /tmp, no capabilities, no privilege escalation,
    by default the host's network (the test broker and API server listen on 127.0.0.1)."""
    args = [
        f"--user={user}",
        "--read-only",
        "--read-only-tmpfs=false",
        "--tmpfs=/tmp:rw,size=64m,mode=1777",
        "--cap-drop=ALL",
        "--security-opt=no-new-privileges",
        f"--network={network}",
        *ULIMITS,
    ]
    for key, value in env.items():
        args.append(f"--env={key}={value}")
    for source, target in mounts:
        args.append(f"--volume={source}:{target}:ro")
    return args


def chart_operator_command() -> list[str]:
    """The operator command the Helm chart runs (a literal list in its Deployment template)."""
    template = tools.REPO_ROOT / "charts/sensorsim/templates/operator/deployment.yaml"
    match = re.search(r"^\s*command:\s*(\[.*\])\s*$", template.read_text(), re.MULTILINE)
    if match is None:
        raise tools.ToolError(f"no literal `command: [...]` in {template}")
    return [str(part) for part in json.loads(match.group(1))]
