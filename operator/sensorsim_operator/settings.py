"""The operator's own configuration, from its environment (docs/contracts.md, "Operator")."""

from __future__ import annotations

from pathlib import Path
from typing import Final, Literal, Self

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

SERVICE_ACCOUNT_NAMESPACE: Final = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
# client-go's leader election refuses a renew deadline within 1.2 retry periods (its jitter):
# the last retry before the deadline must have a chance to finish.
RETRY_JITTER: Final = 1.2


class OperatorSettings(BaseSettings):
    """Environment variables of ``python -m sensorsim_operator``."""

    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore", frozen=True)

    watch_namespaces: str = Field(
        default="",
        description="Comma-separated namespaces to watch; empty = all namespaces.",
    )
    producer_image: str = Field(
        default="sensorsim:latest",
        min_length=1,
        description="Image of the producer pods (the chart passes the operator's own image).",
    )
    operator_health_port: int = Field(
        default=8080, ge=0, le=65535, description="Port of the /healthz liveness endpoint; 0 = off."
    )
    operator_metrics_port: int = Field(
        default=9090, ge=0, le=65535, description="Port of the Prometheus /metrics; 0 = off."
    )
    operator_log_format: Literal["plain", "full", "json"] = Field(
        default="json", description="kopf's log format: json (structured) for clusters."
    )
    operator_log_level: Literal["DEBUG", "INFO", "WARNING"] = Field(
        default="INFO", description="DEBUG = kopf --verbose, WARNING = kopf --quiet."
    )
    operator_resync_seconds: float = Field(
        default=300.0,
        ge=0.0,
        le=86_400.0,
        description=(
            "Period of the full resync that repairs drift and notices stuck rollouts; 0 = off."
        ),
    )

    operator_namespace: str = Field(
        default="",
        description=(
            "Namespace of the leader-election Lease; empty = the pod's own namespace (its "
            "service account's), or `default` outside a cluster."
        ),
    )
    operator_leader_election: bool = Field(
        default=True,
        description=(
            "Hold a Lease while handling simulations, so a second operator stands by; false = "
            "handle at once (only where no other operator can run)."
        ),
    )
    operator_lease_name: str = Field(
        default="sensorsim-operator",
        pattern=r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$",
        description="Name of the Lease every operator of one namespace competes for.",
    )
    operator_lease_duration_seconds: int = Field(
        default=15,
        ge=2,
        le=300,
        description=(
            "How long a standby waits, from the last change it saw, before taking over a "
            "Lease its holder stopped renewing."
        ),
    )
    operator_lease_renew_deadline_seconds: float = Field(
        default=10.0,
        gt=0.0,
        le=300.0,
        description=(
            "The leader exits (and stops handling) when it could not renew for this long; "
            "less than the lease duration, so it has stopped before a standby takes over."
        ),
    )
    operator_lease_retry_period_seconds: float = Field(
        default=2.0,
        gt=0.0,
        le=60.0,
        description="Period of the leader's renewals and of a standby's attempts.",
    )

    @model_validator(mode="after")
    def _lease_timing(self) -> Self:
        if self.operator_lease_renew_deadline_seconds >= self.operator_lease_duration_seconds:
            raise ValueError(
                "OPERATOR_LEASE_RENEW_DEADLINE_SECONDS must be less than "
                "OPERATOR_LEASE_DURATION_SECONDS: a leader that cannot renew must stop before "
                "a standby may take over"
            )
        if (
            self.operator_lease_renew_deadline_seconds
            <= RETRY_JITTER * self.operator_lease_retry_period_seconds
        ):
            raise ValueError(
                "OPERATOR_LEASE_RENEW_DEADLINE_SECONDS must be more than 1.2 times "
                "OPERATOR_LEASE_RETRY_PERIOD_SECONDS: the leader needs more than one renewal "
                "attempt within its deadline"
            )
        return self

    @property
    def lease_namespace(self) -> str:
        """Where the Lease lives: the configured namespace, else the pod's, else `default`."""
        if self.operator_namespace:
            return self.operator_namespace
        try:
            return SERVICE_ACCOUNT_NAMESPACE.read_text().strip() or "default"
        except OSError:
            return "default"

    @property
    def namespaces(self) -> list[str]:
        return [ns.strip() for ns in self.watch_namespaces.split(",") if ns.strip()]
