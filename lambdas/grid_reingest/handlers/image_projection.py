"""image-projection: one image's projection, over HTTP or by direct invocation.

HTTP — a Lambda Function URL (payload v2) or API Gateway REST proxy (v1) event:
`GET /images/projection/{id}` with the caller's `X-Gu-Media-Key`, as the
Grid's own projection lambda. The Grid is called with the caller's key, after
one cheap check that the Grid accepts it (remembered a few minutes, by digest).

- 200: the projected image's JSON;
- 404: `{"message": "image with id=<id> not-found"}` (image-loader's 404), or an unknown path;
- 401: `{"message": ...}` when the key is missing or the Grid refuses it;
- 400 / 405: an empty or malformed id, a method other than GET;
- 500: `{"errorMessage", "downstreamErrorMessage", "service", "status"}` when a Grid
  service failed.

Direct invocation — `{"id": "<image id>"}` (batch-index): the outcome's JSON
(outcomes.to_json: ready with the encoded record, not-found, too-big, failed),
calling the Grid with the configured key. An event with no usable id raises
ValueError: that is the invoker's bug, not an image's outcome, and the invoker
sees it as a function error naming the problem.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import unquote

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from grid_reingest import names
from grid_reingest.adapters.api_key import KeyValidator, load_api_key
from grid_reingest.adapters.grid import DATA_FAN_OUT, GridClient
from grid_reingest.adapters.grid_projector import GridProjector, to_outcome
from grid_reingest.domain.outcome import Failed, Found, NotFound, Projection, Ready, TooBig, to_json
from grid_reingest.settings import ProjectionSettings, load

SERVICE = names.IMAGE_PROJECTION
ROUTE = "/images/projection/"
# A synchronous Lambda response (the JSON of the whole response object) is capped at 6 MB.
LAMBDA_RESPONSE_LIMIT = 6 * 1024 * 1024
MISSING_KEY = "missing or invalid api key header"

logger = Logger(service=SERVICE)
metrics = Metrics(namespace=names.NAMESPACE, service=SERVICE)


@dataclass(frozen=True)
class Runtime:
    """What outlives one invocation: settings, and the projector over one pooled client."""

    settings: ProjectionSettings
    projector: GridProjector
    keys: KeyValidator


_runtime: Runtime | None = None


def runtime() -> Runtime:
    """Built on the first invocation of a container; SettingsError (listing every problem) else."""
    global _runtime  # noqa: PLW0603 - one per container, reused by every invocation
    if _runtime is None:
        settings = load(ProjectionSettings)
        client = GridClient(
            settings.grid,
            load_api_key(settings.grid),
            # A container handles one event at a time: one image's data calls.
            pool_size=DATA_FAN_OUT,
        )
        projector = GridProjector(client, images_at_once=1)
        keys = KeyValidator(lambda key: client.with_key(key).validate_key())
        metrics.set_default_dimensions(**{names.STAGE_DIMENSION: settings.stage})
        _runtime = Runtime(settings, projector, keys)
    return _runtime


@logger.inject_lambda_context(log_event=False, clear_state=True)  # the event holds a key
@metrics.log_metrics(raise_on_empty_metrics=False)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """The Lambda entry point: an HTTP event or `{"id": ...}`."""
    current = runtime()
    request = _http_request(event)
    if request is None:
        return _direct(current, event)
    return _http(current, request)


# -- direct invocation ------------------------------------------------------------


def _direct(current: Runtime, event: dict[str, Any]) -> dict[str, Any]:
    image_id = event.get("id") if isinstance(event, dict) else None
    if not isinstance(image_id, str) or not image_id or any(c.isspace() for c in image_id):
        metrics.add_metric("InvalidEvent", MetricUnit.Count, 1)
        raise ValueError(
            'expected an HTTP event or {"id": "<image id>"} with a non-empty id without '
            f"whitespace; got keys {sorted(event) if isinstance(event, dict) else type(event)}"
        )
    logger.append_keys(image_id=image_id)
    key = load_api_key(current.settings.grid)
    projection = _project(current, image_id, key)
    outcome = to_outcome(projection, current.settings.max_message_bytes)
    match outcome:
        case Ready():
            metrics.add_metric("ProjectionReady", MetricUnit.Count, 1)
        case TooBig():
            metrics.add_metric("ProjectionTooBig", MetricUnit.Count, 1)
            logger.warning("too big for the stream", extra={"record_bytes": outcome.record_bytes})
    return to_json(outcome)


# -- HTTP ---------------------------------------------------------------------------


@dataclass(frozen=True)
class HttpRequest:
    """The parts of a v1 or v2 HTTP event this handler uses; header names lower-cased."""

    method: str
    path: str
    headers: dict[str, str]


def _http_request(event: Any) -> HttpRequest | None:
    context = event.get("requestContext") if isinstance(event, dict) else None
    if not isinstance(context, dict):
        return None
    if isinstance(context.get("http"), dict):  # Function URL / HTTP API, payload v2
        # rawPath is as the caller sent it, percent-encoding included.
        method, path = context["http"].get("method", ""), unquote(event.get("rawPath") or "")
    elif "httpMethod" in event:  # API Gateway REST proxy, v1: `path` is already decoded
        method, path = event["httpMethod"], event.get("path") or ""
    else:
        return None
    headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
    return HttpRequest(method.upper(), path, headers)


def _http(current: Runtime, request: HttpRequest) -> dict[str, Any]:
    image_id = _routed_id(request)
    if not isinstance(image_id, str):
        metrics.add_metric("RequestRejected", MetricUnit.Count, 1)
        return image_id
    logger.append_keys(image_id=image_id)
    key = request.headers.get("x-gu-media-key", "").strip()
    refusal = _refusal(current, image_id, key)
    if refusal is not None:
        metrics.add_metric("RequestRejected", MetricUnit.Count, 1)
        return refusal
    projection = _project(current, image_id, key)
    match projection:
        case Found():
            body = projection.serialized.decode("utf-8")
            if len(json.dumps(body)) > LAMBDA_RESPONSE_LIMIT:
                too_big = f"the projection is {projection.image_bytes} bytes, more than a Lambda"
                return _reply(500, {"errorMessage": f"{too_big} response can carry"})
            return _reply(200, body)
        case NotFound():
            return _reply(404, {"message": f"image with id={image_id} not-found"})
        case _:
            return _failed(projection)


def _routed_id(request: HttpRequest) -> str | dict[str, Any]:
    """The image id of a well-formed request, else the error response."""
    if not request.path.startswith(ROUTE) and request.path.rstrip("/") != ROUTE.rstrip("/"):
        return _reply(404, {"message": f"no such resource {request.path!r}; use GET {ROUTE}<id>"})
    image_id = request.path[len(ROUTE) :]
    if request.method != "GET":
        return _reply(405, {"message": f"{request.method} is not supported; use GET"}, Allow="GET")
    if not image_id or "/" in image_id or any(c.isspace() for c in image_id):
        return _reply(400, {"message": f"not an image id: {image_id!r}"})
    return image_id


def _refusal(current: Runtime, image_id: str, key: str) -> dict[str, Any] | None:
    """The response to a caller whose key is missing or refused (or cannot be checked)."""
    if not key:
        return _reply(401, {"message": MISSING_KEY})
    check = current.keys.validate(key)
    if check.valid is False:
        logger.info("the Grid refused the caller's key", extra={"status": check.response.status})
        return _reply(401, {"message": MISSING_KEY})
    if check.valid is None:
        failed = Failed(image_id, "leases", check.response.status, "could not check the API key")
        return _failed(replace(failed, downstream_message=check.response.message))
    return None


def _project(current: Runtime, image_id: str, key: str) -> Projection:
    started = time.perf_counter()
    projection = current.projector.project(image_id, api_key=key)
    milliseconds = (time.perf_counter() - started) * 1000
    metrics.add_metric("ProjectionTime", MetricUnit.Milliseconds, milliseconds)
    match projection:
        case Found():
            metrics.add_metric("ProjectionFound", MetricUnit.Count, 1)
            metrics.add_metric("ImageSize", MetricUnit.Bytes, projection.image_bytes)
            logger.info("projected", extra={"image_bytes": projection.image_bytes})
        case NotFound():
            metrics.add_metric("ProjectionNotFound", MetricUnit.Count, 1)
            logger.info("image-loader has no such image")
        case Failed():
            metrics.add_metric("ProjectionFailed", MetricUnit.Count, 1)
            logger.warning(
                "projection failed",
                extra={"failure": projection.describe(), "known": projection.known},
            )
    return projection


def _failed(failed: Failed) -> dict[str, Any]:
    return _reply(
        500,
        {
            "errorMessage": replace(failed, downstream_message="").describe(),
            "downstreamErrorMessage": failed.downstream_message,
            "service": failed.service,
            "status": failed.status,
        },
    )


def _reply(status: int, body: Any, **headers: str) -> dict[str, Any]:
    # The same response shape serves a Function URL and an API Gateway proxy.
    return {
        "statusCode": status,
        "headers": {"Content-Type": "application/json", **headers},
        "body": body if isinstance(body, str) else json.dumps(body),
        "isBase64Encoded": False,
    }
