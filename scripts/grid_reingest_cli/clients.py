"""boto3 clients for the commands, from their account options, the way aws-cli finds them.

--region, else AWS_REGION, else AWS_DEFAULT_REGION (boto3 alone reads only the last),
else the profile's; --endpoint-url, else AWS_ENDPOINT_URL (boto3 reads that itself).
"""

from __future__ import annotations

import argparse
import os
from typing import Any

import boto3
from botocore.exceptions import NoCredentialsError, NoRegionError, ProfileNotFound

from grid_reingest.adapters.aws import client_config
from grid_reingest_cli.errors import USAGE, CliError


def region(args: argparse.Namespace) -> str | None:
    """The region the options and the environment name (None: the profile's, if any)."""
    return (
        getattr(args, "region", None)
        or os.environ.get("AWS_REGION")
        or os.environ.get("AWS_DEFAULT_REGION")
        or None
    )


def client(args: argparse.Namespace, service: str, max_pool_connections: int = 10) -> Any:
    """A client for `service`; a CliError that says what to set when the account is unusable."""
    try:
        session = boto3.session.Session(
            profile_name=getattr(args, "profile", None), region_name=region(args)
        )
        return session.client(
            service,
            endpoint_url=getattr(args, "endpoint_url", None) or None,
            config=client_config(max_pool_connections),
        )
    except ProfileNotFound as error:
        raise CliError(f"{error}: check --profile or AWS_PROFILE", USAGE) from None
    except NoRegionError:
        raise CliError(
            "no AWS region: pass --region, or set AWS_REGION or AWS_DEFAULT_REGION", USAGE
        ) from None
    except NoCredentialsError:
        raise CliError("no AWS credentials found: log in, or pass --profile") from None
