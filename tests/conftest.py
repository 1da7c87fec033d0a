"""Session fixtures that start the real infrastructure on free ports and always stop it, and
the markers that say what each test needs.

Tests under tests/kafka get a real Apache Kafka broker, tests under tests/k8s a real control
plane. When infrastructure cannot start, the fixture raises: those tests fail with the reason,
they are never skipped.
"""

from __future__ import annotations

import atexit
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

# Before anything loads numpy (pytest and hypothesis do not): the numeric kernels every producer
# process uses (producer.runtime.kernels), so that streams computed here and there agree.
import producer  # noqa: F401
from testbed import containers, tools
from testbed.cluster import KubeCluster
from testbed.kafka import KafkaBroker
from testbed.procs import running
from testbed.registry import OciRegistry

# Property tests judge results, not speed: a machine busy with brokers and pods must not fail
# them on hypothesis's per-example deadline (benchmarks measure speed).
settings.register_profile("sensorsim", deadline=None)
settings.load_profile("sensorsim")

_DIRECTORY_MARKERS = {"kafka": pytest.mark.kafka, "k8s": pytest.mark.k8s}
# What a test may need beyond the test process (pyproject.toml describes each marker).
_NEEDS = ("subprocess", "tools", "container", "kafka", "k8s")


def pytest_configure(config: pytest.Config) -> None:
    """A run stopped by SIGTERM (a cancelled CI job, ``timeout``) ends as Ctrl-C ends it: the
    session fixtures' teardown stops the broker, the control plane and the registry, which run
    in process groups of their own and would otherwise outlive the run."""
    signal.signal(signal.SIGTERM, _interrupt)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests under tests/kafka and tests/k8s carry their folder's marker; a test under
    tests/unit is `unit` unless it is marked with something it needs (a subprocess, helm,
    podman), so `-m unit` selects exactly the tests that run in the test process alone."""
    for item in items:
        folder = Path(str(item.fspath)).parent.name
        marker = _DIRECTORY_MARKERS.get(folder)
        if marker is not None:
            item.add_marker(marker)
        if folder == "unit" and not any(item.get_closest_marker(n) for n in _NEEDS):
            item.add_marker(pytest.mark.unit)


def pytest_report_header() -> str:
    return (
        f"image tests: the Dockerfile's base {containers.official_base()} is a STAND-IN built "
        "from Debian packages unless the official image is present (testbed/containers.py)"
    )


ORIGINAL_REFERENCE_CSV = tools.REPO_ROOT.parent / "shared" / "reference" / "data_sensors.csv"


@pytest.fixture(scope="session")
def original_reference_csv() -> Path:
    """The original system's data file, which lives beside the repository (never in it).
    A developer checkout without it skips the tests that read it; CI, which always has it,
    fails instead, so those tests cannot silently stop running."""
    if not ORIGINAL_REFERENCE_CSV.exists():
        message = f"the original system's file is missing: {ORIGINAL_REFERENCE_CSV}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return ORIGINAL_REFERENCE_CSV


def _broker(workdir: Path, **kwargs: str) -> Iterator[KafkaBroker]:
    tools.install(tools.KAFKA)
    with running(KafkaBroker(workdir, **kwargs)) as broker:  # type: ignore[arg-type]
        yield broker


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    yield from _broker(tmp_path_factory.mktemp("kafka"))


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka_broker: KafkaBroker) -> str:
    return kafka_broker.bootstrap


@pytest.fixture(scope="session")
def scram_kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    yield from _broker(
        tmp_path_factory.mktemp("kafka-scram"),
        scram_user="sensorsim",
        scram_password="sensorsim-scram-secret",
    )


@pytest.fixture(scope="session")
def k8s_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeCluster]:
    for tool in tools.GO_TOOLS:
        tools.install(tool)
    control_plane = KubeCluster(tmp_path_factory.mktemp("cluster"))
    atexit.register(control_plane.stop)
    try:
        control_plane.start()
        yield control_plane
    finally:
        control_plane.stop()


@pytest.fixture(scope="session")
def oci_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OciRegistry]:
    """A real OCI registry (plain HTTP on a loopback port, storage in a temporary directory)."""
    with running(OciRegistry(tmp_path_factory.mktemp("registry"))) as registry:
        yield registry


@pytest.fixture(scope="session")
def sensorsim_image() -> str:
    """The project's image, built from the Dockerfile with podman (against the stand-in base;
    layers are cached, so an unchanged tree rebuilds in seconds), by a tag naming this build."""
    return containers.build_image().pinned
