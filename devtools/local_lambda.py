"""Running a handler in this process as Lambda would: its environment, a context, one event."""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any


@dataclass
class FakeContext:
    """The parts of a LambdaContext the handlers and Powertools read."""

    function_name: str = "local"
    timeout_ms: int = 15 * 60 * 1000
    memory_limit_in_mb: int = 1024
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    _started: float = field(default_factory=time.monotonic)

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:eu-west-1:123456789012:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self.timeout_ms - int((time.monotonic() - self._started) * 1000))


@contextlib.contextmanager
def environment(env: Mapping[str, str]) -> Iterator[None]:
    """os.environ with `env` on top, restored afterwards."""
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def invoke(
    module: ModuleType,
    env: Mapping[str, str],
    event: Any = None,
    context: FakeContext | None = None,
    fresh: bool = True,
) -> Any:
    """Call `module.handler` under `env`; `fresh`: as a new container (settings read anew)."""
    with environment(env):
        if fresh:
            reset = getattr(module.runtime, "reset", None)
            if reset is not None:
                reset()
            else:  # a handler that keeps its runtime in a module global
                vars(module)["_runtime"] = None
        return module.handler(event if event is not None else {}, context or FakeContext())
