"""boto3 clients configured the one way this project wants them.

Every client honours AWS_ENDPOINT_URL (and AWS_ENDPOINT_URL_<SERVICE>), which
boto3 reads itself, so the same code runs against emulators.
"""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config

# botocore's "standard" mode retries throttling and transient errors with
# exponential backoff; 10 attempts rides out a burst of throttling on a table
# that is scaling up on demand.
DEFAULT_MAX_ATTEMPTS = 10


def client_config(
    max_pool_connections: int = 10,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    read_timeout: float = 60,
    connect_timeout: float = 5,
) -> Config:
    """A botocore Config: standard retries and a connection pool sized to the caller's threads."""
    return Config(
        retries={"mode": "standard", "max_attempts": max_attempts},
        max_pool_connections=max_pool_connections,
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
    )


def make_client(
    service: str,
    *,
    region: str | None = None,
    profile: str | None = None,
    max_pool_connections: int = 10,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    read_timeout: float = 60,
) -> Any:
    """A boto3 client for `service`, from a profile and region when given."""
    session = boto3.session.Session(profile_name=profile, region_name=region)
    return session.client(
        service,
        config=client_config(max_pool_connections, max_attempts, read_timeout),
    )
