"""Sorting more ids than memory holds: sorted runs on disk, merged.

Ids are read into a chunk of at most `max_ids`, sorted, written to a run file
without repeats; the runs are then merged (`heapq.merge`), at most `fan_in` at
once, runs of runs when there are more. Memory holds one chunk and a read
buffer per run being merged; the disk holds about as much as the input.
"""

from __future__ import annotations

import heapq
import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass

# What one id costs in a list being sorted: the 40-character str (89 bytes), its
# slot in the list, and the slots timsort may borrow for a merge.
BYTES_PER_ID = 110
# Runs merged at once: each holds an open file and its read buffer.
FAN_IN = 64
READ_BUFFER = 64 * 1024


def ids_per_chunk(memory_bytes: int) -> int:
    """How many ids a chunk may hold within `memory_bytes`."""
    return max(1, memory_bytes // BYTES_PER_ID)


@dataclass
class SortedIds:
    """Unique ids in sorted order, merged from sorted run files; `unique` counts those read."""

    runs: list[str]
    unique: int = 0

    def __iter__(self) -> Iterator[str]:
        previous = None
        with ExitStack() as stack:
            files = [
                stack.enter_context(open(run, encoding="ascii", buffering=READ_BUFFER))
                for run in self.runs
            ]
            for line in heapq.merge(*files):
                if line != previous:
                    previous = line
                    self.unique += 1
                    yield line[:-1]


def sort_unique(ids: Iterable[str], workdir: str, max_ids: int, fan_in: int = FAN_IN) -> SortedIds:
    """`ids` sorted without repeats, through run files in `workdir`, holding at most
    `max_ids` ids in memory."""
    runs: list[str] = []
    chunk: list[str] = []
    for image_id in ids:
        chunk.append(image_id)
        if len(chunk) >= max_ids:
            runs.append(_write_run(workdir, chunk))
            chunk = []
    if chunk or not runs:
        runs.append(_write_run(workdir, chunk))
    del chunk
    while len(runs) > fan_in:
        runs = [_merge_runs(workdir, runs[i : i + fan_in]) for i in range(0, len(runs), fan_in)]
    return SortedIds(runs)


def difference(a: Iterable[str], b: Iterable[str]) -> Iterator[str]:
    """The items of sorted, unique `a` that are not in sorted, unique `b`."""
    others = iter(b)
    other = next(others, None)
    for item in a:
        while other is not None and other < item:
            other = next(others, None)
        if other != item:
            yield item


def _write_run(workdir: str, chunk: list[str]) -> str:
    chunk.sort()
    fd, path = tempfile.mkstemp(dir=workdir, prefix="run-", suffix=".txt")
    with os.fdopen(fd, "w", encoding="ascii") as out:
        previous = None
        for image_id in chunk:
            if image_id != previous:
                out.write(image_id + "\n")
                previous = image_id
    return path


def _merge_runs(workdir: str, runs: list[str]) -> str:
    fd, path = tempfile.mkstemp(dir=workdir, prefix="merged-", suffix=".txt")
    with os.fdopen(fd, "w", encoding="ascii") as out:
        for image_id in SortedIds(runs):
            out.write(image_id + "\n")
    for run in runs:
        os.unlink(run)
    return path
