"""Start and stop local servers on 127.0.0.1 for tests, the demo and benchmarks."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import requests

# The project's root: `python -m devtools...` in a child process imports from here.
ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_up(url: str, timeout: float = 30, process: subprocess.Popen | None = None) -> None:
    """Poll `url` until it answers at all, or raise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server for {url} exited with {process.returncode}")
        try:
            requests.get(url, timeout=1)
            return
        except requests.ConnectionError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing answered at {url} within {timeout}s")


@contextlib.contextmanager
def server_process(argv: list[str], port: int, health_path: str, **popen: Any) -> Iterator[str]:
    """`argv` run as a server listening on `port`, until it answers at `health_path`;
    yields its base URL and stops it after."""
    process = subprocess.Popen(argv, **popen)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(f"{url}{health_path}", process=process)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


@contextlib.contextmanager
def moto_server(port: int | None = None) -> Iterator[str]:
    """moto's server in its own process (so it has its own core); yields its endpoint URL.

    On `port` if given, else a free one. PartiQL `INSERT`s are answered as DynamoDB
    answers them (devtools/moto_partiql.py).
    """
    port = port or free_port()
    with server_process(
        [sys.executable, "-m", "devtools.moto_partiql", "-H", "127.0.0.1", "-p", str(port)],
        port,
        "/moto-api/",
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "MOTO_PORT": str(port)},
        cwd=ROOT,
    ) as url:
        yield url


def reset_moto(url: str) -> None:
    """Forget every resource the emulator holds."""
    requests.post(f"{url}/moto-api/reset", timeout=10).raise_for_status()


def aws_environment(endpoint: str | None = None, region: str = "eu-west-1") -> dict[str, str]:
    """Variables that point boto3 at an emulator with dummy credentials (without an
    endpoint: the dummy credentials alone, so nothing can reach AWS)."""
    return {
        **({"AWS_ENDPOINT_URL": endpoint} if endpoint else {}),
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": region,
        "AWS_REGION": region,
    }
