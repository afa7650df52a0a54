"""Projecting by invoking the image-projection Lambda (how deployed batch-index projects).

The same function answers `{"health": service}` with that service's health
route (handlers/image_projection.py): batch-index's probe when it has no image
to project (flows/probes.py).
"""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from grid_reingest import names
from grid_reingest.domain.outcome import Failed, Outcome, from_json

SERVICE = names.IMAGE_PROJECTION


class LambdaProjector:
    """Projects one image per synchronous invoke of the image-projection function."""

    def __init__(self, client: Any, function_name: str) -> None:
        self._client = client
        self._function = function_name

    def project(self, image_id: str) -> Outcome:
        """The function's outcome for `image_id`; a failed invoke becomes Failed, never raises."""
        answer = self._invoke({"id": image_id}, image_id)
        if isinstance(answer, Failed):
            return answer
        try:
            return from_json(answer)
        except ValueError as error:
            return Failed(image_id, SERVICE, 200, str(error))

    def health(self, service: str) -> bool | None:
        """`service`'s health route, as image-projection reaches it (for image-projection
        itself: whether an invoke gets through)."""
        answer = self._invoke({"health": service}, "")
        if isinstance(answer, Failed):
            return False
        healthy = answer.get("healthy")
        return healthy if isinstance(healthy, bool) else None

    def _invoke(self, event: dict[str, str], image_id: str) -> dict[str, Any] | Failed:
        """The function's JSON answer to `event`, or Failed (naming `image_id`) for a failed
        invoke or a function error."""
        try:
            response = self._client.invoke(
                FunctionName=self._function,
                InvocationType="RequestResponse",
                Payload=json.dumps(event).encode(),
            )
            payload = response["Payload"].read()
        except ClientError as error:
            info = error.response.get("Error", {})
            status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            return Failed(
                image_id,
                SERVICE,
                status,
                f"invoke failed: {info.get('Code')}",
                str(info.get("Message", "")),
            )
        except BotoCoreError as error:
            return Failed(image_id, SERVICE, None, f"invoke failed: {error}")
        if response.get("FunctionError"):
            # The function raised (a timeout, out of memory, a bug): Lambda's error body.
            return Failed(
                image_id,
                SERVICE,
                response.get("StatusCode"),
                f"function error: {response['FunctionError']}",
                payload.decode("utf-8", "replace")[:500],
            )
        try:
            answer = json.loads(payload)
        except (ValueError, RecursionError) as error:
            return Failed(image_id, SERVICE, response.get("StatusCode"), f"not JSON: {error}")
        if not isinstance(answer, dict):
            return Failed(image_id, SERVICE, response.get("StatusCode"), "not a JSON object")
        return answer
