"""boto3 clients for the commands, from their account options, the way aws-cli finds them.

--region, else AWS_REGION, else AWS_DEFAULT_REGION (boto3 alone reads only the last),
else the profile's; --endpoint-url, else AWS_ENDPOINT_URL (boto3 reads that itself).

An operator waits at a terminal: an endpoint that cannot be reached is said at
once, naming it, rather than after botocore's ten attempts. Each endpoint is
tried once per command (a TCP connection, CONNECT_TIMEOUT_S at most) when its
first client is made; calls then have botocore's retries for what goes wrong
later.
"""

from __future__ import annotations

import argparse
import functools
import os
import socket
import urllib.request
from typing import Any
from urllib.parse import urlsplit

import boto3
from botocore.exceptions import NoCredentialsError, NoRegionError, ProfileNotFound

from grid_reingest.adapters.aws import client_config
from grid_reingest_cli.errors import FAILED, USAGE, CliError

# Connecting to AWS takes milliseconds; an endpoint that does not answer within this is
# down or mistyped.
CONNECT_TIMEOUT_S = 3
# No single call the commands make takes longer to start answering.
READ_TIMEOUT_S = 20


def region(args: argparse.Namespace) -> str | None:
    """The region the options and the environment name (None: the profile's, if any)."""
    return (
        getattr(args, "region", None)
        or os.environ.get("AWS_REGION")
        or os.environ.get("AWS_DEFAULT_REGION")
        or None
    )


def endpoint_problem(url: str) -> str | None:
    """Why `url` cannot be an endpoint (http(s)://host[:port][/path]), or None."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError as error:
        return f"{url!r} is not a URL ({error}): write e.g. http://127.0.0.1:5000"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"{url!r} is not an http(s) URL with a host: write e.g. http://127.0.0.1:5000"
    return None


def client(args: argparse.Namespace, service: str, max_pool_connections: int = 10) -> Any:
    """A client for `service`; a CliError that says what to set when the account is unusable
    or its endpoint cannot be reached."""
    endpoint = getattr(args, "endpoint_url", None) or None
    from_env = os.environ.get(f"AWS_ENDPOINT_URL_{service.upper()}") or os.environ.get(
        "AWS_ENDPOINT_URL"
    )
    if endpoint is None and from_env:
        problem = endpoint_problem(from_env)
        if problem:
            raise CliError(f"AWS_ENDPOINT_URL: {problem}", USAGE)
    try:
        session = boto3.session.Session(
            profile_name=getattr(args, "profile", None), region_name=region(args)
        )
        made = session.client(
            service,
            endpoint_url=endpoint,
            config=client_config(
                max_pool_connections,
                read_timeout=READ_TIMEOUT_S,
                connect_timeout=CONNECT_TIMEOUT_S,
            ),
        )
    except ProfileNotFound as error:
        raise CliError(f"{error}: check --profile or AWS_PROFILE", USAGE) from None
    except NoRegionError:
        raise CliError(
            "no AWS region: pass --region, or set AWS_REGION or AWS_DEFAULT_REGION", USAGE
        ) from None
    except NoCredentialsError:
        raise CliError("no AWS credentials found: log in, or pass --profile") from None
    except ValueError as error:  # botocore's "Invalid endpoint"
        raise CliError(f"--endpoint-url: {error}", USAGE) from None
    named_by = "--endpoint-url" if endpoint else "AWS_ENDPOINT_URL" if from_env else None
    problem = unreachable(made.meta.endpoint_url)
    if problem:
        check = (
            f"check {named_by} and the network" if named_by else "check --region and the network"
        )
        raise CliError(f"cannot reach {made.meta.endpoint_url} ({problem}): {check}", FAILED)
    return made


@functools.cache
def unreachable(url: str) -> str | None:
    """Why nothing answers at `url` (a TCP connection tried once), or None. Through a proxy,
    the proxy is botocore's to reach: not tried here."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if urllib.request.getproxies().get(parts.scheme) and not urllib.request.proxy_bypass(host):
        return None
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S):
            return None
    except TimeoutError:
        return f"no answer within {CONNECT_TIMEOUT_S} s"
    except OSError as error:
        return error.strerror or str(error)


def clear_cache() -> None:
    """Forget which endpoints answered (each command tries them afresh)."""
    unreachable.cache_clear()
