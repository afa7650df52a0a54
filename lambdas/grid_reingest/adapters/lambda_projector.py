"""Projecting by invoking the image-projection Lambda (how deployed batch-index projects)."""

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
        try:
            response = self._client.invoke(
                FunctionName=self._function,
                InvocationType="RequestResponse",
                Payload=json.dumps({"id": image_id}).encode(),
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
            return from_json(json.loads(payload))
        except ValueError as error:
            return Failed(image_id, SERVICE, response.get("StatusCode"), str(error))
