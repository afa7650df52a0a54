"""image-projection: one image's projection, over HTTP or by direct invocation.

HTTP — a Lambda Function URL (payload v2) or API Gateway REST proxy (v1) event,
routed by Powertools' resolvers: `GET /images/projection/{id}` with the caller's
`X-Gu-Media-Key`, as the Grid's own projection lambda. The Grid is called with
the caller's key, after one cheap check that the Grid accepts it (remembered a
few minutes, by digest).

- 200: the projected image's JSON;
- 404: `{"message": "image with id=<id> not-found"}` (image-loader's 404), or an unknown path;
- 401: `{"message": ...}` when the key is missing or the Grid refuses it;
- 400 / 405: a missing or unusable id, a method other than GET;
- 500: `{"message": ..., "requestId": <Lambda request id>}` and nothing more: what
  failed (service, status, the downstream message) is logged under that request id.

Direct invocation — `{"id": "<image id>"}` (batch-index): the outcome's JSON
(outcome.to_json: ready with the encoded record, not-found, too-big, failed),
calling the Grid with the configured key. A 401 or 403 has the key read again,
uncached, and the image projected again with it when it changed (a key rotated
within the cache's time). An id no route can carry (`.`, `..`, whitespace, over
256 characters) is a known failure. `{"health": "<service>"}` (batch-index's
probe, flows/probes.py): `{"health": ..., "healthy": true|false|null}` from that
service's health route. Any other event raises ValueError: that is the
invoker's bug, not an image's outcome.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote

from aws_lambda_powertools.event_handler import (
    APIGatewayRestResolver,
    LambdaFunctionUrlResolver,
    Response,
    content_types,
)
from aws_lambda_powertools.event_handler.api_gateway import ApiGatewayResolver
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from grid_reingest import names
from grid_reingest.adapters.api_key import KeyValidator, load_api_key, with_fresh_key
from grid_reingest.adapters.grid import API_KEY_HEADER, DATA_FAN_OUT, GridClient, id_problem
from grid_reingest.adapters.grid_projector import GridProjector, to_outcome
from grid_reingest.domain.outcome import Failed, Found, NotFound, Projection, Ready, TooBig, to_json
from grid_reingest.domain.systemic import REFUSED_STATUSES
from grid_reingest.handlers.telemetry import telemetry
from grid_reingest.settings import ProjectionSettings, load

SERVICE = names.IMAGE_PROJECTION
ROUTE = "/images/projection"
# A synchronous Lambda response (the JSON of the whole response object) is capped at 6 MB.
LAMBDA_RESPONSE_LIMIT = 6 * 1024 * 1024
MISSING_KEY = "missing or invalid api key header"
INTERNAL_ERROR = "the projection failed; quote the request id when reporting it"

logger, metrics = telemetry(SERVICE)


@dataclass(frozen=True)
class Runtime:
    """What outlives one invocation: settings, the projector over one pooled client, keys."""

    settings: ProjectionSettings
    projector: GridProjector
    keys: KeyValidator


_runtime: Runtime | None = None


def runtime() -> Runtime:
    """Built on the first invocation of a container; SettingsError (listing every problem) else."""
    global _runtime  # noqa: PLW0603 - one per container, reused by every invocation
    if _runtime is None:
        settings = load(ProjectionSettings)
        # A container handles one event at a time: one image's data calls.
        client = GridClient(settings.grid, load_api_key(settings.grid), pool_size=DATA_FAN_OUT)
        keys = KeyValidator(lambda key: client.with_key(key).validate_key())
        metrics.set_default_dimensions(**{names.STAGE_DIMENSION: settings.stage})
        _runtime = Runtime(settings, GridProjector(client, images_at_once=1), keys)
    return _runtime


@logger.inject_lambda_context(log_event=False, clear_state=True)  # the event holds a key
@metrics.log_metrics(raise_on_empty_metrics=False)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """The Lambda entry point: an HTTP event or `{"id": ...}`."""
    current = runtime()
    app = _resolver_for(event)
    if app is None:
        return _direct(current, event)
    return app.resolve(event, context)


# -- direct invocation ------------------------------------------------------------


def _direct(current: Runtime, event: Any) -> dict[str, Any]:
    image_id = event.get("id") if isinstance(event, dict) else None
    service = event.get("health") if isinstance(event, dict) else None
    if isinstance(service, str):
        return {"health": service, "healthy": current.projector.health(service)}
    if not isinstance(image_id, str):
        metrics.add_metric(names.INVALID_EVENT, MetricUnit.Count, 1)
        raise ValueError(
            'expected an HTTP event, {"id": "<image id>"} or {"health": "<service>"}; got '
            f"{'keys ' + str(sorted(event)) if isinstance(event, dict) else type(event)}"
        )
    logger.append_keys(image_id=image_id)
    projection = with_fresh_key(
        lambda key: _project(current, image_id, key),
        lambda answer: isinstance(answer, Failed) and answer.status in REFUSED_STATUSES,
        lambda max_age: load_api_key(current.settings.grid, max_age=max_age),
    )
    outcome = to_outcome(projection, current.settings.max_message_bytes)
    match outcome:
        case Ready():
            metrics.add_metric(names.PROJECTION_READY, MetricUnit.Count, 1)
        case TooBig():
            metrics.add_metric(names.PROJECTION_TOO_BIG, MetricUnit.Count, 1)
            logger.warning("too big for the stream", extra={"record_bytes": outcome.record_bytes})
    return to_json(outcome)


# -- HTTP ---------------------------------------------------------------------------


def _resolver_for(event: Any) -> ApiGatewayResolver | None:
    """The resolver for an HTTP event's shape, None for anything else (a direct invoke)."""
    context = event.get("requestContext") if isinstance(event, dict) else None
    if not isinstance(context, dict):
        return None
    if isinstance(context.get("http"), dict):
        return _FUNCTION_URL
    if "httpMethod" in event:
        return _REST_API
    return None


def _http_app(app: ApiGatewayResolver) -> ApiGatewayResolver:
    """`app` with this function's one route and its answers to everything else."""

    @app.get(ROUTE + "/<image_id>")
    def projection(image_id: str) -> Response:
        # A Function URL's path is as the caller sent it; API Gateway's is decoded.
        if isinstance(app, LambdaFunctionUrlResolver):
            image_id = unquote(image_id)
        return _answer(app, image_id)

    @app.not_found
    def unrouted(_: NotFoundError) -> Response:
        metrics.add_metric(names.REQUEST_REJECTED, MetricUnit.Count, 1)
        event = app.current_event
        path, method = event.path, event.http_method.upper()
        if path.rstrip("/") != ROUTE and not path.startswith(ROUTE + "/"):
            return _reply(HTTPStatus.NOT_FOUND, f"no such resource {path!r}; use GET {ROUTE}/<id>")
        if method != "GET":
            message = f"{method} is not supported; use GET"
            return _reply(HTTPStatus.METHOD_NOT_ALLOWED, message, Allow="GET")
        return _reply(HTTPStatus.BAD_REQUEST, f"not an image id: {path[len(ROUTE) + 1 :]!r}")

    @app.exception_handler(Exception)
    def crashed(error: Exception) -> Response:
        metrics.add_metric(names.PROJECTION_FAILED, MetricUnit.Count, 1)
        logger.exception("the projection raised")
        return _internal_error(app, Failed("", SERVICE, None, f"{type(error).__name__}: {error}"))

    return app


def _answer(app: ApiGatewayResolver, image_id: str) -> Response:
    """The answer to a routed request for `image_id`."""
    current = runtime()
    logger.append_keys(image_id=image_id)
    key = (app.current_event.headers.get(API_KEY_HEADER) or "").strip()
    # The route takes one path segment: an encoded "/" in it is not an id either.
    problem = f"not an image id: {image_id!r}" if "/" in image_id else id_problem(image_id)
    refusal = _reply(HTTPStatus.BAD_REQUEST, problem) if problem else _refusal(app, current, key)
    if refusal is not None:
        metrics.add_metric(names.REQUEST_REJECTED, MetricUnit.Count, 1)
        return refusal
    projection = _project(current, image_id, key)
    match projection:
        case Found():
            body = projection.serialized.decode("utf-8")
            if len(json.dumps(body)) > LAMBDA_RESPONSE_LIMIT:
                too_big = f"{projection.image_bytes} bytes: more than a Lambda response carries"
                return _internal_error(app, Failed(image_id, SERVICE, 200, too_big))
            return Response(HTTPStatus.OK, content_types.APPLICATION_JSON, body)
        case NotFound():
            return _reply(HTTPStatus.NOT_FOUND, f"image with id={image_id} not-found")
        case _:
            return _internal_error(app, projection)


def _refusal(app: ApiGatewayResolver, current: Runtime, key: str) -> Response | None:
    """The answer to a caller whose key is missing or refused (or cannot be checked)."""
    if not key:
        return _reply(HTTPStatus.UNAUTHORIZED, MISSING_KEY)
    check = current.keys.validate(key)
    if check.valid is False:
        logger.info("the Grid refused the caller's key", extra={"status": check.response.status})
        return _reply(HTTPStatus.UNAUTHORIZED, MISSING_KEY)
    if check.valid is None:
        response = check.response
        message = "could not check the API key"
        return _internal_error(
            app, Failed("", response.service, response.status, message, response.message)
        )
    return None


def _project(current: Runtime, image_id: str, key: str) -> Projection:
    started = time.perf_counter()
    projection = current.projector.project(image_id, api_key=key)
    milliseconds = (time.perf_counter() - started) * 1000
    metrics.add_metric(names.PROJECTION_TIME, MetricUnit.Milliseconds, milliseconds)
    match projection:
        case Found():
            metrics.add_metric(names.PROJECTION_FOUND, MetricUnit.Count, 1)
            metrics.add_metric(names.IMAGE_SIZE, MetricUnit.Bytes, projection.image_bytes)
            logger.info("projected", extra={"image_bytes": projection.image_bytes})
        case NotFound():
            metrics.add_metric(names.PROJECTION_NOT_FOUND, MetricUnit.Count, 1)
            logger.info("image-loader has no such image")
        case Failed():
            metrics.add_metric(names.PROJECTION_FAILED, MetricUnit.Count, 1)
            logger.warning(
                "projection failed",
                extra={"failure": projection.describe(), "known": projection.known},
            )
    return projection


def _internal_error(app: ApiGatewayResolver, failed: Failed) -> Response:
    """A 500 that tells the caller nothing internal: what failed goes to the log, under
    the request id the caller is given."""
    request_id = app.lambda_context.aws_request_id
    details = {"service": failed.service, "status": failed.status, "failure": failed.message}
    details["downstream_message"] = failed.downstream_message
    logger.error("answered 500", extra={"request_id": request_id, **details})
    body = json.dumps({"message": INTERNAL_ERROR, "requestId": request_id})
    return Response(HTTPStatus.INTERNAL_SERVER_ERROR, content_types.APPLICATION_JSON, body)


def _reply(status: HTTPStatus, message: str, **headers: str) -> Response:
    body = json.dumps({"message": message})
    return Response(status, content_types.APPLICATION_JSON, body, headers=headers)


_FUNCTION_URL = _http_app(LambdaFunctionUrlResolver())
_REST_API = _http_app(APIGatewayRestResolver())
