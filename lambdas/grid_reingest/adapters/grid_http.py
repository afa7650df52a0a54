"""One bounded GET to the Grid: a pooled, retrying Session, a deadline, a byte cap.

The budget of a call covers all of it — connecting, urllib3's retries and their
backoff, the status line and headers, the body — and the body is read a chunk
at a time up to a cap, so a service that trickles its answer or sends too much
fails that call (`Unread`) without holding the worker or its memory. A socket's
timeout bounds one read, not a trickle of them: the status line and headers are
bounded by a watchdog that shuts the connection down at the deadline. Example::

    deadline = time.monotonic() + 10
    with call_deadline(deadline):
        raw = session.get(url, timeout=(CONNECT_TIMEOUT_SECONDS, 10), stream=True)
    body = read_body(raw, bounds, deadline, keep=True)
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import HTTPError, ReadTimeoutError
from urllib3.util.retry import Retry

from grid_reingest.settings import SERVICES

# Slightly above a multiple of 3 s, TCP's initial retransmission window (as the
# requests documentation advises): a host that is up answers a SYN well within it.
CONNECT_TIMEOUT_SECONDS = 3.05
# Three retries, waiting 0, 0.5 and 1 s (urllib3 does not wait before the first):
# enough to ride out a load balancer swapping an instance, short enough that a
# service that is really down fails the image quickly (batch-index retries it later).
RETRIES = 3
BACKOFF_FACTOR = 0.25
RETRY_STATUSES = (502, 503, 504)
# Bodies are read this much at a time at most: memory grows by what was read, never
# by what a service claims or sends beyond the cap.
CHUNK_BYTES = 64 * 1024
# The wall-clock deadline of the call in progress on this thread (read by GridRetry).
_DEADLINE: ContextVar[float | None] = ContextVar("grid_call_deadline", default=None)


@contextmanager
def call_deadline(deadline: float) -> Iterator[None]:
    """Within this block, GridRetry starts no try the time.monotonic() `deadline` cannot hold."""
    token = _DEADLINE.set(deadline)
    try:
        yield
    finally:
        _DEADLINE.reset(token)


class Watchdog:
    """One thread that runs each armed action at its time.monotonic() deadline, unless
    disarmed first: a timer per call without a thread per call."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._armed: set[int] = set()
        self._count = itertools.count()
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None

    def arm(self, deadline: float, action: Callable[[], None]) -> int:
        """Run `action` at `deadline`; the token disarms it."""
        token = next(self._count)
        with self._wake:
            heapq.heappush(self._heap, (deadline, token, action))
            self._armed.add(token)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="grid-deadlines", daemon=True
                )
                self._thread.start()
            self._wake.notify()
        return token

    def disarm(self, token: int) -> None:
        """The action of `token` will not run (if it has not yet)."""
        with self._wake:
            self._armed.discard(token)

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._heap or self._heap[0][0] > time.monotonic():
                    wait = self._heap[0][0] - time.monotonic() if self._heap else None
                    self._wake.wait(wait)
                _, token, action = heapq.heappop(self._heap)
                due = token in self._armed
                self._armed.discard(token)
            if due:
                action()


_WATCHDOG = Watchdog()


class _DeadlinedConnection(HTTPConnection):
    """A connection whose status line and headers are read within the call's deadline."""

    def getresponse(self) -> Any:
        deadline = _DEADLINE.get()
        if deadline is None:
            return super().getresponse()
        token = _WATCHDOG.arm(deadline, self._cut)
        try:
            return super().getresponse()
        finally:
            _WATCHDOG.disarm(token)

    def _cut(self) -> None:
        # The reading thread's recv returns at once; the connection is not reused.
        sock = self.sock
        if sock is not None:
            with contextlib.suppress(OSError):  # already closed
                sock.shutdown(socket.SHUT_RDWR)


class _DeadlinedHTTPSConnection(_DeadlinedConnection, HTTPSConnection):
    pass


class _DeadlinedPool(HTTPConnectionPool):
    ConnectionCls = _DeadlinedConnection


class _DeadlinedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _DeadlinedHTTPSConnection


class _DeadlinedAdapter(HTTPAdapter):
    """requests' adapter over connections that keep the call's deadline."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": _DeadlinedPool,
            "https": _DeadlinedHTTPSPool,
        }


@dataclass(frozen=True)
class Bounds:
    """What one call may take: seconds in all and body bytes, with the variables that set them."""

    seconds: float
    seconds_variable: str
    max_bytes: int
    bytes_variable: str


class Unread(Exception):
    """The body was not read to its end. `no_answer`: the deadline came first or the
    connection broke (no complete answer); else the body passed the cap."""

    def __init__(self, message: str, *, no_answer: bool) -> None:
        super().__init__(message)
        self.no_answer = no_answer


class GridRetry(Retry):
    """urllib3's Retry, except that a read timeout is final, and so is any failure
    after which the backoff would reach the call's deadline.

    A read timeout on image-loader means minutes already spent; repeating it
    would only hold the image (and the Lambda) longer. Other read errors — a
    keep-alive connection the server closed just as a request went out — are
    retried like connection errors.
    """

    def increment(
        self,
        method: str | None = None,
        url: str | None = None,
        response: Any = None,
        error: Exception | None = None,
        _pool: Any = None,
        _stacktrace: TracebackType | None = None,
    ) -> Self:
        if isinstance(error, ReadTimeoutError):
            raise error.with_traceback(_stacktrace)
        retry = super().increment(method, url, response, error, _pool, _stacktrace)
        deadline = _DEADLINE.get()
        if deadline is not None and time.monotonic() + retry.get_backoff_time() >= deadline:
            # No time left for another try: end the call as when retries run out
            # (urllib3 then returns the last status, or raises the last error).
            spent = self.new(total=0)
            return Retry.increment(spent, method, url, response, error, _pool, _stacktrace)
        return retry


def default_retry() -> Retry:
    """Retries of idempotent GETs on connection errors and 502/503/504, never on read timeouts."""
    return GridRetry(
        total=RETRIES,
        connect=RETRIES,
        read=RETRIES,
        redirect=0,
        status=RETRIES,
        other=0,
        allowed_methods=frozenset({"GET", "HEAD"}),
        status_forcelist=RETRY_STATUSES,
        backoff_factor=BACKOFF_FACTOR,
        backoff_max=2.0,
        backoff_jitter=0.1,
        raise_on_status=False,
        raise_on_redirect=False,
    )


def make_session(pool_size: int, retry: Retry | None = None) -> requests.Session:
    """A Session whose per-host connection pool holds `pool_size` connections."""
    session = requests.Session()
    adapter = _DeadlinedAdapter(
        # One pool per Grid host; each holds as many connections as may be in
        # flight to that host, so none is opened and thrown away under load.
        pool_connections=len(SERVICES),
        pool_maxsize=pool_size,
        max_retries=retry or default_retry(),
    )
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


def read_body(raw: requests.Response, bounds: Bounds, deadline: float, *, keep: bool) -> bytearray:
    """The body (empty unless `keep`), read a chunk at a time; Unread past the cap or deadline.

    Each read waits at most for what is left of the budget (the socket's timeout
    is set before each one) and returns what has arrived, so a trickle is cut
    off at the deadline, not after a timeout per byte.
    """
    declared = raw.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > bounds.max_bytes:
        raise Unread(_too_large(bounds, f"{declared} bytes announced"), no_answer=False)
    stream = raw.raw
    body = bytearray()
    read = 0
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise Unread(_too_slow(bounds, read), no_answer=True)
        sock = getattr(stream.connection, "sock", None)
        if sock is not None:
            sock.settimeout(left)
        try:
            chunk = stream.read1(CHUNK_BYTES, decode_content=True)
        except ReadTimeoutError:
            raise Unread(_too_slow(bounds, read), no_answer=True) from None
        except (HTTPError, OSError) as error:
            raise Unread(f"connection broken after {read} bytes: {error}", no_answer=True) from None
        if not chunk:
            return body
        read += len(chunk)
        if read > bounds.max_bytes:
            raise Unread(_too_large(bounds, f"more than {bounds.max_bytes} bytes"), no_answer=False)
        if keep:
            body += chunk


def _too_large(bounds: Bounds, found: str) -> str:
    return (
        f"answer too large: {found}, the cap is {bounds.max_bytes} bytes "
        f"({bounds.bytes_variable}); not read"
    )


def _too_slow(bounds: Bounds, read: int) -> str:
    return (
        f"no complete answer within the call's deadline of {bounds.seconds:g} s "
        f"({bounds.seconds_variable}); {read} bytes of the body had arrived"
    )
