"""The Grid's HTTP services: the only code that talks to them (over grid_http's bounded GET).

Every call answers with a `GridResponse` — status, parsed JSON, the downstream
message — and never raises for an HTTP status or a network failure: what a
failure means is the caller's business. Example::

    client = GridClient(settings.grid, api_key)
    response = client.projection("0123abcd...")
    if response.status == 200:
        image = response.body

The API key travels only in the `X-Gu-Media-Key` header; it is kept out of
reprs, logs and messages (and scrubbed from downstream text, should a service
ever echo it).

Each call is bounded: its timeout setting is the budget of the whole call
(connecting, retries and reading the body), and its body is read in chunks up
to a byte cap (GRID_MAX_LOADER_BODY_BYTES, GRID_MAX_SERVICE_BODY_BYTES), so a
service that trickles its answer or sends far too much fails that call instead
of holding the worker or its memory. Ids travel percent-encoded, one path
segment each; an id no route can carry (`id_problem`) is refused before any call.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import requests
from urllib3.util.retry import Retry

from grid_reingest.adapters.grid_http import (
    CONNECT_TIMEOUT_SECONDS,
    Bounds,
    Unread,
    call_deadline,
    make_session,
    read_body,
)
from grid_reingest.domain import ids
from grid_reingest.domain.ids import InvalidImageId
from grid_reingest.settings import (
    GRID_LOADER_TIMEOUT_SECONDS,
    GRID_MAX_LOADER_BODY_BYTES,
    GRID_MAX_SERVICE_BODY_BYTES,
    GRID_SERVICE_TIMEOUT_SECONDS,
    SERVICES,
    GridSettings,
)

logger = logging.getLogger(__name__)

API_KEY_HEADER = "X-Gu-Media-Key"

# The data-service calls of one projection: name -> (service, path template).
# The names are those of projection.ServiceData's fields.
DATA_CALLS: dict[str, tuple[str, str]] = {
    "leases": ("leases", "/leases/media/{id}"),
    "collections": ("collections", "/images/{id}"),
    "edits": ("metadata-editor", "/edits/{id}"),
    "syndication": ("metadata-editor", "/metadata/{id}/syndication"),
    "usages": ("usage", "/usages/media/{id}"),
    "crops": ("cropper", "/crops/{id}"),
    "soft_delete": ("media-api", "/images/{id}/softDeletedMetadata"),
}
# How many requests one image's projection has in flight at once.
DATA_FAN_OUT = len(DATA_CALLS)


# Every Grid service's health route (the Grid's common-lib Management controller).
HEALTH_ROUTE = "/management/healthcheck"

# A downstream message longer than this is cut: it ends up on a DynamoDB item.
MESSAGE_LIMIT = 1000


def id_problem(image_id: object) -> str | None:
    """Why `image_id` cannot be sent to the Grid, or None when it can: the rules every
    stored id follows (domain/ids.py), whichever ids the operator allowed."""
    if not isinstance(image_id, str):
        return f"not an image id: {image_id!r}"
    problem = ids.id_problem(image_id, allow_any=True)
    return None if problem is None else f"not an image id: {image_id[:60]!r}: {problem}"


def path_segment(image_id: str) -> str:
    """`image_id` percent-encoded as one path segment ("/" and "?" included);
    InvalidImageId for an id that `id_problem` refuses."""
    problem = id_problem(image_id)
    if problem is not None:
        raise InvalidImageId(problem)
    return quote(image_id, safe="")


@dataclass(frozen=True)
class GridResponse:
    """What one call came to.

    `status` is None when no response arrived (connection failure or timeout,
    after retries); `body` is the parsed JSON of a 2xx answer, or None;
    `message` is the downstream's own words on a failure (its `errorMessage`,
    else the start of its body, else the network error); `text` is the body of
    a non-2xx answer, for callers that look for known error signatures.
    """

    service: str
    status: int | None
    body: Any = None
    message: str = ""
    text: str = ""
    malformed: bool = False  # a 2xx whose body is not JSON
    seconds: float = 0.0
    oversized: bool = False  # the body passed the size cap and was not read

    @property
    def ok(self) -> bool:
        """200 with a JSON body."""
        return self.status == 200 and not self.malformed and not self.oversized

    @property
    def not_found(self) -> bool:
        """404: for a data service, "none"."""
        return self.status == 404


@dataclass(frozen=True)
class KeyCheck:
    """Whether the Grid accepts a key: True, False, or None when it could not tell."""

    valid: bool | None
    response: GridResponse


class GridClient:
    """The Grid's services over one pooled, retrying Session.

    `pool_size` defaults to settings.concurrency x DATA_FAN_OUT: that many
    images projected at once each have every data call in flight, and with
    one Grid host for every service (a local Grid, the simulator) they all
    share one pool. A `session` you pass is used as it is. Share one client
    between threads: it keeps no per-call state (requests' cookie jar is
    unused). Use `with_key` for another key over the same connections.
    """

    def __init__(
        self,
        settings: GridSettings,
        api_key: str,
        session: requests.Session | None = None,
        pool_size: int | None = None,
        *,
        retry: Retry | None = None,
    ) -> None:
        if not api_key:
            raise ValueError("the Grid API key is empty")
        self.settings = settings
        self._key = api_key
        self._session = session or make_session(
            pool_size or settings.concurrency * DATA_FAN_OUT, retry
        )
        self._bases = {service: settings.url(service) for service in SERVICES}

    def __repr__(self) -> str:
        return f"GridClient(image-loader={self._bases['image-loader']!r})"

    def with_key(self, api_key: str) -> GridClient:
        """The same client (and connections) calling with another API key."""
        return GridClient(self.settings, api_key, session=self._session)

    def close(self) -> None:
        """Close the pooled connections."""
        self._session.close()

    # -- the calls ------------------------------------------------------------

    def projection(self, image_id: str) -> GridResponse:
        """image-loader's re-projection of the original file: `GET /images/project/{id}`.

        InvalidImageId, before any request, for an id `id_problem` refuses (so for
        every call taking an id).
        """
        return self._get("image-loader", f"/images/project/{path_segment(image_id)}")

    def data(self, call: str, image_id: str) -> GridResponse:
        """One data-service call of DATA_CALLS for one image, e.g. `data("leases", id)`."""
        service, template = DATA_CALLS[call]
        return self._get(service, template.format(id=path_segment(image_id)))

    def image(self, image_id: str) -> GridResponse:
        """media-api: `GET /images/{id}` — 200 present, 404 absent.

        Only the status matters here, so the (large) body is read and dropped
        unparsed: reading it lets the connection go back to the pool (one past
        the cap or the deadline is closed instead; the status stands).
        """
        return self._get("media-api", f"/images/{path_segment(image_id)}", parse=False)

    def health(self, service: str) -> bool | None:
        """`service`'s health route, `GET /management/healthcheck` (every Grid service has one):
        True for 200, False for no answer or a 5xx, None for anything else (no such route,
        or no such service)."""
        if service not in self._bases:
            return None
        status = self._get(service, HEALTH_ROUTE, parse=False).status
        if status == 200:
            return True
        if status is None or status >= 500:
            return False
        return None

    def validate_key(self) -> KeyCheck:
        """Whether the Grid accepts this client's key, from leases' `GET /`.

        As the Grid's own check: 200 or 404 mean valid, 401 or 403 invalid;
        anything else (a failure, no answer) leaves it unknown.
        """
        response = self._get("leases", "/", parse=False)
        if response.status in (200, 404):
            return KeyCheck(True, response)
        if response.status in (401, 403):
            return KeyCheck(False, response)
        return KeyCheck(None, response)

    # -- one GET ----------------------------------------------------------------

    def _bounds(self, service: str) -> Bounds:
        if service == "image-loader":
            return Bounds(
                self.settings.loader_timeout,
                GRID_LOADER_TIMEOUT_SECONDS.name,
                self.settings.max_loader_body,
                GRID_MAX_LOADER_BODY_BYTES.name,
            )
        return Bounds(
            self.settings.service_timeout,
            GRID_SERVICE_TIMEOUT_SECONDS.name,
            self.settings.max_service_body,
            GRID_MAX_SERVICE_BODY_BYTES.name,
        )

    def _get(self, service: str, path: str, *, parse: bool = True) -> GridResponse:
        url = self._bases[service] + path
        bounds = self._bounds(service)
        started = time.monotonic()
        deadline = started + bounds.seconds
        try:
            # No redirects: following one to another host would hand it the key.
            # stream=True: the body is read below, in chunks, within the bounds.
            with call_deadline(deadline):
                raw = self._session.get(
                    url,
                    headers={API_KEY_HEADER: self._key, "Accept": "application/json"},
                    timeout=(CONNECT_TIMEOUT_SECONDS, bounds.seconds),
                    allow_redirects=False,
                    stream=True,
                )
        except requests.RequestException as error:
            message = self._scrub(f"{type(error).__name__}: {error}")
            if time.monotonic() >= deadline:
                message = (
                    f"no complete answer within the call's deadline of {bounds.seconds:g} s "
                    f"({bounds.seconds_variable}): {message}"
                )
            logger.warning("%s GET %s: no response: %s", service, path, message)
            return GridResponse(service, None, message=message, seconds=time.monotonic() - started)
        keep = parse or not 200 <= raw.status_code < 300
        try:
            content = read_body(raw, bounds, deadline, keep=keep)
        except Unread as unread:
            raw.close()  # the rest is never read: the connection cannot be reused
            seconds = time.monotonic() - started
            logger.warning("%s GET %s: HTTP %s: %s", service, path, raw.status_code, unread)
            if not keep:
                return GridResponse(service, raw.status_code, seconds=seconds)
            status = None if unread.no_answer else raw.status_code
            return GridResponse(
                service,
                status,
                message=self._scrub(str(unread)),
                oversized=not unread.no_answer,
                seconds=seconds,
            )
        return self._response(service, raw, content, parse, time.monotonic() - started)

    def _response(
        self,
        service: str,
        raw: requests.Response,
        content: bytearray,
        parse: bool,
        seconds: float,
    ) -> GridResponse:
        status = raw.status_code
        if 200 <= status < 300:
            if not parse:
                return GridResponse(service, status, seconds=seconds)
            try:
                body = json.loads(content) if content else None
            # ValueError includes UnicodeDecodeError; JSON nested deeper than the parser's
            # recursion limit (10,000 levels on Python 3.13) raises RecursionError: malformed too.
            except (ValueError, RecursionError) as error:
                excerpt = content[:MESSAGE_LIMIT].decode("utf-8", "replace")
                return GridResponse(
                    service,
                    status,
                    message=str(error),
                    text=self._scrub(excerpt),
                    malformed=True,
                    seconds=seconds,
                )
            return GridResponse(service, status, body=body, seconds=seconds)
        text = self._scrub(content.decode(raw.encoding or "utf-8", "replace"))
        return GridResponse(
            service,
            status,
            message=self._scrub(_downstream_message(text, raw.reason)),
            text=text,
            seconds=seconds,
        )

    def _scrub(self, text: str) -> str:
        return text.replace(self._key, "<api key>") if self._key in text else text


def _downstream_message(text: str, reason: str | None) -> str:
    """The Grid's error body says what went wrong in `errorMessage`; else its start, or the reason.

    The Grid's own projection lambda nests its errors one level down, under `message`.
    """
    try:
        body = json.loads(text) if text.strip() else None
    except (ValueError, RecursionError):
        body = None
    if isinstance(body, dict):
        nested = body.get("message")
        if isinstance(nested, dict):
            body = nested
        for key in ("errorMessage", "message", "errorKey"):
            value = body.get(key)
            if isinstance(value, str) and value:
                return value[:MESSAGE_LIMIT]
    if text.strip():
        return text.strip()[:MESSAGE_LIMIT]
    return reason or ""
