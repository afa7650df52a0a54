"""Servers for benchmarks in processes of their own, so they do not share the client's GIL."""

from __future__ import annotations

import contextlib
import multiprocessing
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection
from typing import Any

from devtools.aws_proxy import AwsProxy
from devtools.grid_server import GridSim


@contextlib.contextmanager
def server_in_child(
    server: Callable[[], Any], answer: Callable[[Any, str], Any] = lambda s, c: None
) -> Iterator[tuple[str, Connection]]:
    """`server()` (a context manager with a `url`) run in a forked child.

    Yields its URL and a pipe: each command sent but "stop" is answered with
    `answer(server, command)`, run in the child.
    """
    context = multiprocessing.get_context("fork")
    parent, child = context.Pipe()
    process = context.Process(target=_serve, args=(child, server, answer), daemon=True)
    process.start()
    try:
        yield parent.recv(), parent
    finally:
        parent.send("stop")
        process.join(timeout=10)


def _serve(pipe: Connection, server: Callable[[], Any], answer: Callable[[Any, str], Any]) -> None:
    with server() as running:
        pipe.send(running.url)
        while (command := pipe.recv()) != "stop":
            pipe.send(answer(running, command))


@contextlib.contextmanager
def proxy_process(upstream: str, latency_s: float) -> Iterator[str]:
    """AwsProxy(upstream, latency_s) serving from a child; yields its URL."""
    with server_in_child(lambda: AwsProxy(upstream, latency_s=latency_s)) as (url, _):
        yield url


@contextlib.contextmanager
def sim_process(**options: object) -> Iterator[tuple[GridSim, Connection]]:
    """A GridSim serving from a child process (its own GIL and core, as a real Grid would).

    Yields a local GridSim that is never started (for its settings and key) with the
    child's URL, and the pipe that answers "peak" (requests in flight at most) and
    "reset" (clears it, then answers it).
    """
    with server_in_child(lambda: GridSim(**options), _peak) as (url, pipe):
        local = GridSim(**options)
        local.url = url
        yield local, pipe


def _peak(sim: GridSim, command: str) -> int:
    if command == "reset":
        sim.peak.clear()
    return sim.peak["total"]
