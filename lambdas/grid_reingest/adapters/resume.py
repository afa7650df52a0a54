"""Carrying on in another invocation of the same function (the scheduled repair's loading)."""

from __future__ import annotations

import json
from typing import Any


class InvokeAgain:
    """Invokes a function asynchronously with `{"continue": <pass id>}`: Lambda queues the
    event, and retries it twice should that invocation fail."""

    def __init__(self, client: Any, function_name: str) -> None:
        self._client = client
        self._function = function_name

    def __call__(self, pass_id: str) -> None:
        self._client.invoke(
            FunctionName=self._function,
            InvocationType="Event",
            Payload=json.dumps({"continue": pass_id}).encode(),
        )
