"""`make release VERSION=x [REGISTRY=host:port]`: the wheel and sdist, the image and the packaged
Helm chart of one version, and with a registry, the image and the chart pushed to it.

The release is built from the checkout's HEAD (a clean copy of it in a scratch directory, so
nothing uncommitted can slip in and the image's revision label is the commit), with the version
written into the copy: ``pyproject.toml`` (the wheel's and the image's installed version, which
``sensorsim --version`` reports), the chart's ``version`` and ``appVersion`` (``helm package
--version --app-version``; the chart's image tag defaults to ``appVersion``), and with a
registry, the chart's ``image.registry``, so that ``helm install oci://<registry>/charts/sensorsim
--version x`` runs the image pushed beside it without further values.

Outputs, in ``dist/`` of the checkout: ``sensorsim-x-py3-none-any.whl``, ``sensorsim-x.tar.gz``,
``charts/sensorsim-x.tgz``; the image ``localhost/sensorsim:x`` (and ``<registry>/sensorsim:x``).
The image is built as ``make image`` builds it (podman, the Dockerfile unchanged).

A registry on a loopback address is spoken to in plain HTTP (``podman push --tls-verify=false``,
``helm push --plain-http``); any other registry over HTTPS, with the credentials of ``podman
login`` and ``helm registry login``.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from testbed import containers, tools

REPO = tools.REPO_ROOT
DIST = REPO / "dist"
IMAGE_NAME = "sensorsim"
CHART_NAME = "sensorsim"
CHART_REPOSITORY = "charts"  # oci://<registry>/charts/sensorsim
# One spelling that is at once a PEP 440 version (the wheel), a SemVer 2 version (the chart)
# and an image tag: MAJOR.MINOR.PATCH.
VERSION_PATTERN = re.compile(r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)")
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "[::1]")


class ReleaseError(RuntimeError):
    """The release cannot go on; the message says why and what to do."""


def log(message: str) -> None:
    print(f"== {message}", file=sys.stderr, flush=True)


def run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False, timeout=1800
    )
    if result.returncode != 0:
        raise ReleaseError(
            f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stdout}{result.stderr}"
        )
    return result.stdout


# --- checks --------------------------------------------------------------------------------


def checked_version(version: str) -> str:
    if not version:
        raise ReleaseError("VERSION is required: make release VERSION=1.2.3 [REGISTRY=host:port]")
    if not VERSION_PATTERN.fullmatch(version):
        raise ReleaseError(
            f"VERSION={version!r} is not MAJOR.MINOR.PATCH (e.g. 1.2.3): the same string must "
            "be a Python package version, a Helm chart version (SemVer) and an image tag"
        )
    return version


def plain_http(registry: str) -> bool:
    return registry.rsplit(":", 1)[0] in LOOPBACK_HOSTS


def check_registry(registry: str) -> None:
    """Fail early when nothing answers the registry API at ``registry`` (401 is an answer:
    a registry that wants a login, which podman and helm bring)."""
    if "/" in registry or not registry:
        raise ReleaseError(f"REGISTRY={registry!r} must be host[:port], e.g. 127.0.0.1:5000")
    url = f"{'http' if plain_http(registry) else 'https'}://{registry}/v2/"
    try:
        with urllib.request.urlopen(url, timeout=10):  # noqa: S310 - http(s) only, built above
            return
    except urllib.error.HTTPError as error:
        if error.code == 401:
            return
        raise ReleaseError(f"registry {registry} answered {url} with {error.code}") from None
    except OSError as error:
        raise ReleaseError(f"registry {registry} is unreachable ({url}: {error})") from None


def head_commit() -> str:
    dirty = run(["git", "status", "--porcelain", "--untracked-files=no"], REPO).strip()
    if dirty:
        raise ReleaseError(
            f"the checkout has uncommitted changes; a release is built from a commit:\n{dirty}"
        )
    return run(["git", "rev-parse", "HEAD"], REPO).strip()


# --- the versioned copy --------------------------------------------------------------------


def with_version(pyproject: str, version: str) -> str:
    """``pyproject.toml``'s text with the project's version set to ``version``."""
    text, found = re.subn(r'^version = "[^"]*"$', f'version = "{version}"', pyproject, flags=re.M)
    if found != 1:
        raise ReleaseError('pyproject.toml has no single `version = "..."` line')
    return text


def with_image_registry(values: str, registry: str) -> str:
    """The chart's ``values.yaml`` text with ``image.registry`` (the top-level ``image:``
    block's, empty by default) set to ``registry``; comments and layout are kept."""
    text, found = re.subn(
        r'^(image:\n(?:[ ]+.*\n)*?[ ]+registry: )""$',
        rf'\g<1>"{registry}"',
        values,
        count=1,
        flags=re.M,
    )
    if found != 1:
        raise ReleaseError('values.yaml: no `registry: ""` in the top-level image block')
    return text


def stamped_copy(commit: str, version: str, registry: str | None, scratch: Path) -> Path:
    """A clean copy of ``commit`` with ``version`` (and ``registry``) written in."""
    tree = scratch / "src"
    run(["git", "clone", "--quiet", "--shared", "--no-checkout", str(REPO), str(tree)], scratch)
    run(["git", "-c", "advice.detachedHead=false", "checkout", "--quiet", commit], tree)
    pyproject = tree / "pyproject.toml"
    pyproject.write_text(with_version(pyproject.read_text(), version))
    if registry is not None:
        values = tree / "charts" / CHART_NAME / "values.yaml"
        values.write_text(with_image_registry(values.read_text(), registry))
    return tree


# --- the artifacts -------------------------------------------------------------------------


def build_python(tree: Path, version: str) -> list[Path]:
    out = tree / "dist"
    run(["uv", "build", "--quiet", "--sdist", "--wheel", "--out-dir", str(out)], tree)
    DIST.mkdir(exist_ok=True)
    built = []
    for name in (f"sensorsim-{version}-py3-none-any.whl", f"sensorsim-{version}.tar.gz"):
        if not (out / name).exists():
            raise ReleaseError(f"uv build did not write {name}: {sorted(os.listdir(out))}")
        built.append(Path(shutil.copy2(out / name, DIST / name)))
    return built


def build_image(tree: Path, version: str) -> str:
    """``make image`` in the versioned copy: the copy's Dockerfile, its version and commit."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = run([sys.executable, "-m", "testbed", "image"], tree, env)
    image = out.strip().splitlines()[-1].removeprefix("IMAGE=")
    if image != f"{containers.IMAGE_REPOSITORY}:{version}":
        raise ReleaseError(f"the image build reported {image!r}, not version {version}")
    return image


def package_chart(tree: Path, version: str) -> Path:
    out = DIST / "charts"
    out.mkdir(parents=True, exist_ok=True)
    chart = tree / "charts" / CHART_NAME
    helm = str(tools.tool_path("helm"))
    run([helm, "package", str(chart), "--version", version, "--app-version", version,
         "--destination", str(out)], tree)  # fmt: skip
    packaged = out / f"{CHART_NAME}-{version}.tgz"
    if not packaged.exists():
        raise ReleaseError(f"helm package did not write {packaged}")
    return packaged


def push_image(image: str, registry: str, version: str) -> str:
    target = f"{registry}/{IMAGE_NAME}:{version}"
    containers.podman("tag", image, target)
    tls = ["--tls-verify=false"] if plain_http(registry) else []
    try:
        containers.podman("push", "--quiet", *tls, target, timeout=1800)
    except tools.ToolError as error:
        raise ReleaseError(f"pushing the image to {registry} failed: {error}") from None
    return target


def push_chart(packaged: Path, registry: str) -> str:
    plain = ["--plain-http"] if plain_http(registry) else []
    helm = str(tools.tool_path("helm"))
    run([helm, "push", str(packaged), f"oci://{registry}/{CHART_REPOSITORY}", *plain], DIST)
    return f"oci://{registry}/{CHART_REPOSITORY}/{CHART_NAME}"


def release(version: str, registry: str | None) -> None:
    started = time.monotonic()
    version = checked_version(version)
    if registry is not None:
        check_registry(registry)
    commit = head_commit()
    tools.install(tools.HELM)
    containers.ensure_packages()
    with tempfile.TemporaryDirectory(prefix="sensorsim-release-") as scratch:
        tree = stamped_copy(commit, version, registry, Path(scratch))
        log(f"release {version} of {commit[:12]}" + (f" to {registry}" if registry else ""))
        for path in build_python(tree, version):
            log(f"built {path.relative_to(REPO)}")
        packaged = package_chart(tree, version)
        log(f"packaged {packaged.relative_to(REPO)}")
        image = build_image(tree, version)
        log(f"built image {image}")
    if registry is None:
        log(f"nothing pushed (no REGISTRY); done in {time.monotonic() - started:.0f}s")
        return
    log(f"pushed image {push_image(image, registry, version)}")
    chart = push_chart(packaged, registry)
    log(f"pushed chart {chart} --version {version}")
    log(f"done in {time.monotonic() - started:.0f}s; install with:")
    print(f"helm install sensorsim {chart} --version {version}")


def main() -> None:
    parser = argparse.ArgumentParser(prog="make release", description=__doc__.split("\n\n")[0])
    parser.add_argument("version", help="MAJOR.MINOR.PATCH")
    parser.add_argument("--registry", default="", help="host[:port] to push to (optional)")
    args = parser.parse_args()
    try:
        release(args.version, args.registry or None)
    except (ReleaseError, tools.ToolError) as error:
        sys.exit(f"make release failed: {error}")


if __name__ == "__main__":
    main()
