"""The operator's own configuration, from its environment (docs/contracts.md, "Operator")."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


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

    @property
    def namespaces(self) -> list[str]:
        return [ns.strip() for ns in self.watch_namespaces.split(",") if ns.strip()]
