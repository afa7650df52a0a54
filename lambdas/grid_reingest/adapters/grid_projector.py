"""Projecting one image: image-loader first, then the seven data services at once, then merge.

Example::

    with GridProjector(GridClient(settings.grid, key), images_at_once=8) as projector:
        outcome = to_outcome(projector.project(image_id), settings.max_message_bytes)

Sizing the data-call pool. Each image has at most DATA_FAN_OUT (7) data calls
in flight, and a caller projects up to `images_at_once` images at the same
time (batch-index: settings.concurrency), so the pool has
`images_at_once x 7` threads: every image's calls start the moment its loader
call is done, and no image waits behind another's. It cannot deadlock: the
tasks in this pool only do HTTP calls, they never wait for other tasks in it —
which is why `project()` itself must not run inside this pool (give it the
caller's own threads). Threads are started only as calls need them, and they
spend their life waiting on sockets, so an idle share of the pool costs little.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from types import TracebackType
from typing import Any

from grid_reingest.adapters.grid import (
    DATA_CALLS,
    DATA_FAN_OUT,
    GridClient,
    GridResponse,
    id_problem,
)
from grid_reingest.domain.isotime import utc_now
from grid_reingest.domain.merge import ProjectionError, ServiceData, merge
from grid_reingest.domain.outcome import Failed, Found, NotFound, Outcome, Projection, Ready, TooBig
from grid_reingest.domain.states import KNOWN_PERMANENT_LOADER_ERRORS
from grid_reingest.domain.thrall_message import compact_json, encode_image_json, record_size

LOADER = "image-loader"
# What a refused id is charged to: no Grid service was called; 400 as the HTTP endpoint answers.
REFUSED_BY = "image-projection"


class GridProjector:
    """Projects images over one GridClient, with a thread pool for the data calls.

    Safe to share between threads: call `project` from up to `images_at_once`
    threads of your own (default: the client's settings.concurrency).
    """

    def __init__(self, client: GridClient, *, images_at_once: int | None = None) -> None:
        self.client = client
        self.images_at_once = images_at_once or client.settings.concurrency
        self._pool = ThreadPoolExecutor(
            max_workers=self.images_at_once * DATA_FAN_OUT, thread_name_prefix="grid-data"
        )

    def __enter__(self) -> GridProjector:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop the pool's threads (calls in flight finish first)."""
        self._pool.shutdown(wait=True, cancel_futures=True)

    def project(self, image_id: str, *, api_key: str | None = None) -> Projection:
        """Found, NotFound (image-loader's 404) or Failed (naming the service) for one image.

        `api_key`: call the Grid with this key instead of the client's (a caller's own).
        """
        problem = id_problem(image_id)
        if problem is not None:
            # Known: the id will not change, so retrying cannot help.
            return Failed(image_id, REFUSED_BY, 400, problem, known=True)
        client = self.client.with_key(api_key) if api_key else self.client
        loaded = _loaded_image(image_id, client.projection(image_id))
        if not isinstance(loaded, dict):
            return loaded
        data = self._data(client, image_id)
        if isinstance(data, Failed):
            return data
        try:
            image = merge(loaded, data)
        except ProjectionError as error:
            service = DATA_CALLS[error.call][0]
            return Failed(image_id, service, 200, f"{error.call}: unexpected data", error.detail)
        return Found(image_id, image, compact_json(image))

    def health(self, service: str) -> bool | None:
        """`service`'s health route (GridClient.health); this process is image-projection."""
        if service == REFUSED_BY:
            return True
        return self.client.health(service)

    def _data(self, client: GridClient, image_id: str) -> ServiceData | Failed:
        futures = {call: self._pool.submit(client.data, call, image_id) for call in DATA_CALLS}
        # Wait for every call, then report the first failure in DATA_CALLS order: the
        # same failures always give the same outcome.
        responses = {call: future.result() for call, future in futures.items()}
        data: dict[str, Any] = {}
        for call, response in responses.items():
            if response.not_found:
                data[call] = None
            elif not response.ok:
                return _failure(image_id, call, response)
            elif not isinstance(response.body, dict) or "data" not in response.body:
                return Failed(
                    image_id,
                    response.service,
                    response.status,
                    f"{call}: unexpected response",
                    "no 'data' envelope",
                )
            else:
                data[call] = response.body["data"]
        return ServiceData(**data)


def to_outcome(
    projection: Projection,
    max_message_bytes: int,
    clock: Callable[[], datetime] = utc_now,
) -> Outcome:
    """Ready (the encoded reingest-image record) or TooBig for a found image; others as they are.

    `max_message_bytes` bounds the record as Kinesis counts it (data plus partition key);
    `clock` gives the message's lastModified.
    """
    if not isinstance(projection, Found):
        return projection
    record = encode_image_json(projection.serialized, clock())
    size = record_size(projection.image_id, record)
    if size > max_message_bytes:
        return TooBig(projection.image_id, size, max_message_bytes)
    return Ready(projection.image_id, record, projection.image_bytes)


class OutcomeProjector:
    """A GridProjector whose `project` gives the outcome batch-index records (Ready, TooBig, ...).

    Projecting in-process (local runs) instead of invoking image-projection.
    """

    def __init__(
        self,
        projector: GridProjector,
        max_message_bytes: int,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.projector = projector
        self.max_message_bytes = max_message_bytes
        self.clock = clock

    def project(self, image_id: str) -> Outcome:
        """The outcome for one image."""
        return to_outcome(self.projector.project(image_id), self.max_message_bytes, self.clock)

    def health(self, service: str) -> bool | None:
        """`service`'s health route."""
        return self.projector.health(service)


def _loaded_image(image_id: str, loaded: GridResponse) -> dict[str, Any] | NotFound | Failed:
    """image-loader's image for `image_id`, or what its answer comes to instead."""
    if loaded.not_found:
        return NotFound(image_id)
    if not loaded.ok:
        return _failure(image_id, "projection", loaded)
    image = loaded.body
    if not isinstance(image, dict):
        return Failed(
            image_id, LOADER, loaded.status, "projection: not a JSON object", _kind(image)
        )
    if image.get("id") != image_id:
        # Merging would put this id's leases, edits and usages on another image,
        # and thrall would overwrite that image's document with the result.
        return Failed(
            image_id,
            LOADER,
            loaded.status,
            f"projection: image-loader answered with image {image.get('id')!r} "
            f"for id {image_id!r}; nothing merged",
            known=True,
        )
    return image


def _failure(image_id: str, call: str, response: GridResponse) -> Failed:
    if response.status is None:
        return Failed(image_id, response.service, None, f"{call}: no response", response.message)
    if response.oversized:
        return Failed(
            image_id,
            response.service,
            response.status,
            f"{call}: answer too large",
            response.message,
        )
    if response.malformed:
        return Failed(
            image_id, response.service, response.status, f"{call}: malformed JSON", response.message
        )
    known = (
        response.service == LOADER
        and response.status == 500
        and any(marker in response.text for marker in KNOWN_PERMANENT_LOADER_ERRORS)
    )
    return Failed(
        image_id, response.service, response.status, f"{call} failed", response.message, known
    )


def _kind(body: Any) -> str:
    return "an empty body" if body is None else f"a JSON {type(body).__name__}"
