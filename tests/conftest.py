"""Fixtures shared by every test tier: emulated AWS over HTTP and its environment."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import boto3
import pytest

from devtools.servers import aws_environment, moto_server, reset_moto

# Tests never reach AWS: dummy credentials unless a fixture points at the emulator.
os.environ.update(aws_environment())
os.environ.pop("AWS_PROFILE", None)
os.environ.setdefault("JSII_SILENCE_WARNING_UNTESTED_NODE_VERSION", "1")
os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")

# Whole passes (the pass simulator, the fault world): their own tier, `-m simulation`.
SIMULATIONS = frozenset({"test_pass_sim.py", "test_fault_table.py"})
# A test marked slow or simulation may take this long (pytest-timeout's default is in
# pyproject.toml); one that needs more says so with its own timeout mark.
LONG_TIMEOUT_SECONDS = 600


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the simulations, and give long tests a longer timeout."""
    for item in items:
        if item.path.name in SIMULATIONS:
            item.add_marker(pytest.mark.simulation)
        long = item.get_closest_marker("slow") or item.get_closest_marker("simulation")
        if long and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(LONG_TIMEOUT_SECONDS))


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """moto's server, started once per test session on 127.0.0.1."""
    with moto_server() as url:
        yield url


@pytest.fixture
def aws(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A clean emulator, with boto3 pointed at it for this test; yields the endpoint."""
    reset_moto(moto_endpoint)
    for key, value in aws_environment(moto_endpoint).items():
        monkeypatch.setenv(key, value)
    yield moto_endpoint


@pytest.fixture
def dynamodb(aws: str):
    """A DynamoDB client on the emulator."""
    from grid_reingest.adapters.aws import client_config

    return boto3.client("dynamodb", endpoint_url=aws, config=client_config(32))


@pytest.fixture
def table_name(dynamodb) -> str:
    """A new, empty state table on the emulator."""
    from grid_reingest.adapters.dynamodb.schema import create_table

    name = f"reingest-{uuid.uuid4().hex[:8]}"
    create_table(dynamodb, name)
    return name
