"""``python -m sensorsim_operator``: ``kopf run --standalone`` with settings from the environment.

Standalone: no kopf peering, which is not leader election (an operator pauses only for a peer of
higher priority). One operator handles simulations at a time through a Lease instead
(:mod:`sensorsim_operator.leader_election`): a process stands by until it holds the Lease, and
only then starts kopf. WATCH_NAMESPACES empty = all namespaces.
"""

from __future__ import annotations

import kopf
from kopf.cli import main as kopf_cli

from sensorsim_operator import metrics
from sensorsim_operator.leader_election import run_elected
from sensorsim_operator.settings import OperatorSettings

HANDLERS_MODULE = "sensorsim_operator.handlers"
PROG_NAME = "sensorsim-operator"


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


def configure_logging(settings: OperatorSettings) -> None:
    """kopf's log format and level, before kopf starts (a standby logs like the leader)."""
    kopf.configure(
        verbose=settings.operator_log_level == "DEBUG",
        quiet=settings.operator_log_level == "WARNING",
        log_format=kopf.LogFormat[settings.operator_log_format.upper()],
    )


def main() -> None:
    settings = OperatorSettings()

    def run_kopf() -> None:
        kopf_cli.main(args=kopf_arguments(settings), prog_name=PROG_NAME)

    if not settings.operator_leader_election:
        run_kopf()
        return
    configure_logging(settings)
    metrics.serve(settings.operator_metrics_port)
    run_elected(settings, run_kopf)


if __name__ == "__main__":
    main()
