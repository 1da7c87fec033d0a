"""How the pod runner reads an image reference to pull it (testbed/pods/images.py)."""

from __future__ import annotations

import pytest

from testbed.pods.images import pull_args, registry_of, repository_of


@pytest.mark.parametrize(
    ("image", "registry", "repository"),
    [
        ("127.0.0.1:5000/sensorsim:1.2.3", "127.0.0.1:5000", "127.0.0.1:5000/sensorsim"),
        ("localhost/sensorsim:0.1.0-abc", "localhost", "localhost/sensorsim"),
        (
            "registry.example.com/team/sensorsim@sha256:ab",
            "registry.example.com",
            "registry.example.com/team/sensorsim",
        ),
        ("127.0.0.1:5000/sensorsim", "127.0.0.1:5000", "127.0.0.1:5000/sensorsim"),
        ("apache/kafka:4.1.1", None, "apache/kafka"),
        ("sensorsim:0.1.0", None, "sensorsim"),
    ],
)
def test_registry_and_repository_of_a_reference(
    image: str, registry: str | None, repository: str
) -> None:
    assert registry_of(image) == registry
    assert repository_of(image) == repository


def test_only_loopback_registries_are_pulled_in_plain_http() -> None:
    assert "--tls-verify=false" in pull_args("127.0.0.1:5000/sensorsim:1.2.3")
    assert "--tls-verify=false" in pull_args("localhost:5000/sensorsim:1.2.3")
    assert "--tls-verify=false" not in pull_args("registry.example.com/sensorsim:1.2.3")
    assert "--tls-verify=false" not in pull_args("apache/kafka:4.1.1")
