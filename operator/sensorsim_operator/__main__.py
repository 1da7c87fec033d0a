"""``python -m sensorsim_operator``: ``kopf run --standalone`` with settings from the environment.

Standalone (no kopf peering): the operator runs as a single replica with a Recreate Deployment
strategy, so there is never a second instance to coordinate with (docs/operator.md explains the
choice). WATCH_NAMESPACES empty = all namespaces.
"""

from __future__ import annotations

from kopf.cli import main as kopf_cli

from sensorsim_operator.settings import OperatorSettings

HANDLERS_MODULE = "sensorsim_operator.handlers"


def kopf_arguments(settings: OperatorSettings) -> list[str]:
    """The ``kopf`` command line for these settings."""
    args = ["run", "--standalone", "--module", HANDLERS_MODULE]
    args += ["--log-format", settings.operator_log_format]
    # kopf logs at INFO by default; --verbose is DEBUG (including every HTTP request).
    if settings.operator_log_level == "DEBUG":
        args.append("--verbose")
    elif settings.operator_log_level == "WARNING":
        args.append("--quiet")
    if settings.operator_health_port:
        args += ["--liveness", f"http://0.0.0.0:{settings.operator_health_port}/healthz"]
    if settings.namespaces:
        for namespace in settings.namespaces:
            args += ["--namespace", namespace]
    else:
        args.append("--all-namespaces")
    return args


def main() -> None:
    kopf_cli.main(args=kopf_arguments(OperatorSettings()), prog_name="sensorsim-operator")


if __name__ == "__main__":
    main()
