"""Each function's Powertools logger and metrics, named alike: the service, in our namespace."""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics

from grid_reingest import names


def telemetry(service: str) -> tuple[Logger, Metrics]:
    """`service`'s logger and its metrics (namespace names.NAMESPACE)."""
    return Logger(service=service), Metrics(namespace=names.NAMESPACE, service=service)
