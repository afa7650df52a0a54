"""One bounded GET to the Grid: a pooled, retrying Session, a deadline, a byte cap.

The budget of a call covers all of it — connecting, urllib3's retries and their
backoff, the body — and the body is read a chunk at a time up to a cap, so a
service that trickles its answer or sends too much fails that call (`Unread`)
without holding the worker or its memory. (The status line and headers, a few
hundred bytes, are bounded per read by the budget; the body as a whole.) Example::

    deadline = time.monotonic() + 10
    with call_deadline(deadline):
        raw = session.get(url, timeout=(CONNECT_TIMEOUT_SECONDS, 10), stream=True)
    body = read_body(raw, bounds, deadline, keep=True)
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import requests
from requests.adapters import HTTPAdapter
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
    ) -> Retry:
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
    adapter = HTTPAdapter(
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
