"""Reading iterators ahead of their consumer, each in a thread of its own.

Used where the next item costs a round trip (a scan page, a round of claims):
the waiting overlaps the consumer's work instead of adding to it.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Iterable, Iterator, Sequence
from typing import Any


def read_ahead[T](
    sources: Sequence[Iterable[T]],
    depth: int,
    name: str = "read-ahead",
    threads: int | None = None,
) -> Iterator[T]:
    """The items of every source, read by `threads` threads (default: one per source),
    at most `depth` waiting.

    Each thread reads one source to its end, then takes the next one not yet
    started. One source's items keep their order; sources interleave. A source's
    error is raised to the reader. If the reader stops early, the threads stop
    at their next item and are waited for; what they had read is dropped.
    """
    buffer: queue.Queue[Any] = queue.Queue(maxsize=max(1, depth))
    closed = threading.Event()
    end = object()
    pending = iter(sources)
    taking = threading.Lock()

    def next_source() -> Iterable[T] | None:
        with taking:
            return next(pending, None)

    def produce() -> None:
        try:
            while not closed.is_set() and (source := next_source()) is not None:
                for item in source:
                    while not closed.is_set():
                        with contextlib.suppress(queue.Full):
                            buffer.put(item, timeout=0.2)
                            break
                    if closed.is_set():
                        return
            buffer.put(end)
        except BaseException as error:  # handed to the reader, who raises it
            buffer.put(error)

    count = len(sources) if threads is None else max(1, min(threads, len(sources)))
    producers = [
        threading.Thread(target=produce, daemon=True, name=f"{name}-{i}") for i in range(count)
    ]
    for producer in producers:
        producer.start()
    finished = 0
    try:
        while finished < len(producers):
            item = buffer.get()
            if item is end:
                finished += 1
            elif isinstance(item, BaseException):
                raise item
            else:
                yield item
    finally:
        closed.set()
        while any(producer.is_alive() for producer in producers):
            with contextlib.suppress(queue.Empty):
                buffer.get(timeout=0.05)
