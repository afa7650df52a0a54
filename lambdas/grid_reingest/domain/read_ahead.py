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
    sources: Sequence[Iterable[T]], depth: int, name: str = "read-ahead"
) -> Iterator[T]:
    """The items of every source, each source read by its own thread, at most `depth` waiting.

    One source's items keep their order; sources interleave. A source's error is
    raised to the reader. If the reader stops early, the threads stop at their
    next item and are waited for; what they had read is dropped.
    """
    buffer: queue.Queue[Any] = queue.Queue(maxsize=max(1, depth))
    closed = threading.Event()
    end = object()

    def produce(source: Iterable[T]) -> None:
        try:
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

    threads = [
        threading.Thread(target=produce, args=(source,), daemon=True, name=f"{name}-{i}")
        for i, source in enumerate(sources)
    ]
    for thread in threads:
        thread.start()
    finished = 0
    try:
        while finished < len(threads):
            item = buffer.get()
            if item is end:
                finished += 1
            elif isinstance(item, BaseException):
                raise item
            else:
                yield item
    finally:
        closed.set()
        while any(thread.is_alive() for thread in threads):
            with contextlib.suppress(queue.Empty):
                buffer.get(timeout=0.05)
