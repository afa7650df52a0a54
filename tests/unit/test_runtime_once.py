"""A handler's runtime is built once a container (handlers/common.py): on Lambda once a process;
where a local schedule runs two invocations at once in one process, once each."""

from __future__ import annotations

import itertools
import threading

import pytest

from grid_reingest.handlers.common import CONTAINER, Once


def test_built_on_first_use_then_reused():
    count = itertools.count()
    runtime = Once(lambda: next(count))
    assert (runtime(), runtime()) == (0, 0)
    runtime.reset()
    assert runtime() == 1


def test_a_build_that_raises_is_tried_again():
    tries = []

    def build() -> str:
        tries.append(1)
        if len(tries) == 1:
            raise ValueError("bad settings")
        return "built"

    runtime = Once(build)
    with pytest.raises(ValueError, match="bad settings"):
        runtime()
    assert runtime() == "built"


def test_each_container_has_its_own_runtime():
    count = itertools.count()
    runtime = Once(lambda: next(count))
    seen: dict[int, list[int]] = {}

    def invoke(container: int) -> None:
        CONTAINER.set(container)  # a thread's context is its own
        seen[container] = [runtime(), runtime()]

    threads = [threading.Thread(target=invoke, args=(c,)) for c in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(seen) == [0, 1]
    assert seen[0][0] == seen[0][1] != seen[1][0] == seen[1][1]
    assert runtime() == seen[0][0]  # this thread: container 0
