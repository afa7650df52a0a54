"""Servers for benchmarks in processes of their own, so they do not share the client's GIL."""

from __future__ import annotations

import contextlib
import multiprocessing
from collections.abc import Iterator
from multiprocessing.connection import Connection

from tests.fakes.aws_proxy import AwsProxy


class RemoteProxy:
    """A latency proxy in a child process; `calls()` reads its per-target call counts."""

    def __init__(self, url: str, pipe: Connection) -> None:
        self.url = url
        self._pipe = pipe

    def calls(self) -> dict[str, int]:
        self._pipe.send("calls")
        return self._pipe.recv()

    def reset(self) -> None:
        self._pipe.send("reset")
        self._pipe.recv()


@contextlib.contextmanager
def proxy_process(upstream: str, latency_s: float) -> Iterator[RemoteProxy]:
    """AwsProxy(upstream, latency_s) serving from a forked child."""
    context = multiprocessing.get_context("fork")
    parent, child = context.Pipe()
    process = context.Process(target=_serve_proxy, args=(child, upstream, latency_s), daemon=True)
    process.start()
    try:
        yield RemoteProxy(parent.recv(), parent)
    finally:
        parent.send("stop")
        process.join(timeout=10)


def _serve_proxy(pipe: Connection, upstream: str, latency_s: float) -> None:
    with AwsProxy(upstream, latency_s=latency_s) as proxy:
        pipe.send(proxy.url)
        while (command := pipe.recv()) != "stop":
            if command == "reset":
                proxy.calls.clear()
                pipe.send(None)
            else:
                pipe.send(dict(proxy.calls))
